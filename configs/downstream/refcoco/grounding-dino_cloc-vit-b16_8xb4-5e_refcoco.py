# Referring-expression grounding fine-tune on RefCOCO (val / testA / testB) with Grounding DINO whose image
# backbone and text model are the CLOC encoders; mmdet's RefExpMetric (precision@1/5/10 at
# IoU 0.5, `*/refcoco*_precision@1` is the usual accuracy).
#
# Data, schedule and evaluators are MMDetection's (MDETR annotations under
# data/coco/mdetr_annotations, images in data/coco/train2014).
_base_ = [
    'mmdet::mm_grounding_dino/refcoco/grounding_dino_swin-t_finetune_8xb4_5e_refcoco.py',
    '../_base_/cloc_vit-b16.py',
]
custom_imports = dict(imports=['cllip_mm.mmdet_plugins'], allow_failed_imports=False)

model = dict(
    data_preprocessor=_base_.cloc_data_preprocessor,
    backbone=dict(_delete_=True, **_base_.cloc_vit),
    neck=dict(in_channels=_base_.cloc_vit_channels),
    language_model=dict(_delete_=True, **_base_.cloc_text_model))
train_dataloader = dict(dataset=dict(pipeline=_base_.cloc_grounding_train_pipeline))

optim_wrapper = _base_.cloc_optim_wrapper
# Start from the converted CLOC encoders (their init_cfg), not mmdet's Grounding DINO.
load_from = None
