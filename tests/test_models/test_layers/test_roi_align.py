"""RoIAlign through ``cllip_mm.models.layers.roi_align`` against a pure-PyTorch reference,
for every memory layout (mmcv's kernel reads storage, not strides)."""
import pytest
import torch
import torch.nn.functional as F

from cllip_mm.models.layers import boxes_to_rois, roi_align


def reference_roi_align(feats, rois, out_size, sampling_ratio):
    """Average RoIAlign (``aligned=True``) by bilinear sampling with ``grid_sample``.

    Bin (i, j) of a RoI averages ``sampling_ratio``^2 bilinear samples at
    ``x1 - 0.5 + (j + (s + 0.5) / sampling_ratio) * bin_w`` (and likewise in y),
    pixel centres at integer coordinates; borders clamp (boxes stay inside the map).
    """
    _, _, h, w = feats.shape
    out = []
    for roi in rois:
        b, x1, y1, x2, y2 = roi.tolist()
        bin_w, bin_h = (x2 - x1) / out_size, (y2 - y1) / out_size
        offsets = (torch.arange(out_size)[:, None] + (torch.arange(sampling_ratio)[None] + 0.5)
                   / sampling_ratio).flatten()  # [out * sr] in bins
        xs = x1 - 0.5 + offsets * bin_w
        ys = y1 - 0.5 + offsets * bin_h
        gy, gx = torch.meshgrid(ys, xs, indexing='ij')
        grid = torch.stack([2 * gx / (w - 1) - 1, 2 * gy / (h - 1) - 1], -1)[None]
        samples = F.grid_sample(feats[int(b)][None], grid.float(), mode='bilinear',
                                padding_mode='border', align_corners=True)[0]
        c = samples.shape[0]
        samples = samples.reshape(c, out_size, sampling_ratio, out_size, sampling_ratio)
        out.append(samples.mean(dim=(2, 4)))
    return torch.stack(out)


def layouts(x):
    """The same values [N, C, H, W] in three memory layouts."""
    return {
        'contiguous': x.contiguous(),
        'channels_last': x.contiguous(memory_format=torch.channels_last),
        'transposed_view': x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2),
    }


def random_boxes(b, r, generator):
    xy = torch.rand(b, r, 2, generator=generator) * 0.6
    wh = 0.15 + torch.rand(b, r, 2, generator=generator) * 0.35
    return torch.cat([xy, (xy + wh).clamp(max=1.0)], -1)


@pytest.mark.parametrize('layout', ['contiguous', 'channels_last', 'transposed_view'])
def test_matches_grid_sample_reference_in_every_layout(layout):
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 8, 12, 12, generator=g)
    rois = boxes_to_rois(random_boxes(2, 5, g), (12, 12))
    expected = reference_roi_align(feats, rois, 4, 2)
    got = roi_align(layouts(feats)[layout], rois, 4, 1.0, 2)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_reference_catches_a_scrambled_layout():
    """Control: the raw mmcv kernel on a transposed view is wrong (what the wrapper fixes)."""
    from mmcv.ops import roi_align as mmcv_roi_align
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 8, 12, 12, generator=g)
    rois = boxes_to_rois(random_boxes(2, 5, g), (12, 12))
    raw = mmcv_roi_align(layouts(feats)['transposed_view'], rois, 4, 1.0, 2, 'avg', True)
    assert (raw - reference_roi_align(feats, rois, 4, 2)).abs().max() > 0.1


def test_boxes_to_rois_rows():
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.25]], [[0.5, 0.5, 1.0, 1.0]]])
    rois = boxes_to_rois(boxes, (8, 16))  # h=8, w=16
    torch.testing.assert_close(rois, torch.tensor([[0., 0., 0., 8., 2.], [1., 8., 4., 16., 8.]]))


def test_keeps_dtype():
    feats = torch.randn(1, 4, 6, 6).to(torch.bfloat16)
    rois = torch.tensor([[0., 1., 1., 4., 4.]])
    assert roi_align(feats, rois, 2).dtype == torch.bfloat16
