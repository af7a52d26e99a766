"""RegionInferencer: same numbers as CLOC.predict through the test pipeline, for every
kind of input; batched == one by one; Hugging Face directory == MMEngine checkpoint."""
import os.path as osp
import pathlib

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from cllip_mm.apis import RegionInferencer, to_bgr_hwc
from cllip_mm.registry import DATASETS, MODELS

ATOL = 1e-5


@pytest.fixture(scope='module')
def inferencer(tiny_cloc_checkpoint):
    cfg_path, ckpt = tiny_cloc_checkpoint
    return RegionInferencer(cfg_path, ckpt, device='cpu')


@pytest.fixture(scope='module')
def predicted(tiny_cloc_checkpoint):
    """CLOC.predict on the val split through the config's test dataloader pipeline:
    (data infos, data samples with predictions), 6 images."""
    cfg_path, ckpt = tiny_cloc_checkpoint
    cfg = Config.fromfile(cfg_path)
    model = MODELS.build(cfg.model)
    model.load_state_dict(torch.load(ckpt, weights_only=True)['state_dict'])
    model.eval()
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    items = [dataset[i] for i in range(6)]
    with torch.no_grad():
        samples = model.test_step(pseudo_collate(items))
    return [dataset.get_data_info(i) for i in range(6)], samples, dataset.metainfo['classes']


def _compare_embeds(out, samples):
    for i, sample in enumerate(samples):
        np.testing.assert_allclose(out['image_embeds'][i], sample.image_embed.numpy(), atol=ATOL)
        np.testing.assert_allclose(out['region_embeds'][i], sample.pred_regions.embeds.numpy(),
                                   atol=ATOL)


def test_embeddings_equal_predict_for_paths_and_arrays(inferencer, predicted):
    infos, samples, _ = predicted
    paths = [info['img_path'] for info in infos]
    boxes = [info['gt_bboxes'] for info in infos]
    bgr = [mmcv.imread(p) for p in paths]
    assert len({b.shape for b in bgr}) > 1  # the pipeline resizes images of several sizes

    _compare_embeds(inferencer.embed(images=paths, boxes=boxes), samples)
    _compare_embeds(inferencer.embed(images=bgr, boxes=boxes), samples)
    rgb = [np.ascontiguousarray(b[..., ::-1]) for b in bgr]
    _compare_embeds(inferencer.embed(images=rgb, boxes=boxes, channel_order='rgb'), samples)
    # Non-contiguous views: reversed channels (negative stride), CHW transposes, a crop
    # of a larger canvas, and a CHW RGB tensor (torchvision's layout).
    _compare_embeds(inferencer.embed(images=[b[..., ::-1] for b in bgr], boxes=boxes,
                                     channel_order='rgb'), samples)
    chw = [b.transpose(2, 0, 1) for b in bgr]
    assert not chw[0].flags['C_CONTIGUOUS']
    _compare_embeds(inferencer.embed(images=chw, boxes=boxes), samples)
    crops = []
    for b in bgr:
        canvas = np.zeros((b.shape[0] + 9, b.shape[1] + 13, 3), np.uint8)
        canvas[4:4 + b.shape[0], 7:7 + b.shape[1]] = b
        crops.append(canvas[4:4 + b.shape[0], 7:7 + b.shape[1]])
    _compare_embeds(inferencer.embed(images=crops, boxes=boxes), samples)
    tensors = [torch.from_numpy(r).permute(2, 0, 1) for r in rgb]
    _compare_embeds(inferencer.embed(images=tensors, boxes=boxes, channel_order='rgb'), samples)
    # A local file URL reads the same file.
    urls = [pathlib.Path(p).resolve().as_uri() for p in paths]
    _compare_embeds(inferencer.embed(images=urls, boxes=boxes), samples)


def test_wrong_channel_order_changes_embeddings(inferencer, predicted):
    """The comparison above can fail: RGB given as BGR gives other embeddings."""
    infos, samples, _ = predicted
    rgb = mmcv.imread(infos[0]['img_path'], channel_order='rgb')
    out = inferencer.embed(images=rgb, boxes=infos[0]['gt_bboxes'])
    assert not np.allclose(out['image_embeds'][0], samples[0].image_embed.numpy(), atol=1e-3)


def test_classify_and_ground_equal_predict(inferencer, predicted):
    infos, samples, classes = predicted
    paths = [info['img_path'] for info in infos]
    preds = inferencer.classify_regions(paths, [i['gt_bboxes'] for i in infos], classes,
                                        batch_size=3)
    for info, pred, sample in zip(infos, preds, samples):
        np.testing.assert_allclose(pred['similarity'], sample.pred_regions.scores.numpy(), atol=ATOL)
        assert pred['label_names'] == [classes[i] for i in sample.pred_regions.scores.argmax(-1)]
        # boxes come back in the original image's frame
        np.testing.assert_allclose(pred['bboxes'], info['gt_bboxes'], atol=1e-3)
        np.testing.assert_allclose(pred['probs'].sum(-1), 1, atol=1e-5)

    grounded = inferencer.ground(paths, [i['gt_phrases'] for i in infos], batch_size=3)
    for info, pred, sample in zip(infos, grounded, samples):
        h, w = info['height'], info['width']
        # predict's boxes are pixels of the 32x32 input; the inferencer's of the image
        expected = sample.pred_regions.ground_bboxes.numpy() * np.array(
            [w / 32, h / 32, w / 32, h / 32], np.float32)
        np.testing.assert_allclose(pred['bboxes'], expected, atol=1e-3)
        assert pred['phrases'] == info['gt_phrases'] and pred['scores'].shape == (len(expected), )


def test_batched_equals_one_by_one(inferencer, predicted):
    infos, _, classes = predicted
    paths = [info['img_path'] for info in infos]
    boxes = [info['gt_bboxes'] for info in infos]
    texts = [info['gt_phrases'] for info in infos]
    batched = dict(
        classify=inferencer.classify_regions(paths, boxes, classes, batch_size=4),
        ground=inferencer.ground(paths, texts, batch_size=4),
        heat=inferencer.similarity_map(paths, texts, batch_size=4),
        embed=inferencer.embed(images=paths, boxes=boxes, batch_size=4))
    for i, path in enumerate(paths):
        one = inferencer.classify_regions(path, boxes[i], classes)
        np.testing.assert_allclose(batched['classify'][i]['probs'], one['probs'], atol=ATOL)
        one = inferencer.ground(path, texts[i])
        np.testing.assert_allclose(batched['ground'][i]['bboxes'], one['bboxes'], atol=1e-4)
        np.testing.assert_allclose(batched['ground'][i]['scores'], one['scores'], atol=ATOL)
        one = inferencer.similarity_map(path, texts[i])
        np.testing.assert_allclose(batched['heat'][i]['maps'], one['maps'], atol=ATOL)
        one = inferencer.embed(images=path, boxes=boxes[i])
        np.testing.assert_allclose(batched['embed']['region_embeds'][i], one['region_embeds'][0],
                                   atol=ATOL)


def test_similarity_map_shapes_and_meaning(inferencer, predicted):
    infos, _, _ = predicted
    info = next(i for i in infos if len(i['gt_phrases']) >= 2)
    texts = info['gt_phrases'][:2]
    out = inferencer.similarity_map(info['img_path'], texts)
    assert out['texts'] == texts
    assert out['grid'].shape == (2, 4, 4)  # 32 px input, patch 8
    assert out['maps'].shape == (2, info['height'], info['width'])
    # each grid value is the cosine of the text with the Prompter's embedding of the
    # box around that patch
    box = np.array([[8., 16., 16., 24.]]) * np.array([info['width'] / 32, info['height'] / 32] * 2)
    region = inferencer.embed(images=info['img_path'], boxes=box, phrases=texts)
    cosine = region['region_embeds'][0][0] @ region['phrase_embeds'].T
    np.testing.assert_allclose(out['grid'][:, 2, 1], cosine, atol=1e-4)
    patch = inferencer.similarity_map(info['img_path'], texts, mode='patch')
    assert patch['grid'].shape == (2, 4, 4) and not np.allclose(patch['grid'], out['grid'])


def test_hf_directory_equals_checkpoint(inferencer, tiny_cloc_checkpoint, predicted, tmp_path):
    from cllip_mm.models.converters import export_cloc_to_hf
    cfg_path, _ = tiny_cloc_checkpoint
    cfg = Config.fromfile(cfg_path)
    model_cfg = cfg.model.to_dict()
    export = export_cloc_to_hf(inferencer.model, str(tmp_path / 'hf'), model_cfg,
                               tokenizer_path=model_cfg['tokenizer']['path'])
    assert export.eot_moved_to is not None  # the demo tokenizer's EOT id 2 is moved
    hf = RegionInferencer(str(tmp_path / 'hf'), device='cpu')

    infos, _, classes = predicted
    paths = [info['img_path'] for info in infos[:3]]
    boxes = [info['gt_bboxes'] for info in infos[:3]]
    phrases = [info['gt_phrases'] for info in infos[:3]]
    kwargs = dict(images=paths, boxes=boxes, texts=['a red circle on a mat'], phrases=classes[:5])
    ours, theirs = inferencer.embed(**kwargs), hf.embed(**kwargs)
    for key in ('image_embeds', 'text_embeds', 'phrase_embeds'):
        np.testing.assert_allclose(theirs[key], ours[key], atol=1e-4)
    for a, b in zip(theirs['region_embeds'], ours['region_embeds']):
        np.testing.assert_allclose(a, b, atol=1e-4)
    for a, b in zip(hf.classify_regions(paths, boxes, classes),
                    inferencer.classify_regions(paths, boxes, classes)):
        np.testing.assert_allclose(a['probs'], b['probs'], atol=1e-4)
    for a, b in zip(hf.ground(paths, phrases), inferencer.ground(paths, phrases)):
        np.testing.assert_allclose(a['bboxes'], b['bboxes'], atol=1e-3)


def test_config_read_from_the_checkpoint(inferencer, tiny_cloc_checkpoint, predicted):
    _, ckpt = tiny_cloc_checkpoint
    alone = RegionInferencer(weights=ckpt, device='cpu')
    infos, samples, _ = predicted
    _compare_embeds(alone.embed(images=[i['img_path'] for i in infos[:2]],
                                boxes=[i['gt_bboxes'] for i in infos[:2]]), samples[:2])


def test_pictures_and_predictions_written(inferencer, predicted, tmp_path):
    infos, _, _ = predicted
    path = infos[0]['img_path']
    name = osp.splitext(osp.basename(path))[0]
    pred = inferencer.ground(path, infos[0]['gt_phrases'], img_out_dir=str(tmp_path),
                             pred_out_dir=str(tmp_path))
    import json
    with open(tmp_path / 'preds' / f'{name}.json') as f:
        saved = json.load(f)
    np.testing.assert_allclose(saved['bboxes'], pred['bboxes'], atol=1e-5)
    assert saved['phrases'] == infos[0]['gt_phrases']
    picture = mmcv.imread(str(tmp_path / 'vis' / f'{name}.png'))
    assert picture.shape[:2] == (infos[0]['height'], infos[0]['width'])


def test_checkpoint_without_prompter_weights_is_an_error(tiny_cloc_checkpoint, tmp_path):
    cfg_path, ckpt = tiny_cloc_checkpoint
    state = torch.load(ckpt, weights_only=True)
    state['state_dict'] = {k: v for k, v in state['state_dict'].items()
                           if not k.startswith('prompter.')}
    torch.save(state, tmp_path / 'partial.pth')
    with pytest.raises(KeyError, match='prompter'):
        RegionInferencer(cfg_path, str(tmp_path / 'partial.pth'), device='cpu')


def test_bad_inputs_have_clear_errors(inferencer, predicted):
    infos, _, classes = predicted
    path = infos[0]['img_path']
    with pytest.raises(ValueError, match=r'boxes\[0\]\[1\]'):
        inferencer.classify_regions(path, [[1, 1, 5, 5], [6, 6, 2, 9]], classes)
    with pytest.raises(ValueError, match='0-1 scale'):
        inferencer.embed(images=np.random.rand(20, 20, 3))
    with pytest.raises(FileNotFoundError, match='inputs\\[0\\]'):
        inferencer.embed(images=osp.join(osp.dirname(path), 'missing.jpg'))
    with pytest.raises(ValueError, match='channel axis'):
        inferencer.embed(images=np.zeros((20, 20, 7), np.uint8))
    with pytest.raises(ValueError, match='vocabulary'):
        inferencer(path, task='classify', boxes=[[[1, 1, 5, 5]]])


def test_to_bgr_hwc_layouts():
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_bgr_hwc(bgr), bgr)
    np.testing.assert_array_equal(to_bgr_hwc(bgr[..., ::-1], channel_order='rgb'), bgr)
    np.testing.assert_array_equal(to_bgr_hwc(bgr.transpose(2, 0, 1)), bgr)
    rgba = np.concatenate([bgr[..., ::-1], np.full((5, 7, 1), 255, np.uint8)], -1)
    np.testing.assert_array_equal(to_bgr_hwc(rgba, channel_order='rgb'), bgr)
    grey = bgr[..., 0]
    np.testing.assert_array_equal(to_bgr_hwc(grey), np.repeat(grey[..., None], 3, -1))
    out = to_bgr_hwc(bgr)
    assert out.flags['C_CONTIGUOUS'] and not np.shares_memory(out, bgr)
    # a 3x3 image with 3 channels is ambiguous: 'auto' reads HWC, 'chw' is explicit
    cube = rng.integers(0, 256, (3, 3, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_bgr_hwc(cube, layout='chw'), cube.transpose(1, 2, 0))


def test_grounding_no_phrase_gives_empty_results(inferencer, predicted):
    infos, _, _ = predicted
    paths = [info['img_path'] for info in infos[:2]]
    # no phrase for any image, and no phrase for one of two images
    for texts in ([[], []], [[], list(infos[1]['gt_phrases'])]):
        preds = inferencer.ground(paths, texts)
        for pred, phrases in zip(preds, texts):
            assert pred['bboxes'].shape == (len(phrases), 4)
            assert pred['scores'].shape == (len(phrases), ) and pred['phrases'] == phrases
