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
