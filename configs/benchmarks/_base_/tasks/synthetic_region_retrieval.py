# Task 2 on the embedded demo set: every region of annotations/val.jsonl (our JSON Lines)
# against its phrase (32 distinct phrases: equal phrases match each other).
_base_ = ['./grit_region_retrieval.py']
data_root = 'data/cloc_demo/'
test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='Resize', scale=(96, 96), keep_ratio=False),
    dict(type='PackRegionTextInputs'),
]
test_dataloader = dict(
    batch_size=64,
    num_workers=1,
    dataset=dict(
        type='RegionTextDataset',
        data_root=data_root,
        ann_file='annotations/val.jsonl',
        data_prefix=dict(img=''),
        sample_images=None,
        on_bad_record='raise',
        pipeline=test_pipeline))
