# Task 4: image-text retrieval on the COCO 5k test split of Karpathy's dataset_coco.json
# (images under data_root/val2014/): each image embedded once, each of its captions
# (25,010 in all) as a text; R@1/5/10 image->text and text->image. CLIP's preprocessing.
# [paper] The paper reports COCO image-text retrieval R@1 both ways (`retrieval/i2t_R@1`,
# `t2i_R@1`, listed first); [ours] R@5/10, the split and the preprocessing.
data_root = 'data/coco/'
test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='Resize', scale=(4096, 224), keep_ratio=True, interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackRegionTextInputs'),
]
test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='KarpathyRetrievalDataset',
        data_root=data_root,
        ann_file='annotations/dataset_coco.json',
        split='test',
        data_prefix=dict(img=''),
        test_mode=True,
        pipeline=test_pipeline))
test_evaluator = [dict(type='ImageTextRetrievalMetric', topk=(1, 5, 10))]
test_cfg = dict(type='TestLoop')
model_test_cfg = dict(outputs=('image_embed', 'text_embed'))
# A progress bar for evaluation runs (the configs below put it into custom_hooks).
task_hooks = [dict(type='ProgressBarHook')]
