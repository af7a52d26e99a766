# Copyright (c) cllip_mm contributors. All rights reserved.
"""Class embeddings from class names and prompt templates (CLIP's prompt ensemble),
cached per model until its weights or mode change."""
from typing import Callable, Dict, Hashable, Sequence

import torch
import torch.nn.functional as F
from mmengine.logging import print_log


def ensemble_class_embeddings(embed_texts: Callable[[Sequence[str]], torch.Tensor],
                              names: Sequence[str], templates: Sequence[str],
                              chunk: int = 1024) -> torch.Tensor:
    """L2-normalised [V, D] class embeddings: each of the V names in every template (one
    ``{}`` each), embedded and L2-normalised by ``embed_texts``, averaged over the
    templates and normalised again (CLIP's ensemble).

    Args:
        embed_texts (callable): N texts -> L2-normalised [N, D].
        names (Sequence[str]): The V class names.
        templates (Sequence[str]): E.g. ``('a photo of a {}.', )``.
        chunk (int): Texts per ``embed_texts`` call.
    """
    texts = [t.format(n) for n in names for t in templates]
    if len(texts) > 4 * chunk:
        print_log(f'embedding {len(names)} class names x {len(templates)} prompt templates',
                  logger='current')
    embeds = torch.cat([embed_texts(texts[i:i + chunk]) for i in range(0, len(texts), chunk)])
    return F.normalize(embeds.unflatten(0, (len(names), len(templates))).mean(1), dim=-1)


class ClassEmbeddingCacheMixin:
    """For an ``nn.Module``: a cache of class embeddings that is emptied by ``train()``
    and by loading a state dict (either may change the text tower's output). Put it
    before the module base class: ``class CLOC(ClassEmbeddingCacheMixin, BaseModel)``.

    The cache holds the :attr:`class_embed_cache_size` most recently computed keys (an
    inference server that sees a new vocabulary per request does not grow without bound).
    """

    #: How many keys (vocabularies) the cache keeps; the oldest entry goes first.
    class_embed_cache_size: int = 8

    def cached_class_embeddings(self, key: Hashable,
                                compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """``compute()`` once per ``key`` until the cache is emptied (or the key is
        evicted by :attr:`class_embed_cache_size` newer keys)."""
        cache: Dict[Hashable, torch.Tensor] = self.__dict__.setdefault('_class_embed_cache', {})
        if key not in cache:
            value = compute()
            while len(cache) >= max(1, self.class_embed_cache_size):
                del cache[next(iter(cache))]
            cache[key] = value
        return cache[key]

    def train(self, mode: bool = True):
        self.__dict__['_class_embed_cache'] = {}
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self.__dict__['_class_embed_cache'] = {}
        super()._load_from_state_dict(*args, **kwargs)
