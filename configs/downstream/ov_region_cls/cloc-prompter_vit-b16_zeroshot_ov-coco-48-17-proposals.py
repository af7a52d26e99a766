# Zero-shot open-vocabulary detection on OV-COCO by region classification (no training):
# class-agnostic proposals are embedded by the CLOC Prompter on the image encoder's patch
# tokens, scored against the 65 class names (prompt-template ensemble) and fused with the
# proposal score F-VLM style (s_det^(1-w) * p_clip^w, w = 0.35 for base, 0.65 for novel
# classes). OVCocoMetric reports base / novel AP50 (`coco/novel_ap50`).
#
# Proposals: a pickle {'<dir>/<file>': {'bboxes', 'scores'}} for val2017, e.g. dumped by
# mmdet's DumpProposals metric from an RPN trained on the 48 base classes. With
# `model.box_source='gt'` the ground-truth boxes are classified instead (the region
# classification protocol of docs/method.md, section 7).
#
# Run: python $MMDET/tools/test.py THIS_CONFIG CONVERTED_CLOC_CHECKPOINT
# (the converted checkpoint holds backbone.vit.*, prompter.*, language_model.* and
# logit_scale; see tools/model_converters/cllip_to_mmdet.py).
_base_ = [
    'mmdet::mm_grounding_dino/coco/grounding_dino_swin-t_finetune_16xb4_1x_coco_48_17.py',
    '../_base_/cloc_vit-b16.py',
]
custom_imports = dict(imports=['cllip_mm.mmdet_plugins'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='ClocRegionClassifier',
    data_preprocessor=_base_.cloc_data_preprocessor,
    # The patch tokens only: no pyramid level besides the patch stride.
    backbone=dict(_base_.cloc_vit, out_strides=(16, ), grad_checkpointing=False,
                  init_cfg=None),
    # configs/_base_/models/cloc_vit-b16.py's Prompter (must match the pretraining one).
    prompter=dict(type='Prompter', width=768, embed_dim=512, num_layers=1, heads=12),
    language_model=dict(_base_.cloc_text_model, init_cfg=None),
    box_source='proposals',
    prompt_templates=('a photo of a {}.', 'a photo of the {}.', 'a picture of a {}.',
                      'there is a {} in the scene.'),
    score_fusion=dict(base_weight=0.35, novel_weight=0.65, base_classes=_base_.base_classes),
    test_cfg=dict(max_per_img=100, score_thr=0.0, nms=dict(type='nms', iou_threshold=0.5)))

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),  # before Resize: input-frame boxes
    dict(type='LoadProposals', num_max_proposals=300),
    dict(
        type='ProposalBroadcaster',
        transforms=[dict(type='Resize', scale=(1024, 1024), keep_ratio=True)]),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'text',
                    'custom_entities'))
]
val_dataloader = dict(
    dataset=dict(
        proposal_file='proposals/rpn_base48_val2017.pkl',
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# Evaluation only.
train_dataloader = None
train_cfg = None
optim_wrapper = None
param_scheduler = None
load_from = None
