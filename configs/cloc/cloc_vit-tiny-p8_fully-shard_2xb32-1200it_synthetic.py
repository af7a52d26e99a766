# The CLOC demo (cloc_vit-tiny-p8_1xb64-1200it_synthetic.py) sharded with torch's
# fully_shard (FSDP2) over 2 processes x 32 images, the demo's batch of 64:
#   tools/dist_train.sh configs/cloc/cloc_vit-tiny-p8_fully-shard_2xb32-1200it_synthetic.py 2
# (or torchrun --nproc_per_node 2 tools/train.py CONFIG --launcher pytorch); runs on CPU /
# gloo and on GPUs / NCCL. Checkpoints are full state dicts that Runner and a single
# process load as they are (docs/performance.md, "Distributed training at scale").
_base_ = ['./cloc_vit-tiny-p8_1xb64-1200it_synthetic.py']

runner_type = 'FlexibleRunner'
# FlexibleRunner builds the strategy before it sets the default scope: scoped name
strategy = dict(
    type='cllip_mm.FullyShardStrategy',
    # one fully_shard unit per transformer block of both towers (FSDP's auto-wrap policy)
    shard_modules=['ResidualAttentionBlock'],
    # None: fp32; param_dtype='bfloat16', reduce_dtype='float32': bf16 compute,
    # fp32 gradient reduction (the sharded weights and AdamW state stay fp32)
    mp_policy=dict(param_dtype=None, reduce_dtype=None),
    reshard_after_forward=True)

train_dataloader = dict(batch_size=32)
auto_scale_lr = dict(base_batch_size=64)
