# Task 1 on the embedded demo set: its val split exported to COCO instances format by
#   python tools/dataset_converters/synthetic_to_coco.py data/cloc_demo
# (data_root/mmdet/instances_val.json), the 32 phrases as classes, bare names as prompts
# (the demo's word-level tokenizer knows no template words). Gives the region top-1 that
# tools/test.py gives on annotations/val.jsonl with the same checkpoint.
_base_ = ['./coco_region_cls.py']
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
        data_root=data_root,
        ann_file='mmdet/instances_val.json',
        data_prefix=dict(img=''),
        pipeline=test_pipeline))
model_test_cfg = dict(prompt_templates='none')
