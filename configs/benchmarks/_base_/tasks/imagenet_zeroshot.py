# Task 3: zero-shot ImageNet-1k classification: the image embedding against the 1000 class
# names (cllip_mm.datasets.class_names.IMAGENET_CLASSES) with the 80 OpenAI templates; top-1 /
# top-5. The validation set as class folders (val/n01440764/*.JPEG, sorted WordNet ids = the
# standard class order) or a list file (ann_file='meta/val.txt', "<path> <label>" lines).
# CLIP's preprocessing: bicubic resize of the shorter side, centre crop.
# [paper] The paper reports ImageNet (v1 and v2) zero-shot top-1 (`image_cls/top1`, listed
# first). [paper?] It does not state the prompt templates for ImageNet (the spec is silent);
# the 80 OpenAI templates are standard CLIP practice ('none' / 'photo' via --templates).
data_root = 'data/imagenet/'
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
        type='ZeroShotImageDataset',
        data_root=data_root,
        ann_file='',
        data_prefix=dict(img='val/'),
        classes='imagenet',
        test_mode=True,
        pipeline=test_pipeline))
test_evaluator = [dict(type='ImageClassificationMetric', topk=(1, 5))]
test_cfg = dict(type='TestLoop')
model_test_cfg = dict(outputs=('image_scores', ), prompt_templates='openai')
# A progress bar for evaluation runs (the configs below put it into custom_hooks).
task_hooks = [dict(type='ProgressBarHook')]
