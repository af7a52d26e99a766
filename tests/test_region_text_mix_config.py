"""configs/_base_/datasets/region_text_mix_224.py: every set it names, validation and test
included, lies under its ``data_root`` (issue #26: the validation set used to stay at
``data/region_text/annotations/val.jsonl``, inherited from region_text_224.py). That the
validation set builds and evaluates from the layout it names is tested through the configs
that use it (tests/test_user_path_configs.py)."""
import os.path as osp
import re

from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MIX = osp.join(ROOT, 'configs', '_base_', 'datasets', 'region_text_mix_224.py')
NEW_ROOT = '/mnt/datasets/'


def user_copy(tmp_path, data_root: str) -> str:
    """The mix file as a user copies it and sets ``data_root`` (its base found in place)."""
    text = open(MIX).read()
    text, n_root = re.subn(r"^data_root = .*$", f'data_root = {data_root!r}', text,
                           flags=re.M)
    n_base = text.count("'./region_text_224.py'")
    text = text.replace("'./region_text_224.py'",
                        repr(osp.join(osp.dirname(MIX), 'region_text_224.py')))
    assert (n_root, n_base) == (1, 1), 'the mix file changed shape: update this test'
    path = tmp_path / 'my_mix.py'
    path.write_text(text)
    return str(path)


def dumped(cfg: Config, tmp_path) -> Config:
    """``cfg`` written with ``Config.dump`` and read back (what a work dir holds)."""
    path = tmp_path / 'dumped.py'
    cfg.dump(str(path))
    return Config.fromfile(str(path))


def ann_files(cfg: Config) -> dict:
    """Annotation file of every set, joined to its dataset's ``data_root``."""
    files = {f'train{i}': osp.join(d.data_root, d.ann_file)
             for i, d in enumerate(cfg.train_dataloader.dataset.datasets)}
    for split in ('val', 'test'):
        dataset = cfg[f'{split}_dataloader'].dataset
        files[split] = osp.join(dataset.data_root, dataset.ann_file)
    return files


def test_shipped_mix_config_validates_on_coco_val2017_under_its_data_root(tmp_path):
    cfg = dumped(Config.fromfile(MIX), tmp_path)
    files = ann_files(cfg)
    assert files['val'] == files['test'] == 'data/coco/annotations/coco2017_val_caption_vg.jsonl'
    assert all(f.startswith('data/') for f in files.values()), files
    val = cfg.val_dataloader.dataset
    # an evaluation set: the base's test pipeline and vocabulary, val2017 images
    assert val.test_mode and val.return_vocabulary and val.data_prefix == dict(img='val2017/')
    assert [s['type'] for s in val.pipeline][-1] == 'PackRegionTextInputs'
    assert cfg.test_dataloader.to_dict() == cfg.val_dataloader.to_dict()


def test_edited_data_root_moves_every_set_validation_included(tmp_path):
    cfg = dumped(Config.fromfile(user_copy(tmp_path, NEW_ROOT)), tmp_path)
    files = ann_files(cfg)
    assert set(files) == {'train0', 'train1', 'train2', 'val', 'test'}
    outside = {k: f for k, f in files.items() if not f.startswith(NEW_ROOT)}
    assert outside == {}, f'not under the edited data_root {NEW_ROOT}: {outside}'


def test_cfg_options_move_the_validation_set(tmp_path):
    """``--cfg-options val_dataloader.dataset.data_root=...`` (tools/train.py merges it with
    ``Config.merge_from_dict``) moves the validation set: its ``ann_file`` is relative."""
    cfg = Config.fromfile(MIX)
    cfg.merge_from_dict({'val_dataloader.dataset.data_root': '/mnt/coco/',
                         'test_dataloader.dataset.data_root': '/mnt/coco/'})
    files = ann_files(dumped(cfg, tmp_path))
    assert files['val'] == files['test'] == '/mnt/coco/annotations/coco2017_val_caption_vg.jsonl'


def test_a_child_redefining_data_root_does_not_move_the_base_sets(tmp_path):
    """Why the file says to set ``data_root`` in it (or a copy), not in a child: MMEngine
    resolves a base's variables inside the base. If this starts failing, MMEngine learnt
    to re-resolve them: update the comment in the mix file."""
    child = tmp_path / 'child.py'
    child.write_text(f'_base_ = [{MIX!r}]\ndata_root = {NEW_ROOT!r}\n')
    cfg = Config.fromfile(str(child))
    assert cfg.data_root == NEW_ROOT
    assert not any(f.startswith(NEW_ROOT) for f in ann_files(cfg).values())
