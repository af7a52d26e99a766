"""What only CUDA runs: the RoIAlign / NMS kernels on non-contiguous tensors, mixed
precision, and the inferencer on CUDA against CPU. Skipped, saying why, without CUDA."""
import os.path as osp

import pytest
import torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason='needs CUDA (torch.cuda.is_available() is False)')]


def _layouts(x):
    return {'contiguous': x.contiguous(),
            'channels_last': x.contiguous(memory_format=torch.channels_last),
            'transposed_view': x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)}


def test_roi_align_on_cuda_equals_cpu_in_every_layout():
    from cllip_mm.models.layers.roi_align import roi_align
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 16, 12, 10, generator=g)
    rois = torch.tensor([[0, 1.0, 2.0, 7.5, 9.0], [1, 0.0, 0.0, 10.0, 12.0], [1, 3.2, 4.1, 5.0, 6.6]])
    expected = roi_align(feats, rois, 3)
    for name, x in _layouts(feats.cuda()).items():
        torch.testing.assert_close(roi_align(x, rois.cuda(), 3).cpu(), expected,
                                   atol=1e-5, rtol=1e-5, msg=name)


def test_nms_on_cuda_equals_cpu_on_non_contiguous_boxes():
    from mmcv.ops import batched_nms
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(64, 2, generator=g) * 50
    boxes = torch.cat([xy, xy + 5 + torch.rand(64, 2, generator=g) * 20], 1)
    scores = torch.rand(64, generator=g)
    labels = torch.randint(0, 3, (64, ), generator=g)
    _, keep = batched_nms(boxes, scores, labels, dict(type='nms', iou_threshold=0.5))
    strided = torch.zeros(64, 8).cuda()
    strided[:, ::2] = boxes.cuda()  # a non-contiguous view of the same boxes
    view = strided[:, ::2]
    assert not view.is_contiguous()
    _, keep_cuda = batched_nms(view, scores.cuda()[::1], labels.cuda(),
                               dict(type='nms', iou_threshold=0.5))
    assert keep_cuda.cpu().tolist() == keep.tolist()


def test_amp_step_is_finite_and_close_to_fp32(make_tiny_cloc_cfg):
    from mmengine.dataset import pseudo_collate

    from cllip_mm.registry import DATASETS, MODELS
    from cllip_mm.utils import register_all_modules
    register_all_modules()
    cfg = make_tiny_cloc_cfg()
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).cuda()
    train_set = DATASETS.build(cfg.train_dataloader.dataset)
    data = model.data_preprocessor(pseudo_collate([train_set[i] for i in range(8)]), True)
    torch.manual_seed(1)
    fp32 = model(**data, mode='loss')
    torch.manual_seed(1)
    with torch.autocast('cuda', dtype=torch.float16):
        amp = model(**data, mode='loss')
    for key in ('loss_clip', 'loss_region', 'loss_ground'):
        assert torch.isfinite(amp[key]), key
        torch.testing.assert_close(amp[key].float(), fp32[key], atol=0.05, rtol=0.05, msg=key)


def test_inferencer_on_cuda_equals_cpu(tiny_cloc_checkpoint, tiny_region_set):
    import glob

    from cllip_mm.apis import RegionInferencer
    cfg_path, ckpt = tiny_cloc_checkpoint
    images = sorted(glob.glob(osp.join(tiny_region_set, 'images', 'val', '*.jpg')))[:2] or \
        sorted(glob.glob(osp.join(tiny_region_set, '**', '*.jpg'), recursive=True))[:2]
    boxes = [[[2, 2, 30, 30], [10, 5, 40, 40]]] * 2
    out = {}
    for device in ('cpu', 'cuda'):
        inferencer = RegionInferencer(cfg_path, ckpt, device=device)
        out[device] = inferencer(images, task='embed', boxes=boxes)['predictions']
    for cpu, cuda in zip(out['cpu'], out['cuda']):
        torch.testing.assert_close(torch.as_tensor(cuda['embeds']), torch.as_tensor(cpu['embeds']),
                                   atol=1e-4, rtol=1e-4)
