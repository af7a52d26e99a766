# Closed-set detection on COCO (80 classes) with Faster R-CNN + FPN whose backbone is the
# CLOC ViT-B/16 image encoder and its ViTDet-style simple feature pyramid (ClocViT with
# strides 4 / 8 / 16 / 32); mmdet's CocoMetric (`coco/bbox_mAP`).
#
# Data, pipelines, schedule (12 epochs, steps at 8 and 11, 500-iteration warmup) and
# evaluator are MMDetection's `faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py` (COCO 2017 under
# data/coco/). The optimiser is ViTDet's: AdamW with ViT layer-wise LR decay 0.7 and weight
# decay 0.1 (none on the position / class embeddings).
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    '../_base_/cloc_vit-b16.py',
]
custom_imports = dict(imports=['cllip_mm.mmdet_plugins'], allow_failed_imports=False)

model = dict(
    data_preprocessor=_base_.cloc_data_preprocessor,
    # FPN wants stride 4 too: two deconvolutions (768 -> 384 -> 192), one (-> 384), the
    # patch map (768) and a max pooling (768).
    backbone=dict(_delete_=True, **dict(_base_.cloc_vit, out_strides=(4, 8, 16, 32))),
    neck=dict(in_channels=[192, 384, 768, 768]))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='ClocLayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(
        layer_decay_rate=0.7,
        custom_keys={
            'backbone.vit.positional_embedding': dict(decay_mult=0.),
            'backbone.vit.class_embedding': dict(decay_mult=0.),
        }))
# Start from the converted CLOC encoder (the backbone's init_cfg), not an ImageNet ResNet.
load_from = None
