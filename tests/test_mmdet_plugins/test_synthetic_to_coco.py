import json
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from mmdet.datasets import CocoDataset, MDETRStyleRefCocoDataset, ODVGDataset
from mmdet.evaluation import RefExpMetric
from pycocotools.coco import COCO

from cllip_mm.datasets.synthetic import all_phrases


@pytest.fixture(scope='module')
def tool(load_tool):
    return load_tool('tools/dataset_converters/synthetic_to_coco.py')


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_coco_files_and_ov_split(synthetic_root, tool):
    out = osp.join(synthetic_root, 'mmdet')
    split = json.load(open(osp.join(out, 'ov_split.json')))
    assert split['classes'] == all_phrases()
    assert sorted(split['novel_classes']) == sorted(tool.DEFAULT_NOVEL_CLASSES)
    # every colour and shape is in both the base and the novel classes
    for word in ('red', 'circle', 'star'):
        assert any(word in c for c in split['novel_classes'])
        assert any(word in c for c in split['base_classes'])

    records = read_jsonl(osp.join(synthetic_root, 'annotations/val.jsonl'))
    coco = COCO(osp.join(out, 'instances_val.json'))
    assert len(coco.getImgIds()) == len(records)
    img = coco.loadImgs(1)[0]
    assert img['file_name'] == records[0]['image']
    anns = coco.loadAnns(coco.getAnnIds(imgIds=1))
    x1, y1, x2, y2 = records[0]['regions'][0]['bbox']
    assert anns[0]['bbox'] == pytest.approx([x1, y1, x2 - x1, y2 - y1])
    assert coco.loadCats(anns[0]['category_id'])[0]['name'] == records[0]['regions'][0]['phrase']

    seen = COCO(osp.join(out, 'instances_train_seen.json'))
    names = {seen.loadCats(a['category_id'])[0]['name'] for a in seen.loadAnns(seen.getAnnIds())}
    assert names and not names & set(split['novel_classes'])
    # mmdet's CocoDataset with the base classes reads it (novel boxes would raise).
    ds = CocoDataset(data_root=synthetic_root, ann_file='mmdet/instances_train_seen.json',
                     metainfo=dict(classes=tuple(split['base_classes'])),
                     data_prefix=dict(img=''), pipeline=[], test_mode=True)
    assert osp.isfile(ds[0]['img_path'])


def test_odvg_files(synthetic_root):
    od = ODVGDataset(data_root=synthetic_root, ann_file='mmdet/val_od.jsonl',
                     label_map_file='mmdet/label_map.json', data_prefix=dict(img=''),
                     pipeline=[], return_classes=True, test_mode=True)
    records = read_jsonl(osp.join(synthetic_root, 'annotations/val.jsonl'))
    info = od.get_data_info(0)
    labels = [od.label_map[str(i['bbox_label'])] for i in info['instances']]
    assert labels == [r['phrase'] for r in records[0]['regions']]

    vg = ODVGDataset(data_root=synthetic_root, ann_file='mmdet/val_vg.jsonl',
                     data_prefix=dict(img=''), pipeline=[], return_classes=True, test_mode=True)
    info = vg.get_data_info(0)
    for phrase in info['phrases'].values():
        (start, end), = phrase['tokens_positive']
        assert info['text'][start:end] == phrase['phrase']


def test_refexp_files_score_perfectly_with_ground_truth(synthetic_root):
    ann = osp.join(synthetic_root, 'mmdet/refexp_val.json')
    ds = MDETRStyleRefCocoDataset(data_root=synthetic_root, ann_file='mmdet/refexp_val.json',
                                  data_prefix=dict(img=''), pipeline=[], test_mode=True)
    metric = RefExpMetric(ann_file=ann, topk=(1, ))
    results = []
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert info['text'].startswith('the ') and len(info['instances']) == 1
        box = torch.tensor([info['instances'][0]['bbox']])
        results.append(dict(img_id=info['img_id'], bboxes=box.numpy(), scores=np.ones(1)))
    scores = metric.compute_metrics(results)
    assert scores['refcoco_precision@1'] == 1.0
    vg = read_jsonl(osp.join(synthetic_root, 'mmdet/refexp_val_vg.jsonl'))
    assert len(vg) == len(ds)


def test_proposals_file(synthetic_root):
    ds = CocoDataset(data_root=synthetic_root, ann_file='mmdet/instances_val.json',
                     proposal_file='mmdet/proposals_val.pkl',
                     metainfo=dict(classes=tuple(all_phrases())),
                     data_prefix=dict(img=''), pipeline=[], test_mode=True)
    info = ds.get_data_info(0)
    props = info['proposals']
    assert props['bboxes'].shape == (2 * len(info['instances']) + 10, 4)
    assert np.all(np.diff(props['scores']) <= 0)  # sorted
    assert (props['bboxes'][:, 2] <= info['width']).all()
    with open(osp.join(synthetic_root, 'mmdet/proposals_val.pkl'), 'rb') as f:
        assert '/'.join(info['img_path'].split('/')[-2:]) in pickle.load(f)


def test_referring_expressions_and_spans(tool):
    record = dict(phrases=['red circle', 'blue star', 'red circle', 'green star', 'green star',
                           'green star'],
                  bboxes=np.array([[50, 0, 60, 10], [0, 0, 5, 5], [10, 0, 20, 10],
                                   [0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5]], float))
    assert tool.referring_expressions(record) == [
        (0, 'the red circle on the right'), (1, 'the blue star'),
        (2, 'the red circle on the left')]
    assert tool.phrase_spans('a red circle and a red circle', ['red circle', 'red circle',
                                                               'blue star']) == [(2, 12), (19, 29), None]


def test_bad_records_name_file_line_and_field(tmp_path, tool):
    (tmp_path / 'annotations').mkdir()
    (tmp_path / 'img.jpg').write_bytes(b'')
    good = dict(image='img.jpg', width=10, height=10, caption='x',
                regions=[dict(bbox=[1, 1, 5, 5], phrase='red circle')])
    bad = dict(good, regions=[dict(bbox=[5, 5, 1, 1], phrase='red circle')])
    with open(tmp_path / 'annotations/train.jsonl', 'w') as f:
        f.write(json.dumps(good) + '\n' + json.dumps(bad) + '\n')
    with pytest.raises(ValueError, match=r'train.jsonl:2: field `regions\[0\].bbox`'):
        tool.convert(str(tmp_path), splits=['train'])
    with open(tmp_path / 'annotations/train.jsonl', 'w') as f:
        f.write(json.dumps(good) + '\n')
    (tmp_path / 'classes.txt').write_text('blue star\n')
    with pytest.raises(ValueError, match=r'record 1 \(img.jpg\).*red circle'):
        tool.convert(str(tmp_path), splits=['train'])
