"""demo/make_readme_figures.py writes the three README pictures from a checkpoint."""
import importlib.util
import os.path as osp

import mmcv

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_make_readme_figures(tiny_cloc_checkpoint, tiny_region_set, tmp_path, capsys):
    cfg_path, ckpt = tiny_cloc_checkpoint
    spec = importlib.util.spec_from_file_location(
        'make_readme_figures', osp.join(REPO, 'demo/make_readme_figures.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out_dir = str(tmp_path / 'figures')
    tool.main(['--config', cfg_path, '--weights', ckpt, '--baseline-config', cfg_path,
               '--baseline-weights', ckpt, '--data-root', tiny_region_set, '--num', '2',
               '--min-size', '96', '--out-dir', out_dir])
    import torch
    assert torch.is_grad_enabled()  # the script leaves no global state behind
    labels = mmcv.imread(osp.join(out_dir, 'region_labels.png'))
    grounding = mmcv.imread(osp.join(out_dir, 'grounding.png'))
    heatmap = mmcv.imread(osp.join(out_dir, 'heatmap.png'))
    # two rows (model, baseline) of the same two panels (short side >= 96 px), 6 px gaps
    assert grounding.shape == heatmap.shape and min(grounding.shape[:2]) >= 96
    assert labels.shape == (2 * grounding.shape[0] + 6, grounding.shape[1], 3)
    printed = capsys.readouterr().out
    # the same model on both rows names the same regions right
    cloc, clip = [line.split(': ')[1] for line in printed.splitlines() if 'region labels' in line]
    assert cloc == clip


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
