# ./region_text_224.py with the paper's pre-processing [paper: Table A]: long-side resize with
# centred padding (tf.image.resize_with_pad), no other augmentation; at most M = 4 regions
# sampled per image for each update [paper: eq. 2, Table A].
_base_ = ['./region_text_224.py']
img_size = (224, 224)
train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='ResizeWithPad', size=img_size),
    dict(type='SampleRegions', max_regions=4),
    dict(type='PackRegionTextInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='ResizeWithPad', size=img_size),
    dict(type='PackRegionTextInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
