# CLOC ViT-B/16 on the imagenet_v2_zeroshot benchmark (configs/benchmarks/_base_/tasks/imagenet_v2_zeroshot.py):
#   python tools/test.py THIS_CONFIG CHECKPOINT            (or tools/dist_test.sh ... N)
# The same as: python tools/benchmark.py configs/cloc/cloc_vit-b16_128xb256-400k_region-text.py \
#   CHECKPOINT --tasks imagenet_v2_zeroshot
_base_ = [
    '../_base_/models/cloc_vit-b16.py',
    './_base_/tasks/imagenet_v2_zeroshot.py',
    '../_base_/default_runtime.py',
]
model = dict(test_cfg=_base_.model_test_cfg)
custom_hooks = _base_.task_hooks
