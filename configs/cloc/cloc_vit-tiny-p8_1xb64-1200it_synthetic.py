# CLOC demo: trains on 2 CPU cores in minutes on the embedded synthetic set.
_base_ = [
    '../_base_/models/cloc_vit-tiny-p8.py',
    '../_base_/datasets/synthetic_regions_96.py',
    '../_base_/schedules/schedule_1200it_adamw.py',
    '../_base_/default_runtime.py',
]
randomness = dict(seed=0)
