# The embedded synthetic region-text set written by
# `python tools/dataset_converters/generate_synthetic_regions.py --out data/cloc_demo`.
dataset_type = 'RegionTextDataset'
data_root = 'data/cloc_demo/'
img_size = (96, 96)
# Evaluated at 128 px (the ViT interpolates its position embedding): RandomResizedCrop shows
# objects larger in training than a whole-image resize to the same size does at test time, the
# train/test resolution discrepancy of FixRes (Touvron et al. 2019). 128 was chosen on the val
# split with benchmarks/test_resolution.py (docs/region_effect.md).
test_img_size = (128, 128)

train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='RandomResizedCropWithRegions', size=img_size, scale=(0.6, 1.0), min_area_ratio=0.3),
    dict(type='RandomFlipWithPhrases', prob=0.5, direction='horizontal'),
    dict(type='SampleRegions', max_regions=8),
    dict(type='PackRegionTextInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='Resize', scale=test_img_size, keep_ratio=False),
    dict(type='PackRegionTextInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/train.jsonl',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/val.jsonl',
        return_vocabulary=True,
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = [
    dict(type='RegionClassificationMetric'),
    dict(type='ImageTextRetrievalMetric'),
    dict(type='GroundingMetric'),
]
test_evaluator = val_evaluator
