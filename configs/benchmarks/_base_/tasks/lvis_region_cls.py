# Task 1 on LVIS v1 val (1203 classes, the published lvis_v1_val.json; its images are COCO
# 2017 ones from train2017 and val2017, found through `coco_url` as <folder>/<file> under
# data_root, mmdet's LVIS layout). The class names are the file's `categories` (underscores
# as spaces). The paper's protocol, as coco_region_cls: [paper] raw class names (no
# templates), mAcc reported first.
_base_ = ['./coco_region_cls.py']
data_root = 'data/lvis_v1/'
test_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/lvis_v1_val.json',
        data_prefix=dict(img='')))
