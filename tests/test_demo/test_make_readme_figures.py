"""demo/make_readme_figures.py writes the three README pictures from a checkpoint."""
import importlib.util
import os.path as osp

import mmcv

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def regions_named_right(cfg_path, ckpt, data_root, num):
    """The reference count, outside the tool and the inferencer: CLOC.predict on the val
    pipeline, argmax of each region's class scores against its label, over the first
    ``num`` images with 2 regions or more (the tool's pick)."""
    import torch
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate

    from cllip_mm.registry import DATASETS, MODELS
    cfg = Config.fromfile(cfg_path)
    cfg.val_dataloader.dataset.data_root = data_root.rstrip('/') + '/'
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    picked = [i for i in range(len(dataset))
              if len(dataset.get_data_info(i)['gt_phrases']) >= 2][:num]
    model = MODELS.build(cfg.model)
    model.load_state_dict(torch.load(ckpt, map_location='cpu')['state_dict'])
    model.eval()
    right = total = 0
    with torch.no_grad():
        data = model.data_preprocessor(pseudo_collate([dataset[i] for i in picked]), False)
        for sample in model(**data, mode='predict'):
            labels = sample.gt_regions.labels
            right += int((sample.pred_regions.scores.argmax(-1) == labels).sum())
            total += len(labels)
    return right, total


def test_make_readme_figures(tiny_cloc_checkpoint, tiny_region_set, tmp_path, capsys):
    """Two different models (the tiny checkpoint, and its weights with more noise as the
    baseline): each row's 'named right' count is the one CLOC.predict gives, and the
    baseline's row is drawn from the baseline (it differs from the first row).

    Broken variant checked (fails this test): the baseline row drawn with the first
    model's inferencer (``region_label_row(cloc, ...)`` for the baseline)."""
    import torch
    cfg_path, ckpt = tiny_cloc_checkpoint
    baseline = str(tmp_path / 'baseline.pth')
    state = torch.load(ckpt, map_location='cpu')
    g = torch.Generator().manual_seed(7)
    state['state_dict'] = {k: v + torch.randn(v.shape, generator=g) * 0.5
                           if v.is_floating_point() else v for k, v in state['state_dict'].items()}
    torch.save(state, baseline)
    spec = importlib.util.spec_from_file_location(
        'make_readme_figures', osp.join(REPO, 'demo/make_readme_figures.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out_dir = str(tmp_path / 'figures')
    tool.main(['--config', cfg_path, '--weights', ckpt, '--baseline-config', cfg_path,
               '--baseline-weights', baseline, '--data-root', tiny_region_set, '--num', '4',
               '--min-size', '96', '--out-dir', out_dir])
    assert torch.is_grad_enabled()  # the script leaves no global state behind
    labels = mmcv.imread(osp.join(out_dir, 'region_labels.png'))
    grounding = mmcv.imread(osp.join(out_dir, 'grounding.png'))
    heatmap = mmcv.imread(osp.join(out_dir, 'heatmap.png'))
    # two rows (model, baseline) of the same four panels (short side >= 96 px), 6 px gaps
    assert grounding.shape == heatmap.shape and min(grounding.shape[:2]) >= 96
    assert labels.shape == (2 * grounding.shape[0] + 6, grounding.shape[1], 3)
    printed = capsys.readouterr().out
    cloc, clip = [line.split(': ')[1] for line in printed.splitlines() if 'region labels' in line]
    expected = [regions_named_right(cfg_path, c, tiny_region_set, 4) for c in (ckpt, baseline)]
    assert cloc == '{}/{} right'.format(*expected[0])
    assert clip == '{}/{} right'.format(*expected[1])
    # the baseline's row is its own: its panels (below a 22 px title) differ from the first's
    panel = grounding.shape[0] - 22
    first, second = labels[22:22 + panel], labels[panel + 6 + 44:2 * panel + 6 + 44]
    assert first.shape == second.shape and (first != second).any()


def test_tile_brings_panels_to_one_height():
    spec = importlib.util.spec_from_file_location(
        'make_readme_figures', osp.join(REPO, 'demo/make_readme_figures.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    import numpy as np
    red = np.zeros((40, 20, 3), np.uint8)
    red[..., 0] = 255
    out = tool.tile([[red, np.zeros((20, 30, 3), np.uint8)], [red]], titles=['a', 'b'], gap=6,
                    title_height=10)
    # row 1: 20 + 6 + 60 wide (the second panel scaled x2); rows: 10 + 40, 6, 10 + 40
    assert out.shape == (106, 86, 3)
    assert (out[10:50, :20] == [255, 0, 0]).all() and (out[10:50, 26:86] == 0).all()
    assert (out[66:106, :20] == [255, 0, 0]).all() and (out[66:106, 20:] == 255).all()
