"""The configs of the paths users take first: continue from OpenAI / open_clip CLIP on the
COCO + Visual Genome + GRIT mix, ViT-B/16 at 224 px and ViT-L/14 at 336 px (issue #26).

Each is read back from a dump (bf16, the resumable pair, a real validation set, the
checkpoint and tokenizer it names) and trained one iteration through MMEngine's Runner on
CPU, as shipped except for what a CPU test must change (random weights instead of the
CLIP checkpoint, batch 2, no workers, float32 instead of bf16 autocast, small per-epoch
source counts, no gradient checkpointing, no checkpoint written, bad records raise
instead of being skipped), on tiny data written where the config and docs/datasets.md put it:
the working directory holds ``data/coco``, ``data/vg``, ``data/grit`` (the converters'
ODVG files and images) and ``data/tokenizers/<name>`` (a CLIP BPE tokenizer directory).
The validation at the end of that iteration runs the config's COCO val2017 set and
metrics."""
import importlib.util
import json
import os
import os.path as osp
import shutil

import pytest
import torch
from mmengine.config import Config

# over ~30 s on 2 cores: left out of the fast subset (-m "not slow")
pytestmark = pytest.mark.slow

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(ROOT, 'configs', 'cloc')
#: config -> (image size, activation, checkpoint, tokenizer directory)
USER_PATH = {
    'cloc_vit-b16_openai-clip-pre_8xb128-10k_coco-vg-grit.py':
        (224, 'quick_gelu', 'checkpoints/clip_vit-b16_openai.pth',
         'data/tokenizers/clip-vit-base-patch16'),
    'cloc_vit-b16_laion2b-clip-pre_8xb128-10k_coco-vg-grit.py':
        (224, 'gelu', 'checkpoints/clip_vit-b16_laion2b.pth',
         'data/tokenizers/clip-vit-base-patch16'),
    'cloc_vit-l14-336_openai-clip-pre_8xb64-10k_coco-vg-grit.py':
        (336, 'quick_gelu', 'checkpoints/clip_vit-l14-336_openai.pth',
         'data/tokenizers/clip-vit-large-patch14-336'),
}
#: (data root, annotation file, image folder) of each source, as docs/datasets.md writes
#: them (the converters' outputs); the last one is the validation set.
LAYOUT = [
    ('data/coco/', 'annotations/coco2017_train_caption_vg.jsonl', 'train2017/'),
    ('data/vg/', 'annotations/vg_regions_vg.jsonl', 'VG_100K/'),
    ('data/grit/', 'grit20m_vg.json', 'images/00000/'),
    ('data/coco/', 'annotations/coco2017_val_caption_vg.jsonl', 'val2017/'),
]


def load_module(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dumped(name: str, tmp_path) -> Config:
    path = tmp_path / 'dumped.py'
    Config.fromfile(osp.join(CONFIGS, name)).dump(str(path))
    return Config.fromfile(str(path))


def test_every_user_path_config_is_listed():
    shipped = {osp.basename(p) for p in os.listdir(CONFIGS) if p.endswith('_coco-vg-grit.py')}
    assert shipped == set(USER_PATH)


@pytest.mark.parametrize('name', sorted(USER_PATH))
def test_dumped_user_path_config(name, tmp_path):
    size, act, checkpoint, tokenizer = USER_PATH[name]
    cfg = dumped(name, tmp_path)
    # bf16 autocast, the O(1) resumable loop and the mix's resumable sampler
    assert (cfg.optim_wrapper.type, cfg.optim_wrapper.dtype) == ('AmpOptimWrapper', 'bfloat16')
    assert cfg.train_cfg.type == 'ResumableIterBasedTrainLoop'
    assert cfg.train_dataloader.sampler.type == 'ResumableSampleSizeSampler'
    # COCO + VG + GRIT, and a real validation set (COCO val2017, evaluated every 2k)
    sources = cfg.train_dataloader.dataset.datasets
    assert [(d.data_root, d.ann_file) for d in sources] == [x[:2] for x in LAYOUT[:3]]
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        val = loader.dataset
        assert (val.data_root, val.ann_file, val.data_prefix.img) == LAYOUT[3]
        assert val.test_mode and val.return_vocabulary
    assert cfg.val_cfg.type == 'ValLoop' and cfg.val_evaluator
    assert cfg.train_cfg.val_interval == 2000
    # the size of its name, the weights it continues from and their activation
    assert cfg.model.image_encoder.img_size == size
    for step in cfg.train_dataloader.dataset.datasets[0].pipeline:
        if step['type'] == 'RandomResizedCropWithRegions':
            assert tuple(step['size']) == (size, size)
    assert [tuple(s['scale']) for s in cfg.val_dataloader.dataset.pipeline
            if s['type'] == 'Resize'] == [(size, size)]
    assert cfg.model.image_encoder.act == cfg.model.text_encoder.act == act
    assert cfg.model.init_cfg == dict(type='Pretrained', checkpoint=checkpoint)
    assert cfg.model.tokenizer.path == tokenizer
    assert cfg.load_from is None


def openai_hf_config(size: int):
    """The config.json of openai/clip-vit-base-patch16 or openai/clip-vit-large-patch14-336
    (transformers' defaults + the sizes; legacy eos id 2), written here: no download."""
    from transformers import CLIPConfig
    text = dict(eos_token_id=2, bos_token_id=0, pad_token_id=1, hidden_act='quick_gelu')
    if size == 224:
        return CLIPConfig(vision_config=dict(patch_size=16, hidden_act='quick_gelu'),
                          text_config=text)
    return CLIPConfig(
        vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                           num_attention_heads=16, image_size=336, patch_size=14,
                           projection_dim=768, hidden_act='quick_gelu'),
        text_config=dict(text, hidden_size=768, intermediate_size=3072,
                         num_attention_heads=12, projection_dim=768),
        projection_dim=768)


@pytest.mark.parametrize('name', [n for n in sorted(USER_PATH) if '_openai-' in n])
def test_openai_config_loads_every_encoder_weight(name):
    """Every weight of OpenAI's CLIP (HF layout, shapes on the meta device) finds its
    place in the config's model; only the modules CLIP lacks start fresh."""
    from transformers import CLIPModel

    from cllip_mm.models.converters import import_clip
    hf_config = openai_hf_config(USER_PATH[name][0])
    with torch.device('meta'):
        hf = CLIPModel(hf_config)
    cfg = Config.fromfile(osp.join(CONFIGS, name))
    report = import_clip(hf.state_dict(), 'hf', hf_config=hf_config.to_dict(),
                         target_cfg=cfg.model.to_dict()).report
    assert not report.mismatched and not report.unused and report.ok
    assert {k.split('.')[0] for k in report.new} == {'prompter', 'grounding_head', 'region_loss'}
    assert 'clip_loss.logit_scale' in report.loaded


def write_tiny_mix(tiny_region_set: str, root: str) -> dict:
    """The tiny synthetic set as the mix's ODVG files and images, under ``root``: 4 images
    per training source and 4 validation images, converted by synthetic_to_coco.py's
    ODVG grounding writer. Returns the number of records per annotation file."""
    tool = load_module(osp.join(ROOT, 'tools', 'dataset_converters', 'synthetic_to_coco.py'),
                       'synthetic_to_coco_for_user_path_test')
    train = tool.load_split(tiny_region_set, 'annotations/train.jsonl')
    val = tool.load_split(tiny_region_set, 'annotations/val.jsonl')
    parts = [train[0:4], train[4:8], train[8:12], val[0:4]]
    counts = {}
    for (data_root, ann_file, folder), records in zip(LAYOUT, parts):
        lines, _ = tool.to_odvg_caption_grounding(records)
        for line, record in zip(lines, records):
            name = osp.basename(record['file_name'])
            os.makedirs(osp.join(root, data_root, folder), exist_ok=True)
            shutil.copy(osp.join(tiny_region_set, record['file_name']),
                        osp.join(root, data_root, folder, name))
            # COCO's file names are relative to its image folder (data_prefix); VG's
            # and GRIT's carry their folder (docs/datasets.md)
            line['filename'] = name if data_root == 'data/coco/' else folder + name
        path = osp.join(root, data_root, ann_file)
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.writelines(json.dumps(line) + '\n' for line in lines)
        counts[data_root + ann_file] = len(lines)
    return counts


class Recorder:
    """Image sizes seen by the image encoder."""

    def __init__(self):
        self.sizes = []

    def __call__(self, module, args):
        self.sizes.append(tuple(args[0].shape[-2:]))


@pytest.mark.parametrize('name', sorted(USER_PATH))
def test_user_path_config_trains_one_iteration_and_validates(name, tiny_region_set, tmp_path,
                                                             monkeypatch):
    from mmengine.runner import Runner

    from cllip_mm.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    size, act, _, tokenizer = USER_PATH[name]
    tiny_clip = load_module(osp.join(ROOT, 'tests', 'test_models', 'test_converters',
                                     'tiny_clip.py'), 'tiny_clip_for_user_path_test')
    monkeypatch.chdir(tmp_path)  # the config's relative data/ paths resolve here
    counts = write_tiny_mix(tiny_region_set, str(tmp_path))
    shutil.copytree(tiny_clip.make_clip_tokenizer(tmp_path / 'tok'), tokenizer)

    cfg = Config.fromfile(osp.join(CONFIGS, name))
    cfg.work_dir = str(tmp_path / 'work_dir')
    cfg.experiment_name = f'user_path_{name}'
    cfg.visualizer.name = cfg.experiment_name
    cfg.model.init_cfg = None  # random weights: no CLIP checkpoint in a test
    cfg.model.image_encoder.grad_checkpointing = False  # L/14: same maths, faster on CPU
    assert cfg.load_from is None
    # MMEngine's AmpOptimWrapper needs an accelerator; BF16AmpOptimWrapper (bf16 autocast
    # on CPU) takes minutes for one B/16 backward on a CPU without native bf16: float32
    assert cfg.optim_wrapper.pop('dtype') == 'bfloat16'
    cfg.optim_wrapper.type = 'OptimWrapper'
    cfg.train_dataloader.sampler.dataset_size = [-1, 4, 4]  # was 50k VG, 1M GRIT
    for source in cfg.train_dataloader.dataset.datasets:
        # the tiny data has no bad record: the shipped 'skip' would hide a wrong layout
        assert source.on_bad_record == 'skip'
        source.on_bad_record = 'raise'
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.val_dataloader.dataset.indices = 2  # 2 of the 4 validation images
    cfg.train_cfg.update(max_iters=1, val_interval=1)
    cfg.param_scheduler = None
    cfg.default_hooks.checkpoint = None  # no multi-GB checkpoint in tmp
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None

    runner = Runner.from_cfg(cfg)
    loader = runner.train_dataloader
    assert [len(d) for d in loader.dataset.datasets] == list(counts.values())[:3]
    assert len(runner.val_dataloader.dataset) == 2
    model = runner.model
    # the activation of the weights it continues from, in both towers
    expected = 'QuickGELU' if act == 'quick_gelu' else 'GELU'
    for tower in (model.image_encoder, model.text_encoder):
        assert {type(m).__name__ for m in tower.modules()} & {'QuickGELU', 'GELU'} == {expected}
    recorder = Recorder()
    model.image_encoder.register_forward_pre_hook(recorder)
    before = {k: v.detach().clone() for k, v in model.named_parameters()
              if k.startswith(('prompter.', 'image_encoder.'))}
    runner.train()

    assert runner.iter == 1
    assert type(runner.train_loop).__name__ == 'ResumableIterBasedTrainLoop'
    for key in ('loss_clip', 'loss_region', 'loss_ground'):
        value = runner.message_hub.get_scalar(f'train/{key}').current()
        assert torch.isfinite(torch.tensor(value)), key
    # one optimizer step moved the pretrained tower and the fresh Prompter
    for prefix in ('prompter.', 'image_encoder.'):
        assert any(not torch.equal(v, dict(model.named_parameters())[k])
                   for k, v in before.items() if k.startswith(prefix)), prefix
    # trained and validated at the config's size
    assert set(recorder.sizes) == {(size, size)}
    val_keys = [k for k in runner.message_hub.log_scalars if k.startswith('val/')]
    assert val_keys, 'the validation set did not run'
