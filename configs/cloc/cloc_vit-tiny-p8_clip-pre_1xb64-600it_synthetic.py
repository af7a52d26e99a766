# The from-CLIP recipe (CLOC's losses added) for 600 iterations
# (docs/region_effect.md, "Continue from a trained CLIP"):
#   python tools/run_demo.py --recipe from-clip --work-dir work_dirs/demo_from_clip
# (the recipe's default pair)
_base_ = ['./cloc_vit-tiny-p8_clip-pre_1xb64-200it_synthetic.py']
max_iters = 600
warmup_iters = 60
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
# The region and grounding terms at half weight: the encoders keep more of the CLIP loss's pull, so
# image-text R@1 stays level with CLIP continued alone for about the region top-1 margin of full
# weight (measurements: docs/region_effect.md, "Continue from a trained CLIP").
model = dict(region_loss=dict(loss_weight=0.5), grounding_loss=dict(loss_weight=0.5))
