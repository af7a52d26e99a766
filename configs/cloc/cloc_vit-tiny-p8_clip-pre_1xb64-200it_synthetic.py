# Continue from a trained CLIP (the path most users take), on the CPU demo: the demo
# CLIP baseline's checkpoint (`python tools/run_demo.py` writes it) continues for 200
# iterations with CLOC's region-text and grounding losses added. The Prompter reads the
# encoder's output tokens ('final'), as the from-CLIP recipes at scale do
# (cloc_vit-b16_openai-clip-pre_8xb128-10k_region-text.py). Its control is
# configs/clip/clip_vit-tiny-p8_clip-pre_1xb64-200it_synthetic.py (CLIP alone, same budget).
#   python tools/run_demo.py --recipe from-clip --work-dir work_dirs/demo_from_clip_200 \
#       --config CLOC=configs/cloc/cloc_vit-tiny-p8_clip-pre_1xb64-200it_synthetic.py \
#       CLIP=configs/clip/clip_vit-tiny-p8_clip-pre_1xb64-200it_synthetic.py
# (the recipe's default is the 600-iteration pair).
_base_ = ['./cloc_vit-tiny-p8_1xb64-1200it_synthetic.py']
clip_checkpoint = 'work_dirs/demo/clip/iter_1200.pth'

model = dict(
    prompter=dict(roi_sources=('final', ), context_sources=('final', )),
    # Loads image_encoder.*, text_encoder.* and clip_loss.logit_scale; the Prompter,
    # grounding head and region loss start fresh (listed as missing keys in the log).
    init_cfg=dict(type='Pretrained', checkpoint=clip_checkpoint))

max_iters = 200
warmup_iters = 20
optim_wrapper = dict(
    optimizer=dict(lr=2e-4),
    paramwise_cfg=dict(
        custom_keys={
            # The longest matching key wins: fresh modules learn 10x faster.
            'prompter': dict(lr_mult=10.0),
            'grounding_head': dict(lr_mult=10.0),
            'region_loss': dict(lr_mult=10.0, decay_mult=0.0),
            'type_embed': dict(lr_mult=10.0, decay_mult=0.0),
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
