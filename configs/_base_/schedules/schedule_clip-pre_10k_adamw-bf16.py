# [ours] Continuing from a CLIP checkpoint: 10k iterations of AdamW in bfloat16 autocast,
# a small LR for the pretrained towers and 10x for the modules CLIP lacks (Prompter,
# grounding head, region loss), 500 warm-up iterations then cosine decay to 0. The LR is
# for a global batch of 1,024 (`--auto-scale-lr` rescales it; each config sets
# auto_scale_lr.base_batch_size to the batch of its name).
max_iters = 10_000
warmup_iters = 500
val_interval = 2_000

optim_wrapper = dict(
    # bf16 autocast: on CUDA, MMEngine's AmpOptimWrapper (bf16 needs no loss scaling:
    # float32's exponent range). Without an accelerator it refuses to build: use
    # BF16AmpOptimWrapper there (tools/train.py --amp picks it for OptimWrapper configs).
    type='AmpOptimWrapper',
    dtype='bfloat16',
    # fused AdamW: the same update in one pass over each parameter's memory
    optimizer=dict(type='AdamW', lr=2e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1,
                   fused=True),
    clip_grad=dict(max_norm=1.0),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            # The longest matching key wins: fresh modules learn 10x faster.
            'prompter': dict(lr_mult=10.0),
            'grounding_head': dict(lr_mult=10.0),
            'region_loss': dict(lr_mult=10.0, decay_mult=0.0),
            'type_embed': dict(lr_mult=10.0, decay_mult=0.0),
            'logit_scale': dict(decay_mult=0.0),
            'logit_bias': dict(decay_mult=0.0),
            'class_embedding': dict(decay_mult=0.0),
            'positional_embedding': dict(decay_mult=0.0),
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, end=max_iters, eta_min=0.0),
]
# resumes by seeking the sampler instead of replaying every consumed batch
train_cfg = dict(type='ResumableIterBasedTrainLoop', max_iters=max_iters,
                 val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=1024)
