# Copyright (c) cllip_mm contributors. All rights reserved.
"""Export a cllip_mm checkpoint as a Hugging Face ``CLIPModel`` directory.

Example::

    python tools/model_converters/cllip_to_hf.py \\
        configs/cloc/cloc_vit-b16_openai-clip-pre_8xb128-10k_region-text.py work_dirs/.../iter_10000.pth hf_cloc_vit-b16

writes ``config.json`` + ``model.safetensors`` (load with
``transformers.CLIPModel.from_pretrained`` or ``CLIPVisionModel.from_pretrained``, no
custom code), the tokenizer files, and the Prompter (+ grounding head) as
``prompter.safetensors`` + ``prompter_config.json`` (load with
``cllip_mm.models.converters.load_prompter``; see docs/interoperability.md). The config must
build the activations and tokenizer the checkpoint's ``meta['cllip_mm_arch']`` records (the
exported ``hidden_act`` is the config's).
"""
import argparse
import os.path as osp
import sys
from typing import Optional

import torch
from mmengine.config import Config, DictAction

try:
    import cllip_mm  # noqa: F401
except ImportError:  # run from a source checkout without `pip install -e .`
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
from cllip_mm.models.converters import export_cloc_to_hf  # noqa: E402
from cllip_mm.models.utils.state_dict import strip_module_prefixes  # noqa: E402
from cllip_mm.registry import MODELS  # noqa: E402
from cllip_mm.utils import register_all_modules  # noqa: E402
from cllip_mm.utils.weights_meta import check_weights_meta  # noqa: E402

DTYPES = dict(float32=torch.float32, float16=torch.float16, bfloat16=torch.bfloat16)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Export a cllip_mm CLOC / CLIP checkpoint to '
                                     'a Hugging Face CLIPModel directory')
    parser.add_argument('config', help='the model config file')
    parser.add_argument('checkpoint', help='the checkpoint (.pth) to export')
    parser.add_argument('out_dir', help='output directory')
    parser.add_argument('--tokenizer', help="tokenizer to export (default: the config's "
                        'model.tokenizer.path)')
    parser.add_argument('--no-prompter', action='store_true', help='skip prompter.safetensors')
    parser.add_argument('--dtype', choices=sorted(DTYPES), default='float32',
                        help='dtype of the HF weights')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def load_weights(model: torch.nn.Module, path: str, what: Optional[str] = None) -> None:
    """Load ``path`` into ``model``; every encoder weight must be there, and ``model``
    (``what`` in messages) must have the activations and tokenizer the checkpoint's meta
    asks for (``cllip_mm.utils.weights_meta``; no such meta: a warning)."""
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    check_weights_meta(model, checkpoint, what=what, name=path)
    state_dict = strip_module_prefixes(checkpoint.get('state_dict', checkpoint))
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    missing_encoders = [k for k in missing if k.startswith(('image_encoder.', 'text_encoder.'))]
    if missing_encoders:
        raise SystemExit(f'{path}: no weights for {missing_encoders[:5]} '
                         f'(+{max(len(missing_encoders) - 5, 0)} more)')
    for name, keys in (('missing (left as initialised)', missing), ('unexpected', unexpected)):
        if keys:
            print(f'{path}: {len(keys)} {name} keys, e.g. {keys[:3]}')


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    register_all_modules()
    model_cfg = cfg.model.to_dict()
    model_cfg.pop('init_cfg', None)  # the checkpoint, not the pretrained CLIP, is exported
    model = MODELS.build(model_cfg).eval()
    load_weights(model, args.checkpoint, what=f'the model of {args.config}')
    tokenizer = args.tokenizer or model_cfg.get('tokenizer', {}).get('path')
    with torch.no_grad():
        result = export_cloc_to_hf(model, args.out_dir, model_cfg, tokenizer_path=tokenizer,
                                   with_prompter=not args.no_prompter, dtype=DTYPES[args.dtype])
    print(f'wrote a Hugging Face CLIPModel to {args.out_dir}')
    if result.eot_moved_to is not None:
        print(f'EOT token moved from id 2 (argmax pooling to HF) to id {result.eot_moved_to}; '
              'the exported tokenizer uses the new id')
    if result.prompter_files:
        print(f'Prompter: {result.prompter_files[0]}, {result.prompter_files[1]}')
    if result.left_out:
        print(f'not in CLIPModel ({len(result.left_out)} keys): '
              f"{sorted({k.split('.')[0] for k in result.left_out})}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
