# Open-vocabulary detection on COCO (OV-COCO: 48 base classes for training, 17 novel ones
# held out; mmdet's OVCocoMetric, headline `coco/novel_ap50`) with Grounding DINO whose
# image backbone and text model are the CLOC encoders.
#
# Everything but the two encoders, the input normalisation and the optimiser comes from
# MMDetection's shipped config (data, pipelines, schedule, evaluator), which expects
# data/coco/annotations/instances_{train2017_seen_2,val2017_all_2}.json (see mmdet's
# docs/en/user_guides/dataset_prepare.md, OV-COCO section).
_base_ = [
    'mmdet::mm_grounding_dino/coco/grounding_dino_swin-t_finetune_16xb4_1x_coco_48_17.py',
    '../_base_/cloc_vit-b16.py',
]
custom_imports = dict(imports=['cllip_mm.mmdet_plugins'], allow_failed_imports=False)

model = dict(
    data_preprocessor=_base_.cloc_data_preprocessor,
    backbone=dict(_delete_=True, **_base_.cloc_vit),
    neck=dict(in_channels=_base_.cloc_vit_channels),
    language_model=dict(_delete_=True, **_base_.cloc_text_model))

optim_wrapper = _base_.cloc_optim_wrapper
# Start from the converted CLOC encoders (their init_cfg), not mmdet's Grounding DINO.
load_from = None
