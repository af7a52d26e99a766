# CLOC ViT-L/14 at 336 px from scratch: 256 GPUs x 128 images = batch 32,768
# (docs/method.md, section 6).
_base_ = [
    '../_base_/models/cloc_vit-l14-336.py',
    '../_base_/datasets/region_text_224.py',
    '../_base_/schedules/schedule_32k-batch_400k-iters_adamw.py',
    '../_base_/default_runtime.py',
]
img_size = (336, 336)
train_dataloader = dict(
    batch_size=128,
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFileChecked'),
        dict(type='RandomResizedCropWithRegions', size=img_size, scale=(0.6, 1.0), min_area_ratio=0.3),
        dict(type='RandomFlipWithPhrases', prob=0.5, direction='horizontal'),
        dict(type='SampleRegions', max_regions=8),
        dict(type='PackRegionTextInputs'),
    ]))
val_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFileChecked'),
    dict(type='Resize', scale=img_size, keep_ratio=False),
    dict(type='PackRegionTextInputs'),
]))
test_dataloader = val_dataloader
# [ours] open_clip trains ViT-L/14 with a lower peak LR than B/16 (the paper: 5e-4, Table A)
optim_wrapper = dict(optimizer=dict(lr=4e-4))
default_hooks = dict(checkpoint=dict(interval=5_000, max_keep_ckpts=3))
