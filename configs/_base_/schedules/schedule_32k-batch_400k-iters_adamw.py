# [ours] The schedule of our design's paper-scale configs (configs/cloc/cloc_vit-*-400k_*):
# open_clip's ViT-B/16 values at batch 32k (lr 5e-4, wd 0.2, eps 1e-6, 2k warm-up), 400k
# iterations. The paper's own schedule (its Table A: 439,087 steps, the same LR, betas,
# warm-up and weight decay) is ./schedule_cloc-paper_32k-batch_439087-iters_adamw.py.
max_iters = 400_000
warmup_iters = 2_000

optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    # fused AdamW: the same update in one pass over each parameter's memory (CPU and GPU),
    # 6-7x faster than the default foreach form on CPU (docs/performance.md)
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2,
                   fused=True),
    clip_grad=dict(max_norm=1.0),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            'logit_scale': dict(decay_mult=0.0),
            'logit_bias': dict(decay_mult=0.0),
            'class_embedding': dict(decay_mult=0.0),
            'positional_embedding': dict(decay_mult=0.0),
            'type_embed': dict(decay_mult=0.0),
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, end=max_iters, eta_min=0.0),
]
# resumes by seeking the sampler instead of replaying every consumed batch
train_cfg = dict(type='ResumableIterBasedTrainLoop', max_iters=max_iters, val_interval=20_000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# lr above is for the global batch 32,768; `--auto-scale-lr` rescales for other sizes.
auto_scale_lr = dict(enable=False, base_batch_size=32768)
