# Copyright (c) cllip_mm contributors. All rights reserved.
"""Our CLIP training step against open_clip's, same weights, same batch, equal loss.

Both models are CLIP ViT-B/16 (``configs/_base_/models/cloc_vit-b16.py`` without the
region parts; open_clip's ``ViT-B-16`` config), with our weights copied into open_clip's
(parameter names are the same; the number of parameters is checked equal) and the loss of
the first batch checked equal. Captions are COCO-like (``perf_common.CAPTION_LENGTHS``),
tokenised by open_clip's BPE ``SimpleTokenizer`` for both (ours through a small adapter
with the ``HFTokenizer`` interface, so EOT pooling and argmax pooling pick the same
token). One step:

- ours: ``CLOC.loss`` on normalised images and data samples (tokenisation inside, as in
  training), ``parse_losses``, ``OptimWrapper.update_params`` (fused AdamW, as the shipped schedules);
- open_clip: ``model(images, tokens)`` (tokens made beforehand, as its data loader
  does), ``open_clip.loss.ClipLoss``, backward, AdamW step: torch's default AdamW, as
  open_clip's training script builds it (``open_clip``), and the fused AdamW that our
  schedules use (``open_clip_fused``).

``--bf16`` adds both steps under ``torch.autocast('cpu', torch.bfloat16)``; ``--compile``
adds ours with ``torch.compile`` on the two towers. Steps run round-robin in one process.

open_clip 3.x imports torchvision at package import (for ``FrozenBatchNorm2d`` of its
ResNets and for its transforms), which this environment does not have (pip would pull a
CUDA torch with it). The script imports only open_clip's ``model``, ``loss`` and
``tokenizer`` modules, with a stand-in ``torchvision.ops.misc`` module in this process.

    pip install --no-deps open_clip_torch ftfy   # (regex, tqdm already there)
    python benchmarks/vs_open_clip.py [--batch 4] [--repeats 5] [--bf16] [--compile]

Prints one JSON object.
"""
import argparse
import importlib.util
import os.path as osp
import sys
import types
from functools import lru_cache

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import perf_common as pc  # noqa: E402


@lru_cache(maxsize=None)
def import_open_clip():
    """open_clip's ``model``, ``loss`` and ``tokenizer`` modules without its package
    ``__init__`` (which needs torchvision)."""
    spec = importlib.util.find_spec('open_clip')
    if spec is None:
        raise SystemExit('open_clip is not installed: pip install --no-deps open_clip_torch ftfy')
    # transformers (imported by open_clip.hf_model) probes torchvision with find_spec,
    # which fails on a stand-in module: import it first, while torchvision is absent.
    import transformers  # noqa: F401
    if 'torchvision' not in sys.modules:
        try:
            import torchvision  # noqa: F401
        except ImportError:
            misc = types.ModuleType('torchvision.ops.misc')
            misc.FrozenBatchNorm2d = type('FrozenBatchNorm2d', (torch.nn.Module, ), {})
            ops = types.ModuleType('torchvision.ops')
            ops.misc = misc
            tv = types.ModuleType('torchvision')
            tv.ops = ops
            sys.modules.update({'torchvision': tv, 'torchvision.ops': ops,
                                'torchvision.ops.misc': misc})
    if 'open_clip' not in sys.modules:
        package = types.ModuleType('open_clip')
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules['open_clip'] = package
    import open_clip.loss as oc_loss
    import open_clip.model as oc_model
    import open_clip.tokenizer as oc_tokenizer
    return oc_model, oc_loss, oc_tokenizer


class OpenClipBPETokenizer:
    """open_clip's BPE ``SimpleTokenizer`` behind the ``HFTokenizer`` interface (with
    its per-string memo), for ``CLOC(tokenizer=...)``."""

    def __init__(self, context_length: int = 77) -> None:
        _, _, oc_tokenizer = import_open_clip()
        self.tokenizer = oc_tokenizer.SimpleTokenizer(context_length=context_length)
        self.context_length = context_length
        self.vocab_size = len(self.tokenizer.encoder)
        self.sot_token_id = self.tokenizer.sot_token_id
        self.eot_token_id = self.tokenizer.eot_token_id
        self.pad_token_id = 0
        self._one = lru_cache(maxsize=65536)(
            lambda text, n: self.tokenizer([text], n)[0])

    def __call__(self, texts, context_length=None):
        n = context_length or self.context_length
        return torch.stack([self._one(t, n) for t in texts])


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--img', type=int, default=224)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--bf16', action='store_true')
    parser.add_argument('--compile', action='store_true')
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--out')
    return parser.parse_args()


def main():
    args = parse_args()
    env = pc.env_info(args.threads)
    oc_model, oc_loss, _ = import_open_clip()
    from cllip_mm.registry import TASK_UTILS
    TASK_UTILS.register_module(module=OpenClipBPETokenizer, force=True)

    cfg = pc.model_cfg('', 'b16', clip_only=True)
    cfg['tokenizer'] = dict(type='OpenClipBPETokenizer', context_length=77)
    ours = pc.build_model(cfg)
    theirs = oc_model.CLIP(
        embed_dim=512,
        vision_cfg=dict(image_size=224, layers=12, width=768, patch_size=16),
        text_cfg=dict(context_length=77, vocab_size=49408, width=512, heads=8, layers=12))
    state = {f'visual.{k}': v for k, v in ours.image_encoder.state_dict().items()}
    state.update(ours.text_encoder.state_dict())
    state['logit_scale'] = ours.clip_loss.logit_scale.detach().clone()
    theirs.load_state_dict(state, strict=True)
    theirs.train()
    n_ours = sum(p.numel() for p in ours.parameters())
    n_theirs = sum(p.numel() for p in theirs.parameters())

    batch = pc.make_batch(args.batch, args.img, 0, seed=3)
    data = ours.data_preprocessor(batch, True)
    images, samples = data['inputs'], data['data_samples']
    tokens = ours.tokenizer([s.caption for s in samples])
    clip_loss = oc_loss.ClipLoss()

    ours_wrapper = pc.make_optim_wrapper(ours)
    # open_clip's training script builds torch's default AdamW (foreach); ours is fused,
    # as the shipped schedules are. ``open_clip_fused`` gives open_clip the fused form too.
    theirs_opts = {fused: torch.optim.AdamW(theirs.parameters(), lr=1e-5, weight_decay=0.1,
                                            fused=fused) for fused in (False, True)}

    def ours_step(model=ours):
        losses = model.loss(images, samples)
        loss, _ = ours.parse_losses(losses)
        ours_wrapper.update_params(loss)
        return loss

    def theirs_step(fused=False):
        theirs_opt = theirs_opts[fused]
        theirs_opt.zero_grad(set_to_none=True)
        image_features, text_features, scale = theirs(images, tokens)
        loss = clip_loss(image_features, text_features, scale)
        loss.backward()
        theirs_opt.step()
        return loss

    with torch.no_grad():
        loss_ours = float(ours.loss(images, samples)['loss_clip'])
        image_features, text_features, scale = theirs(images, tokens)
        loss_theirs = float(clip_loss(image_features, text_features, scale))
    if abs(loss_ours - loss_theirs) > 1e-4 * max(1.0, abs(loss_theirs)):
        raise SystemExit(f'losses differ: ours {loss_ours} vs open_clip {loss_theirs}')

    fns = {'ours': ours_step, 'open_clip': theirs_step,
           'open_clip_fused': lambda: theirs_step(fused=True)}
    if args.bf16:
        def autocast(fn):
            def run():
                with torch.autocast('cpu', dtype=torch.bfloat16):
                    return fn()
            return run
        fns['ours_bf16'] = autocast(ours_step)
        fns['open_clip_bf16'] = autocast(theirs_step)
    if args.compile:
        # torch.compile wrappers that share the towers' parameters; swapped in for the
        # compiled step only, so ``ours`` stays eager.
        eager = (ours.image_encoder, ours.text_encoder)
        compiled = (torch.compile(eager[0]), torch.compile(eager[1]))

        def ours_compiled_step():
            ours.image_encoder, ours.text_encoder = compiled
            try:
                return ours_step()
            finally:
                ours.image_encoder, ours.text_encoder = eager
        fns['ours_compiled'] = ours_compiled_step
    times = pc.interleaved_times(fns, args.repeats)
    ratios = {'ours/open_clip': pc.ratio(times, 'ours', 'open_clip'),
              'ours/open_clip_fused': pc.ratio(times, 'ours', 'open_clip_fused')}
    if args.bf16:
        ratios['ours_bf16/open_clip_bf16'] = pc.ratio(times, 'ours_bf16', 'open_clip_bf16')
        ratios['ours_bf16/open_clip'] = pc.ratio(times, 'ours_bf16', 'open_clip')
    if args.compile:
        ratios['ours_compiled/open_clip'] = pc.ratio(times, 'ours_compiled', 'open_clip')
    lengths = (tokens != 0).sum(1).float()
    result = dict(benchmark='vs_open_clip', batch=args.batch, img=args.img, **env,
                  params=dict(ours=n_ours, open_clip=n_theirs),
                  first_loss=dict(ours=round(loss_ours, 6), open_clip=round(loss_theirs, 6)),
                  caption_lengths=pc.CAPTION_LENGTHS,
                  caption_tokens=dict(mean=round(float(lengths.mean()), 2),
                                      min=int(lengths.min()), max=int(lengths.max()),
                                      open_clip_padded_to=tokens.shape[1]),
                  times=pc.summary(times), ratios=ratios)
    pc.emit(result, args.out)


if __name__ == '__main__':
    main()
