# Copyright (c) cllip_mm contributors. All rights reserved.
"""A hand-built CLOC for tools/run_demo.py's test: its metrics follow from the annotation
files alone (the test computes them by hand and compares them to the demo's table).

Embeddings live in a space of one axis per word of ``words`` plus one more axis that
only images use:

- a text: the sum of the one-hot vectors of its tokens that are in ``words`` (the
  others, special tokens included, add nothing), so a class name "white circle" is
  ``e_white + e_circle``;
- an image (``image_embed``): the image axis, for every image: orthogonal to every text,
  so every image-text similarity is 0 (all ties, which count against the model);
- a region (the Prompter's embedding of any box): the current *query*, a weighted sum of
  word vectors (``{'white': 2, 'circle': 1}``), the same for every box of every image.

The query depends on the training done: ``queries[k]`` after k training iterations, the
last one from then on. The image encoder counts its forward calls in training mode (one
per iteration) in the ``step`` buffer, which checkpoints save, so each checkpoint of a
run holds its own query. Everything else (data, pipelines, CLOC, the runner, losses,
metrics, checkpoints, the tools) is real.
"""
import json
from typing import Dict, Sequence

import torch
from torch import nn

from cllip_mm.models.backbones import ViTOutput
from cllip_mm.registry import MODELS


@MODELS.register_module(force=True)
class ToyQueryEncoder(nn.Module):
    """Image encoder: the image axis as ``image_embed``; the current query (``queries
    [step]``) as ``cls_token``, which :class:`ToyQueryPrompter` returns for every box."""

    def __init__(self, words: Sequence[str], queries: Sequence[Dict[str, float]],
                 img_size: int = 96) -> None:
        super().__init__()
        self.img_size = (img_size, img_size)
        axis = {word: i for i, word in enumerate(words)}
        table = torch.zeros(len(queries), len(words) + 1)
        for k, query in enumerate(queries):
            for word, weight in query.items():
                table[k, axis[word]] = weight
        self.register_buffer('queries', table)
        self.register_buffer('step', torch.zeros((), dtype=torch.long))
        image_axis = torch.zeros(len(words) + 1)
        image_axis[-1] = 1
        self.register_buffer('image_axis', image_axis)

    def forward(self, images: torch.Tensor) -> ViTOutput:
        b = images.shape[0]
        query = self.queries[min(int(self.step), len(self.queries) - 1)]
        if self.training:
            self.step += 1
        grid = images.new_zeros(b, len(self.image_axis), 1, 1)
        return ViTOutput(image_embed=self.image_axis.expand(b, -1), patch_tokens=grid,
                         cls_token=query.expand(b, -1), patch_embeds=grid)


@MODELS.register_module(force=True)
class ToyQueryPrompter(nn.Module):
    """Prompter: every box of an image gets the image's ``cls_token`` (the query)."""

    @staticmethod
    def context_from_vit(vit):  # the Prompter interface CLOC calls
        return vit.cls_token

    def embed_boxes(self, query: torch.Tensor, boxes: torch.Tensor, valid=None) -> torch.Tensor:
        return query[:, None, :].expand(-1, boxes.shape[1], -1)


@MODELS.register_module(force=True)
class ToyWordTextEncoder(nn.Module):
    """Text encoder: the sum of the one-hot vectors of a text's tokens in ``words``."""

    def __init__(self, words: Sequence[str], tokenizer_file: str, vocab_size: int = 0,
                 eot_token_id: int = 0) -> None:
        super().__init__()
        with open(tokenizer_file) as f:
            vocab = json.load(f)['model']['vocab']
        table = torch.zeros(max(vocab.values()) + 1, len(words) + 1)
        for i, word in enumerate(words):
            table[vocab[word], i] = 1
        self.register_buffer('positional_embedding', torch.zeros(1))
        self.register_buffer('table', table)
        self.vocab_size = len(table)
        self.embed_dim = len(words) + 1

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        return self.table[token_ids].sum(1)
