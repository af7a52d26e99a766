# 1200 iterations of AdamW with a linear warm-up and cosine decay (the CPU demo budget).
max_iters = 1200
warmup_iters = 100

optim_wrapper = dict(
    type='OptimWrapper',
    # fused AdamW: the same update in one pass over each parameter's memory (CPU and GPU),
    # 6-7x faster than the default foreach form on CPU (docs/performance.md)
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.05,
                   fused=True),
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
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, end=max_iters, eta_min=1e-5),
]

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=64)
