# A region-text set at scale in the JSON Lines format of README "Data format" (e.g. the
# output of a VESL-style pseudo-labeller), 224 px.
dataset_type = 'RegionTextDataset'
data_root = 'data/region_text/'
img_size = (224, 224)

train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='RandomResizedCropWithRegions', size=img_size, scale=(0.6, 1.0), min_area_ratio=0.3),
    dict(type='RandomFlipWithPhrases', prob=0.5, direction='horizontal'),
    dict(type='SampleRegions', max_regions=8),
    dict(type='PackRegionTextInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='Resize', scale=img_size, keep_ratio=False),
    dict(type='PackRegionTextInputs'),
]
train_dataloader = dict(
    batch_size=256,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='ResumableInfiniteSampler', shuffle=True),  # resume in O(1)
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/train.jsonl',
        # at scale a bad record is skipped (counted, logged), not fatal
        on_bad_record='skip',
        check_image_exists=False,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
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
