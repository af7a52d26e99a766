# Webdataset-style tar shards streamed by RegionTextShardStream and mixed by weight, 224 px
# (docs/datasets.md "Streaming tar shards"): GRIT's img2dataset tars as they are, plus a
# region-text set written as shards by tools/dataset_converters/region_text2shards.py.
# Resumes in O(1) with ResumableIterBasedTrainLoop (stream state in the checkpoint).
_base_ = ['./region_text_224.py']

data_root = 'data/'
# the stream decodes the image: region_text_224's train pipeline without its loading step
stream_pipeline = [
    dict(type='RandomResizedCropWithRegions', size=(224, 224), scale=(0.6, 1.0),
         min_area_ratio=0.3),
    dict(type='RandomFlipWithPhrases', prob=0.5, direction='horizontal'),
    dict(type='SampleRegions', max_regions=8),
    dict(type='PackRegionTextInputs'),
]
train_dataloader = dict(
    sampler=None,  # an IterableDataset splits itself among ranks and workers
    dataset=dict(
        _delete_=True,
        type='RegionTextShardStream',
        data_root=data_root,
        sources=[
            dict(shards='grit/{00000..01999}.tar', weight=3.0),
            dict(shards='region_text/shards/train-{00000..00099}.tar', weight=1.0),
        ],
        mode='resampled',  # or 'epoch': every sample once per epoch and source
        block_size=256,
        pipeline=stream_pipeline))
