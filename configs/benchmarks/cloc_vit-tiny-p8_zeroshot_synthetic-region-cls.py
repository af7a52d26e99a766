# The CPU demo CLOC (configs/cloc/cloc_vit-tiny-p8_1xb64-1200it_synthetic.py) on task 1 over
# the demo val split exported to COCO format (synthetic_region_cls task):
#   python tools/dataset_converters/synthetic_to_coco.py data/cloc_demo
#   python tools/test.py THIS_CONFIG work_dirs/demo/cloc/iter_1200.pth
_base_ = [
    '../_base_/models/cloc_vit-tiny-p8.py',
    './_base_/tasks/synthetic_region_cls.py',
    '../_base_/default_runtime.py',
]
model = dict(test_cfg=_base_.model_test_cfg)
custom_hooks = _base_.task_hooks
