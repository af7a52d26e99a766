# Continue from CLIP: CLOC fine-tuning of OpenAI's CLIP ViT-B/16 (region-text and grounding
# losses added to the CLIP loss) instead of pre-training from scratch. [ours] The paper trains
# from scratch; this recipe (small LR for the CLIP towers, 10x for the fresh Prompter and
# grounding head) is ours. See docs/interoperability.md.
#
# 1. Convert the Hugging Face checkpoint (config.json + model.safetensors + tokenizer files):
#      python tools/model_converters/clip_to_cllip.py checkpoints/clip-vit-base-patch16 \
#          checkpoints/clip_vit-b16_openai.pth --src-format hf \
#          --tokenizer-out data/tokenizers/clip-vit-base-patch16
#    (an OpenAI `ViT-B-16.pt` works as well: --src-format openai, plus a CLIPTokenizer dir).
# 2. Train:  bash tools/dist_train.sh configs/cloc/<this file> 8
# 3. Export: python tools/model_converters/cllip_to_hf.py configs/cloc/<this file> \
#          work_dirs/<this file>/iter_10000.pth hf_cloc_vit-b16
_base_ = [
    '../_base_/models/cloc_vit-b16.py',
    '../_base_/datasets/region_text_224.py',
    '../_base_/default_runtime.py',
]
clip_checkpoint = 'checkpoints/clip_vit-b16_openai.pth'
tokenizer_path = 'data/tokenizers/clip-vit-base-patch16'

model = dict(
    # What clip_to_cllip.py prints for OpenAI's weights: QuickGELU, a 49408-token BPE
    # vocabulary, and pooling at the argmax id (EOT, 49407, is the largest id; HF's
    # legacy eos_token_id=2).
    image_encoder=dict(act='quick_gelu'),
    text_encoder=dict(act='quick_gelu', vocab_size=49408, eot_token_id=None),
    tokenizer=dict(path=tokenizer_path),
    # Loads image_encoder.*, text_encoder.* and clip_loss.logit_scale; the Prompter,
    # grounding head and region loss start fresh (listed as missing keys in the log).
    init_cfg=dict(type='Pretrained', checkpoint=clip_checkpoint))

train_dataloader = dict(batch_size=128)

# ------------------------------------------------------------------ schedule (fine-tuning)
max_iters = 10000
warmup_iters = 500
optim_wrapper = dict(
    type='OptimWrapper',
    # fused AdamW: the same update in one pass over each parameter's memory (CPU and GPU),
    # 6-7x faster than the default foreach form on CPU (docs/performance.md)
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
            'class_embedding': dict(decay_mult=0.0),
            'positional_embedding': dict(decay_mult=0.0),
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, end=max_iters, eta_min=0.0),
]
train_cfg = dict(type='ResumableIterBasedTrainLoop', max_iters=max_iters, val_interval=2000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=2000, max_keep_ckpts=3))
auto_scale_lr = dict(enable=False, base_batch_size=1024)
