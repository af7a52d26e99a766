# Copyright (c) cllip_mm contributors. All rights reserved.
"""Convert CLIP weights (Hugging Face, open_clip or OpenAI) into a cllip_mm checkpoint.

Examples::

    # a Hugging Face save_pretrained directory (config.json + model.safetensors)
    python tools/model_converters/clip_to_cllip.py checkpoints/clip-vit-base-patch16 \\
        checkpoints/clip_vit-b16_openai.pth --src-format hf --cfg-out checkpoints/clip_vit-b16_openai.py
    # an open_clip state dict for 336 px inputs
    python tools/model_converters/clip_to_cllip.py ViT-B-16_laion2b.bin out.pth \\
        --src-format open_clip --img-size 336

The output is an MMEngine checkpoint ``{'state_dict', 'meta'}`` keyed like
``CLOC.state_dict()`` (``image_encoder.*``, ``text_encoder.*``,
``clip_loss.logit_scale``), to load with ``model.init_cfg=dict(type='Pretrained',
checkpoint=...)`` or ``load_from``. The Prompter and grounding head are not in CLIP:
they start fresh (the report lists them as new). The printed config snippet is the
``model`` override (encoder architecture, activation, pooling rule, tokenizer, init)
that the checkpoint needs. The checkpoint's ``meta['cllip_mm_arch']`` records the activation
of each tower (and the tokenizer's type and vocabulary digest when a tokenizer is at hand):
``tools/test.py``, ``tools/benchmark.py``, the other converters and the mmdet plugins refuse
a model built with others (``cllip_mm.utils.weights_meta``). With ``--config`` the config's
activations are checked here already.
"""
import argparse
import json
import os.path as osp
import sys

try:
    import cllip_mm  # noqa: F401
except ImportError:  # run from a source checkout without `pip install -e .`
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
from cllip_mm.models.converters import (  # noqa: E402
    SRC_FORMATS,
    copy_tokenizer_files,
    format_config,
    import_clip,
    load_hf_pretrained,
    load_state_dict_file,
    save_mmengine_checkpoint,
)
from cllip_mm.utils.weights_meta import (  # noqa: E402
    META_KEY,
    cfg_weights_meta,
    compare_weights_meta,
    tokenizer_identity,
)
from cllip_mm.version import __version__  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Convert CLIP weights to a cllip_mm checkpoint')
    parser.add_argument('src', help='HF save_pretrained directory, or a .pt / .pth / .bin / '
                        '.safetensors state dict (open_clip, OpenAI)')
    parser.add_argument('out', help='output checkpoint (.pth)')
    parser.add_argument('--src-format', choices=SRC_FORMATS, required=True)
    parser.add_argument('--img-size', type=int, nargs='+',
                        help='input size (one int, or h w) to resize the position embedding for')
    parser.add_argument('--act', choices=('gelu', 'quick_gelu'),
                        help='activation (default: HF hidden_act; quick_gelu for openai, gelu '
                        'for open_clip; open_clip "-quickgelu" / OpenAI-pretrained models need '
                        'quick_gelu)')
    parser.add_argument('--vision-heads', type=int, help='attention heads (open_clip / openai; '
                        'default width // 64)')
    parser.add_argument('--text-heads', type=int, help='as --vision-heads, for the text tower')
    parser.add_argument('--config', help='a CLOC config to check the weights against (default: '
                        'the architecture read off the source)')
    parser.add_argument('--tokenizer-out', help='where to copy the tokenizer files of an HF '
                        'source (default: <out without .pth>_tokenizer)')
    parser.add_argument('--tokenizer', help='tokenizer directory to name in the config snippet '
                        '(e.g. a CLIPTokenizer directory for open_clip / openai weights)')
    parser.add_argument('--cfg-out', help='also write the config snippet to this .py file')
    args = parser.parse_args(argv)
    if args.img_size and len(args.img_size) not in (1, 2):
        parser.error('--img-size takes one or two ints')
    return args


def _hf_preprocessor(src: str):
    """Mean / std of the HF image processor on MMEngine's 0-255 scale, if present."""
    path = osp.join(src, 'preprocessor_config.json')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        cfg = json.load(f)
    if 'image_mean' not in cfg or 'image_std' not in cfg:
        return None
    return dict(mean=[255 * m for m in cfg['image_mean']], std=[255 * s for s in cfg['image_std']])


def _tokenizer_meta(tokenizer_cfg: dict) -> dict:
    """``tokenizer_type`` / ``tokenizer_vocab`` of the tokenizer the snippet names, or
    nothing (with a note) when it does not load."""
    from cllip_mm.models.tokenizers import HFTokenizer
    try:
        return tokenizer_identity(HFTokenizer(tokenizer_cfg['path']))
    except Exception as e:  # a tokenizer HFTokenizer cannot read: not recorded
        print(f'tokenizer {tokenizer_cfg["path"]} not recorded in meta[{META_KEY!r}] '
              f'({type(e).__name__}: {e})')
        return {}


def main(argv=None) -> int:
    args = parse_args(argv)
    hf_config = None
    if args.src_format == 'hf':
        if not osp.isdir(args.src):
            raise SystemExit(f'--src-format hf: {args.src!r} must be a save_pretrained directory')
        state_dict, hf_config = load_hf_pretrained(args.src)
    else:
        state_dict = load_state_dict_file(args.src)

    target_cfg = None
    if args.config:
        from mmengine.config import Config
        target_cfg = Config.fromfile(args.config).model.to_dict()
    img_size = None
    if args.img_size:
        img_size = args.img_size[0] if len(args.img_size) == 1 else tuple(args.img_size)
    result = import_clip(state_dict, args.src_format, hf_config=hf_config, img_size=img_size,
                         act=args.act, vision_heads=args.vision_heads,
                         text_heads=args.text_heads, target_cfg=target_cfg)
    weights_meta = cfg_weights_meta(result.model_cfg)
    print(f'{args.src} ({args.src_format}) -> {args.out}\n{result.report.summary()}')
    if result.report.mismatched:
        raise SystemExit('the weights do not fit the model: see MISMATCHED above (check the '
                         '--config architecture or --img-size)')
    if target_cfg is not None:  # e.g. OpenAI weights (QuickGELU) under a GELU config
        compare_weights_meta(weights_meta, cfg_weights_meta(target_cfg),
                             f'{args.src} ({args.src_format})', f'the model of {args.config}')

    model_cfg = dict(result.model_cfg)
    tokenizer = args.tokenizer
    if args.src_format == 'hf' and tokenizer is None:
        out_dir = args.tokenizer_out or osp.splitext(args.out)[0] + '_tokenizer'
        if copy_tokenizer_files(args.src, out_dir):
            tokenizer = out_dir
            print(f'tokenizer files copied to {out_dir}')
    if tokenizer is not None and 'text_encoder' in model_cfg:
        model_cfg['tokenizer'] = dict(type='HFTokenizer', path=tokenizer,
                                      context_length=model_cfg['text_encoder']['context_length'])
    elif 'text_encoder' in model_cfg:
        print('no tokenizer: set model.tokenizer.path to the CLIPTokenizer directory of these '
              'weights (e.g. --tokenizer DIR)')
    preprocessor = _hf_preprocessor(args.src) if args.src_format == 'hf' else None
    if preprocessor:
        model_cfg['data_preprocessor'] = preprocessor
    model_cfg['init_cfg'] = dict(type='Pretrained', checkpoint=args.out)

    if 'tokenizer' in model_cfg:
        weights_meta.update(_tokenizer_meta(model_cfg['tokenizer']))
    meta = dict(cllip_mm_version=__version__, src=osp.abspath(args.src),
                src_format=args.src_format, model_cfg=model_cfg,
                conversion_report=result.report.to_dict(), **{META_KEY: weights_meta})
    save_mmengine_checkpoint(result.state_dict, args.out, meta)

    snippet = format_config(
        dict(model=model_cfg),
        header=f'model override for {args.out}\n(converted from {args.src}, {args.src_format}; '
        'merge into a CLOC config)')
    print(snippet)
    if args.cfg_out:
        with open(args.cfg_out, 'w') as f:
            f.write(snippet)
    return 0


if __name__ == '__main__':
    sys.exit(main())
