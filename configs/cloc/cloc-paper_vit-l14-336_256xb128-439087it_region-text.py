# The paper's CLOC, ViT-L/14 at 336 px, from scratch: 256 GPUs x 128 images = batch 32,768,
# 439,087 steps; every value of the paper's Table A (each with where it is stated, in the
# _base_ files).
_base_ = [
    '../_base_/models/cloc-paper_vit-l14-336.py',
    '../_base_/datasets/region_text_paper_224.py',
    '../_base_/schedules/schedule_cloc-paper_32k-batch_439087-iters_adamw.py',
    '../_base_/default_runtime.py',
]
img_size = (336, 336)  # [paper: Table A] L/14 at 336 px
model = dict(image_encoder=dict(grad_checkpointing=True))  # [ours] memory
train_dataloader = dict(
    batch_size=128,
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFileChecked'),
        dict(type='ResizeWithPad', size=img_size),
        dict(type='SampleRegions', max_regions=4),
        dict(type='PackRegionTextInputs'),
    ]))
val_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFileChecked'),
    dict(type='ResizeWithPad', size=img_size),
    dict(type='PackRegionTextInputs'),
]))
test_dataloader = val_dataloader
default_hooks = dict(checkpoint=dict(interval=5_000, max_keep_ckpts=3))
env_cfg = dict(dist_cfg=dict(backend='nccl'))
