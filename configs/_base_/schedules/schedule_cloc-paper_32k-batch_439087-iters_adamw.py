# The paper's pre-training schedule, every value from its Table A: global batch 32,768,
# 439,087 steps (about 14B samples seen), AdamW with betas (0.9, 0.98), peak LR 5e-4 with a
# linear warm-up of 2k steps then cosine decay, weight decay 0.2.
max_iters = 439_087  # [paper: Table A]
warmup_iters = 2_000  # [paper: Table A]

optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',  # [ours]
    optimizer=dict(
        type='AdamW',
        lr=5e-4,  # [paper: Table A] peak LR
        betas=(0.9, 0.98),  # [paper: Table A]
        eps=1e-6,  # [ours] (open_clip's)
        weight_decay=0.2,  # [paper: Table A]
        fused=True),
    clip_grad=dict(max_norm=1.0),  # [ours]
    paramwise_cfg=dict(  # [ours] no decay on norms, biases, scales and embeddings (CLIP practice)
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
    # [paper: Table A] linear warm-up over 2k steps, then cosine decay ([ours]: from 1e-3 x and to 0)
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, end=max_iters, eta_min=0.0),
]
# resumes by seeking the sampler instead of replaying every consumed batch
train_cfg = dict(type='ResumableIterBasedTrainLoop', max_iters=max_iters, val_interval=20_000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# [paper: Table A] the LR above is for the global batch 32,768; `--auto-scale-lr` rescales it
auto_scale_lr = dict(enable=False, base_batch_size=32768)
