# Tiny CPU variant of grounding-dino_cloc-vit-b16_16xb4-1x_ov-coco-48-17.py: the same OV protocol
# (train on base classes only, evaluate every class with OVCocoMetric -> base / novel AP50)
# on the synthetic set (24 base / 8 novel phrases), a tiny Grounding DINO and the tiny CLOC
# encoders. Used by tests/test_mmdet_plugins; runs a few iterations in seconds.
_base_ = [
    './grounding-dino_cloc-vit-b16_16xb4-1x_ov-coco-48-17.py',
    '../_base_/cloc_vit-tiny-p8_synthetic.py',
]
data_root = _base_.synthetic_root
ann_root = data_root + 'mmdet/'

model = _base_.tiny_grounding_dino

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=(160, 160), keep_ratio=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                    'flip_direction', 'text', 'custom_entities'))
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
        metainfo=dict(classes=_base_.synthetic_base_classes),
        data_root=data_root,
        ann_file='mmdet/instances_train_seen.json',
        data_prefix=dict(img=''),
        filter_cfg=dict(filter_empty_gt=False, min_size=0),
        pipeline=train_pipeline))
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
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=ann_root + 'instances_val.json')
test_evaluator = val_evaluator

optim_wrapper = _base_.tiny_optim_wrapper
train_cfg = _base_.tiny_train_cfg
param_scheduler = _base_.tiny_param_scheduler
default_hooks = _base_.tiny_default_hooks
log_processor = _base_.tiny_log_processor
auto_scale_lr = dict(enable=False)
