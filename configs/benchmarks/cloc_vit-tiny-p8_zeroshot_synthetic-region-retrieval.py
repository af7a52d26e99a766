# The CPU demo CLOC on region retrieval over the demo val split (our JSON Lines).
_base_ = [
    '../_base_/models/cloc_vit-tiny-p8.py',
    './_base_/tasks/synthetic_region_retrieval.py',
    '../_base_/default_runtime.py',
]
model = dict(test_cfg=_base_.model_test_cfg)
custom_hooks = _base_.task_hooks
