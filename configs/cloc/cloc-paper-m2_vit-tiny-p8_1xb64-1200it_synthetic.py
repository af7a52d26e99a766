# The paper's Table 2 ablation M = 2 (row 12) of ./cloc-paper_vit-tiny-p8_1xb64-1200it_synthetic.py:
# at most 2 regions sampled per image for each update instead of 4.
_base_ = ['./cloc-paper_vit-tiny-p8_1xb64-1200it_synthetic.py']
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFileChecked'),
    dict(type='ResizeWithPad', size={{_base_.img_size}}),
    dict(type='SampleRegions', max_regions=2),
    dict(type='PackRegionTextInputs'),
]))
