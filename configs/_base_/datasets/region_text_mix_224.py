# Several region-text sources mixed with fixed per-epoch sample counts (map-style data),
# 224 px: COCO captions + boxes, Visual Genome region descriptions and GRIT, all as ODVG
# (docs/datasets.md "Dataset by dataset" converts them; "Mixing sources" explains this file).
# ResumableSampleSizeSampler takes mmdet's CustomSampleSizeSampler arguments and resumes in
# O(1) (its state goes in the checkpoint); use it with ResumableIterBasedTrainLoop.
_base_ = ['./region_text_224.py']

data_root = 'data/'
coco = dict(
    type='RegionTextDataset',
    data_root=data_root + 'coco/',
    ann_file='annotations/coco2017_train_caption_vg.jsonl',
    data_prefix=dict(img='train2017/'),
    on_bad_record='skip',
    check_image_exists=False,
    pipeline={{_base_.train_pipeline}})
vg = dict(coco, data_root=data_root + 'vg/', ann_file='annotations/vg_regions_vg.jsonl',
          data_prefix=dict(img=''))
grit = dict(coco, data_root=data_root + 'grit/', ann_file='grit20m_vg.json',
            data_prefix=dict(img=''))

train_dataloader = dict(
    sampler=dict(
        _delete_=True,
        type='ResumableSampleSizeSampler',
        # samples per epoch: all of COCO (-1), 50k of VG, 1M of GRIT; or instead
        # weights=[1, 1, 8], epoch_size=2_000_000 (split in proportion, exactly)
        dataset_size=[-1, 50_000, 1_000_000],
        shuffle=True),
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        # per-file vocabularies differ; training does not use them
        ignore_keys=['classes', 'num_skipped_records'],
        datasets=[coco, vg, grit]))
