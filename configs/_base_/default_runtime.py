default_scope = 'cllip_mm'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # CheckpointHook whose work dir stays resumable after a kill at any moment or a
    # full disk (write to .part, rename, then update last_checkpoint, then prune)
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=100,
                    max_keep_ckpts=2, save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)

# a NaN / Inf loss skips its optimizer step (on every process); 10 in a row stop training.
# WeightsMetaHook: checkpoints carry the towers' activation and the tokenizer (meta
# 'cllip_mm_arch'), and the checkpoints a run starts from are checked against the model
custom_hooks = [dict(type='SkipNonFiniteLossHook', max_consecutive=10),
                dict(type='WeightsMetaHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # timeout (s) of every collective: when a process dies or hangs, the others fail
    # within it (tools/train.py then exits at once with an explanation)
    dist_cfg=dict(backend='nccl', timeout=1800),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=10, by_epoch=False)

log_level = 'INFO'
load_from = None
resume = False
