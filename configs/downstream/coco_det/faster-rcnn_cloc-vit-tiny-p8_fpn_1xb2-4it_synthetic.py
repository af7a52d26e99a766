# Tiny CPU variant of faster-rcnn_cloc-vit-b16_fpn_8xb2-1x_coco.py: closed-set detection of
# the 32 phrases of the synthetic set (every class in training and test; mmdet's
# CocoMetric, `coco/bbox_mAP`) with Faster R-CNN + FPN on the tiny CLOC ViT and its simple
# pyramid. Used by tests/test_mmdet_plugins and benchmarks/downstream_compare.py; runs a
# few iterations in seconds.
_base_ = [
    './faster-rcnn_cloc-vit-b16_fpn_8xb2-1x_coco.py',
    '../_base_/cloc_vit-tiny-p8_synthetic.py',
]
data_root = _base_.synthetic_root
ann_root = data_root + 'mmdet/'

model = dict(
    data_preprocessor=_base_.tiny_data_preprocessor,
    # patch 8, width 128: one deconvolution (-> 64 channels) for stride 4, the patch map,
    # two max poolings.
    backbone=dict(_delete_=True, **dict(_base_.tiny_vit, out_strides=(4, 8, 16, 32))),
    neck=dict(in_channels=[64, 128, 128, 128], out_channels=64),
    rpn_head=dict(
        in_channels=64,
        feat_channels=64,
        # objects of 17-55 px in 160 px images: anchors of 16 px at stride 4, 32 at 8, ...
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        # 2 x 2 samples per bin instead of adaptive: mmcv's CPU RoIAlign (backward above
        # all) took most of an iteration
        bbox_roi_extractor=dict(out_channels=64, roi_layer=dict(sampling_ratio=2)),
        bbox_head=dict(in_channels=64, fc_out_channels=256,
                       num_classes=len(_base_.synthetic_classes))),
    # 2-6 objects per image: 300 proposals and 128 sampled RoIs (mmdet: 1000-2000 / 512)
    train_cfg=dict(rpn_proposal=dict(nms_pre=600, max_per_img=300),
                   rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=300)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(160, 160), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(160, 160), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        metainfo=dict(classes=_base_.synthetic_classes),
        data_root=data_root,
        ann_file='mmdet/instances_train.json',
        data_prefix=dict(img=''),
        filter_cfg=dict(filter_empty_gt=False, min_size=0),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        metainfo=dict(classes=_base_.synthetic_classes),
        data_root=data_root,
        ann_file='mmdet/instances_val.json',
        data_prefix=dict(img=''),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=ann_root + 'instances_val.json')
test_evaluator = val_evaluator

optim_wrapper = dict(
    optimizer=dict(lr=2e-4, weight_decay=0.05),
    paramwise_cfg=dict(layer_decay_rate=0.8))
train_cfg = _base_.tiny_train_cfg
param_scheduler = _base_.tiny_param_scheduler
default_hooks = dict(_base_.tiny_default_hooks, visualization=dict(type='DetVisualizationHook'))
log_processor = _base_.tiny_log_processor
auto_scale_lr = dict(enable=False)
