# Continue from OpenAI's CLIP ViT-L/14 at 336 px (the vision tower of LLaVA-1.5) on the
# COCO + Visual Genome + GRIT mix: CLOC's region-text and grounding losses added to the
# CLIP loss, bf16 autocast, 8 GPUs x 64 images, 10k iterations, validated on COCO val2017
# every 2k. [ours] The paper trains from scratch; this recipe is ours.
#
# 1. Data: as configs/cloc/cloc_vit-b16_openai-clip-pre_8xb128-10k_coco-vg-grit.py
#    (data/coco, data/vg, data/grit; data_root in configs/_base_/datasets/region_text_mix_224.py).
# 2. Weights and tokenizer (Hugging Face openai/clip-vit-large-patch14-336, downloaded by you):
#      python tools/model_converters/clip_to_cllip.py checkpoints/clip-vit-large-patch14-336 \
#          checkpoints/clip_vit-l14-336_openai.pth --src-format hf \
#          --tokenizer-out data/tokenizers/clip-vit-large-patch14-336
# 3. Train: bash tools/dist_train.sh configs/cloc/<this file> 8
# 4. For LLaVA: python tools/model_converters/cllip_to_hf.py configs/cloc/<this file> \
#        work_dirs/<this file>/iter_10000.pth hf_cloc_vit-l14-336  (a CLIPVisionModel-loadable
#    directory, docs/interoperability.md).
_base_ = [
    '../_base_/models/cloc_vit-l14-336.py',
    '../_base_/datasets/region_text_mix_336.py',
    '../_base_/schedules/schedule_clip-pre_10k_adamw-bf16.py',
    '../_base_/default_runtime.py',
]
clip_checkpoint = 'checkpoints/clip_vit-l14-336_openai.pth'
tokenizer_path = 'data/tokenizers/clip-vit-large-patch14-336'

model = dict(
    # OpenAI's weights: QuickGELU, a 49408-token BPE vocabulary, pooling at the argmax id.
    # The image tower keeps grad_checkpointing=True (models/cloc_vit-l14-336.py).
    image_encoder=dict(act='quick_gelu'),
    text_encoder=dict(act='quick_gelu', vocab_size=49408, eot_token_id=None),
    tokenizer=dict(path=tokenizer_path),
    init_cfg=dict(type='Pretrained', checkpoint=clip_checkpoint))

train_dataloader = dict(batch_size=64)
# [ours] half the B/16 LR for the larger tower (open_clip also lowers it for L/14)
optim_wrapper = dict(optimizer=dict(lr=1e-5))
default_hooks = dict(checkpoint=dict(interval=2_000, max_keep_ckpts=3))
auto_scale_lr = dict(base_batch_size=8 * 64)
