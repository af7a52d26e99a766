"""A CLIP-baseline checkpoint (no Prompter) converts with
tools/model_converters/cllip_to_mmdet.py without hand-picked flags: the backbone and text
tower are converted, the Prompter is reported as left out (not an error); asking for it
(``--parts``, or ``--config`` of a model that has one) still fails."""
import os.path as osp

import torch
from mmengine import Config

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def save_clip_baseline(tokenizer_dir: str, path: str) -> dict:
    """A random model of the demo's CLIP baseline config (region terms off: no Prompter)."""
    from cllip_mm.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, 'configs/clip/clip_vit-tiny-p8_1xb64-1200it_synthetic.py'))
    cfg.model.tokenizer.path = tokenizer_dir
    torch.manual_seed(0)
    state_dict = MODELS.build(cfg.model).state_dict()
    torch.save({'state_dict': state_dict, 'meta': {'iter': 0}}, path)
    return state_dict


def test_clip_checkpoint_converts_without_the_prompter(synthetic_root, tmp_path, capsys,
                                                       load_tool):
    tool = load_tool('tools/model_converters/cllip_to_mmdet.py')
    src, dst = str(tmp_path / 'clip.pth'), str(tmp_path / 'clip_mmdet.pth')
    source = save_clip_baseline(osp.join(synthetic_root, 'tokenizer'), src)
    assert not any(k.startswith('prompter.') for k in source)

    assert tool.main([src, dst]) == 0
    printed = capsys.readouterr().out
    assert 'left out prompter: the source has no prompter.* tensors' in printed
    assert 'MISSING' not in printed and 'Result: OK' in printed
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['parts'] == ['backbone', 'language_model']
    assert ckpt['meta']['left_out'] == ['prompter']
    converted = ckpt['state_dict']
    assert {k.split('.')[0] for k in converted} == {'backbone', 'language_model'}
    assert torch.equal(converted['backbone.vit.conv1.weight'], source['image_encoder.conv1.weight'])
    assert len(converted) == sum(k.startswith(('image_encoder.', 'text_encoder.')) for k in source)


def test_asking_for_the_missing_prompter_still_fails(synthetic_root, tmp_path, capsys, tiny_env,
                                                     load_tool, repo_root):
    tool = load_tool('tools/model_converters/cllip_to_mmdet.py')
    src, dst = str(tmp_path / 'clip.pth'), str(tmp_path / 'clip_mmdet.pth')
    save_clip_baseline(osp.join(synthetic_root, 'tokenizer'), src)

    assert tool.main([src, dst, '--parts', 'backbone', 'prompter']) == 1
    assert 'MISSING PARTS (not in the source): prompter' in capsys.readouterr().out
    # the zero-shot region classifier needs the Prompter: its config asks for it
    zeroshot = osp.join(repo_root, 'configs/downstream/ov_region_cls/'
                        'cloc-prompter_vit-tiny-p8_zeroshot_ov-synthetic.py')
    assert tool.main([src, dst, '--config', zeroshot]) == 1
    assert 'MISSING PARTS (not in the source): prompter' in capsys.readouterr().out
    # Grounding DINO needs only the backbone and the text tower
    ov = osp.join(repo_root, 'configs/downstream/ov_coco/'
                  'grounding-dino_cloc-vit-tiny-p8_1xb2-4it_ov-synthetic.py')
    assert tool.main([src, dst, '--config', ov]) == 0
    printed = capsys.readouterr().out
    assert 'Result: OK' in printed and 'left out prompter' not in printed

