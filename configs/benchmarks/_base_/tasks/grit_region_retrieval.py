# Task 2: region retrieval (the paper's GRIT protocol, App. B.2): [paper] region embeddings
# of the GT boxes against the embeddings of their region captions over a random 2K-image
# sample of GRIT validation data, recall@10 both ways (`region_retrieval/r2t_R@10`,
# `t2r_R@10`; duplicated objects make R@1 misleading). [ours] R@1/5 as well; the sample is
# seeded (`sample_images=2000`, `sample_seed=0`): the paper's own sample is not published.
# GRIT as mmdet's ODVG grounding JSON Lines (`filename`,
# `grounding.regions[].bbox` xyxy / `phrase`); for our JSON Lines format set
# test_dataloader.dataset.type='RegionTextDataset'. Unreadable records are skipped,
# counted and logged (web-crawled sets lose images).
data_root = 'data/grit/'
test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
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
        type='RegionTextDataset',
        data_root=data_root,
        ann_file='grit_odvg.jsonl',
        data_prefix=dict(img='images/'),
        sample_images=2000,
        sample_seed=0,
        on_bad_record='skip',
        test_mode=True,
        pipeline=test_pipeline))
test_evaluator = [dict(type='RegionRetrievalMetric', topk=(1, 5, 10))]
test_cfg = dict(type='TestLoop')
model_test_cfg = dict(outputs=('region_embeds', 'phrase_embeds'))
# A progress bar for evaluation runs (the configs below put it into custom_hooks).
task_hooks = [dict(type='ProgressBarHook')]
