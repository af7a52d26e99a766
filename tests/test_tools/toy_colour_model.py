# Copyright (c) cllip_mm contributors. All rights reserved.
"""A hand-built CLOC whose embeddings are known, for the benchmark tests.

Images: a pixel's feature is which RGB channels lie above CLIP's mean (after the data
preprocessor's normalisation, ``x > 0``): pure red -> (1, 0, 0), yellow -> (1, 1, 0),
black -> (0, 0, 0). The image embedding is the mean feature of the image, a region's
(Prompter) the mean feature inside its box, a crop's (crop-and-encode) the mean feature
of the crop; CLOC normalises them. Texts: the sum of fixed vectors of their words.
Everything else (files, datasets, pipelines, CLOC.predict, metrics, runner) is real.
"""
import json
import math
import os.path as osp

import cv2
import numpy as np
import torch
from torch import nn

from cllip_mm.models.backbones import ViTOutput
from cllip_mm.registry import MODELS

#: Word vectors (3-d): equal vectors for different words make exact ties.
WORDS = {
    'red': (1., 0., 0.), 'crimson': (1., 0., 0.), 'green': (0., 1., 0.),
    'blue': (0., 0., 1.), 'violet': (1., 0., 1.), 'a': (0., 0., 0.),
    'thing': (0., 0., 0.), 'dark': (0., 0., 0.),
}
#: BGR pixel values of the colours drawn in fixture images.
BGR = {'red': (0, 0, 255), 'green': (0, 255, 0), 'blue': (255, 0, 0),
       'yellow': (0, 255, 255), 'purple': (255, 0, 255), 'black': (0, 0, 0)}


@MODELS.register_module(force=True)
class ToyColourEncoder(nn.Module):
    """Image encoder: per-pixel "channel above the mean" features (patch size 1)."""

    def __init__(self, img_size: int = 32) -> None:
        super().__init__()
        self.img_size = (img_size, img_size)

    def forward(self, images: torch.Tensor) -> ViTOutput:
        x = (images > 0).float().contiguous()
        embed = x.mean((2, 3))
        return ViTOutput(image_embed=embed, patch_tokens=x, cls_token=embed, patch_embeds=x)


@MODELS.register_module(force=True)
class ToyBoxPrompter(nn.Module):
    """Prompter: the mean feature of the pixels inside each box."""

    @staticmethod
    def context_from_vit(vit):  # the Prompter interface CLOC calls
        return vit

    def embed_boxes(self, vit, boxes, valid=None):
        return self(vit.patch_tokens, boxes)

    def forward(self, patch_tokens, boxes, patch_embeds=None):
        b, c, h, w = patch_tokens.shape
        out = patch_tokens.new_zeros(b, boxes.shape[1], c)
        for i in range(b):
            for r, (x1, y1, x2, y2) in enumerate(boxes[i].tolist()):
                xs, ys = slice(math.floor(x1 * w), math.ceil(x2 * w)), slice(
                    math.floor(y1 * h), math.ceil(y2 * h))
                if xs.stop > xs.start and ys.stop > ys.start:
                    out[i, r] = patch_tokens[i, :, ys, xs].mean((1, 2))
        return out


@MODELS.register_module(force=True)
class ToyTextEncoder(nn.Module):
    """Text encoder: the sum of the :data:`WORDS` vectors of a text's tokens."""

    def __init__(self, tokenizer_file: str, vocab_size: int = 0, eot_token_id: int = 0,
                 embed_dim: int = 3) -> None:
        super().__init__()
        with open(tokenizer_file) as f:
            vocab = json.load(f)['model']['vocab']
        table = torch.zeros(max(vocab.values()) + 1, embed_dim)
        for word, index in vocab.items():
            if word in WORDS:
                table[index] = torch.tensor(WORDS[word])
        self.register_buffer('positional_embedding', torch.zeros(1))
        self.register_buffer('table', table)
        self.vocab_size = len(table)
        self.embed_dim = embed_dim

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        return self.table[token_ids].sum(1)


def write_tokenizer(out_dir: str) -> str:
    """A word-level tokenizer.json knowing :data:`WORDS` (other words are ``<unk>``)."""
    from cllip_mm.models.tokenizers.build_demo_tokenizer import build_word_level_tokenizer
    build_word_level_tokenizer([' '.join(WORDS)], out_dir)
    return osp.join(out_dir, 'tokenizer.json')


def toy_cfg(base_cfg, tokenizer_file: str, mode: str = 'prompter'):
    """``base_cfg`` (a full tiny CLOC config) with the toy encoders (32 px input)."""
    cfg = base_cfg.copy()
    replace = dict(
        image_encoder=dict(type='ToyColourEncoder', img_size=32),
        text_encoder=dict(type='ToyTextEncoder', tokenizer_file=tokenizer_file),
        tokenizer=dict(type='HFTokenizer', path=tokenizer_file, context_length=16),
        prompter=dict(type='ToyBoxPrompter') if mode == 'prompter' else None,
        grounding_head=None, region_loss=None, grounding_loss=None,
        region_embed_mode=mode, phrase_context_length=16)
    for key, value in replace.items():  # replace, not merge into, the tiny ones
        cfg.model[key] = value
    cfg.custom_imports = dict(imports=['toy_colour_model'], allow_failed_imports=False)
    return cfg


def draw(path: str, boxes, size=(64, 64), background='black') -> None:
    """A JPEG of ``size`` (w, h) with filled boxes ``[(colour, x1, y1, x2, y2)]``.

    Boxes on a 16-pixel grid keep JPEG's blocks (and the 2x resize) exact."""
    img = np.zeros((size[1], size[0], 3), np.uint8)
    img[:] = BGR[background]
    for colour, x1, y1, x2, y2 in boxes:
        img[y1:y2, x1:x2] = BGR[colour]
    assert cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, 100])
