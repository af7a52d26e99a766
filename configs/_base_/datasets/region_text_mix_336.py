# The COCO + Visual Genome + GRIT mix of ./region_text_mix_224.py at 336 px (ViT-L/14-336,
# the resolution LLaVA-1.5 uses): the same sources, counts, sampler and validation set,
# with 336 px pipelines. `data_root` and the files are set in ./region_text_mix_224.py.
_base_ = ['./region_text_mix_224.py']

img_size = (336, 336)
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
train_dataloader = dict(dataset=dict(datasets=[
    dict(source, pipeline=train_pipeline) for source in _base_.train_dataloader.dataset.datasets]))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
