# Task 1: zero-shot region classification with ground-truth boxes on COCO val2017
# (80 classes, the published instances_val2017.json; crowd boxes left out, no size filter).
# Each GT box's region embedding (Prompter for CLOC, crop-and-encode for CLIP) against the
# class-name embeddings.
# The paper's protocol (App. B.2, Table 2): [paper] every GT box through the Prompter, each
# class name encoded by the text encoder without prompt templates (the raw name), the class
# of highest cosine; [paper] metric: mAcc (mean per-class accuracy), reported first here
# (`region_cls/mean_class_acc`). [ours] top-1 / top-5 over boxes as well; the OpenAI
# template ensemble as an option (`--templates openai` of tools/benchmark.py, or the
# *-openai-templates benchmark configs); the crop-and-encode CLIP baseline.
data_root = 'data/coco/'
test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    # The whole image at the encoder's input size (tools/benchmark.py sets it from the
    # model); boxes follow the resize.
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='PackRegionTextInputs'),
]
test_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='CocoRegionDataset',
        data_root=data_root,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        min_box_area=0,
        test_mode=True,
        pipeline=test_pipeline))
test_evaluator = [
    dict(type='RegionClassificationMetric', topk=(1, 5), headline='mean_class_acc')]
test_cfg = dict(type='TestLoop')
# Merged into the model's test_cfg: what CLOC.predict computes, and the templates
# ('none': the bare class name, '{}', as the paper does).
model_test_cfg = dict(outputs=('region_embeds', ), prompt_templates='none')
# A progress bar for evaluation runs (the configs below put it into custom_hooks).
task_hooks = [dict(type='ProgressBarHook')]
