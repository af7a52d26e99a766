from .region_text_data_sample import RegionTextDataSample, SampleList

__all__ = ['RegionTextDataSample', 'SampleList']
