# Copyright (c) cllip_mm contributors. All rights reserved.
"""Convert a cllip_mm (CLOC) pretraining checkpoint for the mmdet plugins.

The output holds the image encoder as ``backbone.vit.*``, the text encoder as
``language_model.language_backbone.body.model.*`` and the Prompter as ``prompter.*``
(plus its temperature ``logit_scale``): the names inside the detectors of
``configs/downstream``. Load it with each module's
``init_cfg=dict(type='Pretrained', checkpoint=OUT, prefix='backbone.')`` /
``prefix='language_model.'``, as the whole model's ``load_from``, or as the checkpoint
of ``tools/test.py``.

Examples::

    # keep the pretraining position embedding (interpolated at run time)
    python tools/model_converters/cllip_to_mmdet.py work_dirs/cloc/iter_600.pth cloc_mmdet.pth

    # resize it once for a fixed detection input size, and check the keys against the
    # detector of a config (missing / unexpected / shape mismatches)
    python tools/model_converters/cllip_to_mmdet.py work_dirs/cloc/iter_600.pth cloc_mmdet.pth \
        --img-size 1024 --config configs/downstream/ov_coco/grounding-dino_cloc-vit-b16_16xb4-1x_ov-coco-48-17.py

    # a CLIP baseline checkpoint (no Prompter): the backbone and the language model are
    # converted, the Prompter is reported as left out (not an error)
    python tools/model_converters/cllip_to_mmdet.py work_dirs/demo/clip/iter_1200.pth clip_mmdet.pth

Parts: with ``--parts`` or ``--config`` (the parts its model has) every named part must be in
the source. With neither, every part the source has is converted and the parts it lacks
(e.g. ``prompter`` of a CLIP checkpoint, which only ``ClocRegionClassifier`` needs) are
listed as left out; the output's ``meta['left_out']`` names them too.

What the weights need besides their tensors (``meta['cllip_mm_arch']``: the towers'
activation, the tokenizer) is carried into the output, where the plugins' ``init_weights``
check it; with ``--config`` the detector is checked here already (``WeightsMetaMismatch``
naming the source, the key and both values, e.g. QuickGELU weights under a GELU backbone).

Exit status: 0 when every converted tensor fits (with ``--config``: no missing,
unexpected or mis-shaped key under the converted prefixes), 1 otherwise (also when a
part that was asked for is missing from the source).
"""
import argparse
import os
import os.path as osp
import sys
from typing import Optional, Sequence

import torch

try:
    import cllip_mm  # noqa: F401
except ImportError:  # run from a source checkout without `pip install -e .`
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
from cllip_mm.models.converters import (  # noqa: E402
    PART_PREFIXES,
    check_against_model,
    convert_cllip_state_dict,
    converted_parts,
    load_cllip_state_dict,
)
from cllip_mm.utils.weights_meta import (  # noqa: E402
    META_KEY,
    compare_weights_meta,
    model_weights_meta,
    read_weights_meta,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='cllip_mm pretraining checkpoint -> mmdet plugin checkpoint')
    parser.add_argument('src', help='cllip_mm checkpoint (MMEngine format)')
    parser.add_argument('dst', help='output .pth')
    parser.add_argument('--img-size', type=int, nargs='+', metavar='H [W]',
                        help='resize the position embedding to this input size '
                        '(default: the --config backbone\'s img_size, else keep it)')
    parser.add_argument('--parts', nargs='+', choices=list(PART_PREFIXES),
                        help='parts to convert (default: those the --config model has, '
                        'else all)')
    parser.add_argument('--config', help='an mmdet config whose model the result is '
                        'checked against (it is built, weights are not initialised)')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='overrides of --config, as in mmdet\'s tools')
    return parser.parse_args(argv)


def build_model(config: str, cfg_options: Sequence[str]) -> torch.nn.Module:
    from mmdet.registry import MODELS
    from mmengine.config import Config, DictAction
    from mmengine.registry import DefaultScope

    cfg = Config.fromfile(config)
    if cfg_options:
        action = DictAction(option_strings=[], dest='opts')
        namespace = argparse.Namespace()
        action(None, namespace, list(cfg_options))
        cfg.merge_from_dict(namespace.opts)
    if cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmdet')):
        return MODELS.build(cfg.model)


#: What needs each part, for the note on a part the source lacks.
PART_USERS = dict(
    backbone='every detector of configs/downstream',
    language_model='Grounding DINO and ClocRegionClassifier',
    prompter='ClocRegionClassifier (zero-shot region classification) only')


def left_out_note(part: str) -> str:
    src = PART_PREFIXES[part][0]
    return (f'left out {part}: the source has no {src}* tensors (e.g. a CLIP baseline has no '
            f'Prompter); needed by {PART_USERS.get(part, "?")}')


def main(argv=None) -> int:
    args = parse_args(argv)
    model: Optional[torch.nn.Module] = None
    parts = args.parts
    img_size = args.img_size
    if args.config:
        model = build_model(args.config, args.cfg_options)
        names = {k.split('.')[0] for k in model.state_dict()}
        if parts is None:
            parts = [p for p, (_, dst) in PART_PREFIXES.items() if dst.split('.')[0] in names]
        backbone = getattr(model, 'backbone', None)
        if img_size is None and hasattr(backbone, 'vit'):
            img_size = list(backbone.vit.img_size)
    if img_size is not None:
        if len(img_size) not in (1, 2):
            raise SystemExit('--img-size takes H or H W')
        img_size = (img_size[0], img_size[-1])

    state_dict = load_cllip_state_dict(args.src)
    # what the weights need besides the tensors (activations, tokenizer): checked against
    # the --config model, and carried into the output for the plugins' init_weights
    weights_meta = read_weights_meta(args.src)
    if model is not None:
        compare_weights_meta(weights_meta, model_weights_meta(model), args.src,
                             f'the model of {args.config}')
    elif weights_meta is None:
        print(f'{args.src} carries no meta[{META_KEY!r}]: the output carries none either, so '
              'the activation and tokenizer of the detector cannot be checked')
    converted, report = convert_cllip_state_dict(
        state_dict, img_size=img_size, parts=parts or tuple(PART_PREFIXES))
    # No part was asked for: the parts the source lacks are left out, not missing.
    left_out = [] if parts else report.missing_parts
    if not parts:  # (load_cllip_state_dict has checked that image_encoder.* is there)
        report.missing_parts = []
    if model is not None:
        check_against_model(converted, model, report)
    report.notes += [left_out_note(part) for part in left_out]

    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    meta = dict(source=osp.abspath(args.src), converter='tools/model_converters/cllip_to_mmdet.py',
                parts=list(converted_parts(report)), left_out=left_out,
                img_size=list(img_size) if img_size else None)
    if weights_meta is not None:
        meta[META_KEY] = weights_meta
    torch.save(dict(state_dict=converted, meta=meta), args.dst)
    print(f'{args.src} -> {args.dst}')
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == '__main__':
    sys.exit(main())
