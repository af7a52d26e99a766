# The paper's CLOC, ViT-B/16 at 224 px, from scratch: 128 GPUs x 256 images = batch 32,768,
# 439,087 steps; every value of the paper's Table A (each with where it is stated, in the
# _base_ files). The paper's images are WiT-300M + a 2B subset of DFN-5B with VESL regions.
#   bash tools/dist_train.sh configs/cloc/cloc-paper_vit-b16_128xb256-439087it_region-text.py 8  (x 16 nodes)
_base_ = [
    '../_base_/models/cloc-paper_vit-b16.py',
    '../_base_/datasets/region_text_paper_224.py',
    '../_base_/schedules/schedule_cloc-paper_32k-batch_439087-iters_adamw.py',
    '../_base_/default_runtime.py',
]
model = dict(image_encoder=dict(grad_checkpointing=True))  # [ours] memory
train_dataloader = dict(batch_size=256)
default_hooks = dict(checkpoint=dict(interval=5_000, max_keep_ckpts=3))
env_cfg = dict(dist_cfg=dict(backend='nccl'))
