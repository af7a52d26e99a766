# Tiny CPU variant of grounding-dino_cloc-vit-b16_8xb4-5e_refcoco.py: referring expressions
# of the synthetic set ("the red circle", "the blue star on the left"; ODVG grounding lines
# for training, MDETR-style RefCOCO annotations with dataset_name 'refcoco' for
# RefExpMetric), a tiny Grounding DINO and the tiny CLOC encoders. Used by
# tests/test_mmdet_plugins; runs a few iterations in seconds.
_base_ = [
    './grounding-dino_cloc-vit-b16_8xb4-5e_refcoco.py',
    '../_base_/cloc_vit-tiny-p8_synthetic.py',
]
data_root = _base_.synthetic_root
ann_root = data_root + 'mmdet/'

model = _base_.tiny_grounding_dino

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(160, 160), keep_ratio=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(
        type='RandomSamplingNegPos',
        tokenizer_name=data_root + 'tokenizer',
        num_sample_negative=85,
        max_tokens=256),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                    'flip_direction', 'text', 'custom_entities', 'tokens_positive',
                    'dataset_mode'))
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='FixScaleResize', scale=(160, 160), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'text',
                    'custom_entities', 'tokens_positive'))
]

train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        ann_file='mmdet/refexp_train_vg.jsonl',
        data_prefix=dict(img=''),
        filter_cfg=dict(filter_empty_gt=False, min_size=0),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        type='MDETRStyleRefCocoDataset',
        data_root=data_root,
        ann_file='mmdet/refexp_val.json',
        data_prefix=dict(img=''),
        test_mode=True,
        return_classes=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    _delete_=True,
    type='RefExpMetric',
    ann_file=ann_root + 'refexp_val.json',
    metric='bbox',
    iou_thrs=0.5,
    topk=(1, 5, 10))
test_evaluator = val_evaluator

optim_wrapper = _base_.tiny_optim_wrapper
train_cfg = _base_.tiny_train_cfg
param_scheduler = _base_.tiny_param_scheduler
default_hooks = _base_.tiny_default_hooks
log_processor = _base_.tiny_log_processor
auto_scale_lr = dict(enable=False)
