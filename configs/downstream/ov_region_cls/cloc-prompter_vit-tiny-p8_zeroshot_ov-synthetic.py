# Tiny CPU variant of cloc-prompter_vit-b16_zeroshot_ov-coco-48-17-proposals.py on the synthetic
# set: the synthetic proposals of synthetic_to_coco.py (jittered boxes + random ones),
# the tiny CLOC encoders and Prompter, OVCocoMetric over the 24 base / 8 novel phrases.
# Used by tests/test_mmdet_plugins:
#   python $MMDET/tools/test.py THIS_CONFIG CONVERTED_TINY_CLOC_CHECKPOINT
_base_ = [
    './cloc-prompter_vit-b16_zeroshot_ov-coco-48-17-proposals.py',
    '../_base_/cloc_vit-tiny-p8_synthetic.py',
]
data_root = _base_.synthetic_root

model = dict(
    data_preprocessor=_base_.tiny_data_preprocessor,
    backbone=dict(_base_.tiny_vit, _delete_=True, out_strides=(8, ), init_cfg=None),
    # configs/_base_/models/cloc_vit-tiny-p8.py's Prompter (tests check they agree).
    prompter=dict(_delete_=True, type='Prompter', width=128, embed_dim=128, num_layers=1,
                  heads=4, roi_sources=('final', ), context_sources=('final', ),
                  roi_pool='flatten', context_pos_encoding=True),
    language_model=dict(_base_.tiny_text_model, _delete_=True, init_cfg=None),
    # Bare phrases, as the demo CLOC learnt them (its region phrases are "red circle");
    # templates such as 'a photo of a {}.' cost it most of its AP.
    prompt_templates=('{}', ),
    score_fusion=dict(base_classes=_base_.synthetic_base_classes))

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='LoadProposals', num_max_proposals=None),
    dict(
        type='ProposalBroadcaster',
        # The pretraining input size (configs/_base_/datasets/synthetic_regions_96.py).
        transforms=[dict(type='Resize', scale=(96, 96), keep_ratio=False)]),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'text',
                    'custom_entities'))
]
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        metainfo=dict(
            classes=_base_.synthetic_classes,
            base_classes=_base_.synthetic_base_classes,
            novel_classes=_base_.synthetic_novel_classes),
        data_root=data_root,
        ann_file='mmdet/instances_val.json',
        data_prefix=dict(img=''),
        proposal_file='mmdet/proposals_val.pkl',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'mmdet/instances_val.json')
test_evaluator = val_evaluator
default_hooks = dict(logger=dict(type='LoggerHook', interval=1))
