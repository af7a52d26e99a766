# CLOC ViT-B/16 from scratch at paper scale: 128 GPUs x 256 images = batch 32,768
# (docs/method.md, section 6).
#   bash tools/dist_train.sh configs/cloc/cloc_vit-b16_128xb256-400k_region-text.py 8  (x 16 nodes)
_base_ = [
    '../_base_/models/cloc_vit-b16.py',
    '../_base_/datasets/region_text_224.py',
    '../_base_/schedules/schedule_32k-batch_400k-iters_adamw.py',
    '../_base_/default_runtime.py',
]
model = dict(image_encoder=dict(grad_checkpointing=True))
default_hooks = dict(checkpoint=dict(interval=5_000, max_keep_ckpts=3))
env_cfg = dict(dist_cfg=dict(backend='nccl'))
