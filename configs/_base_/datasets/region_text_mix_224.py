# Several region-text sources mixed with fixed per-epoch sample counts (map-style data),
# 224 px: COCO captions + boxes, Visual Genome region descriptions and GRIT, all as ODVG
# (docs/datasets.md "Dataset by dataset" converts them; "Mixing sources" explains this file).
# ResumableSampleSizeSampler takes mmdet's CustomSampleSizeSampler arguments and resumes in
# O(1) (its state goes in the checkpoint); use it with ResumableIterBasedTrainLoop.
# Every set below, validation included, is under `data_root`: set it here (or in a copy of
# this file). A child config cannot re-point it by redefining `data_root` (MMEngine resolves
# a base's variables in the base): override the datasets' own `data_root` keys instead,
# e.g. --cfg-options val_dataloader.dataset.data_root=/mnt/coco/ (and test_dataloader...).
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

# Validation: COCO val2017 captions + boxes, converted like the training file
# (docs/datasets.md):  python tools/dataset_converters/coco_caption2odvg.py \
#   annotations/captions_val2017.json annotations/instances_val2017.json \
#   -o annotations/coco2017_val_caption_vg.jsonl
# Region classification then ranks the 80 COCO category names; the base's
# data/region_text/ set is not used.
val_dataloader = dict(
    dataset=dict(
        data_root=data_root + 'coco/',
        ann_file='annotations/coco2017_val_caption_vg.jsonl',
        data_prefix=dict(img='val2017/')))
test_dataloader = val_dataloader
