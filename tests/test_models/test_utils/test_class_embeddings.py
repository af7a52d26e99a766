"""The prompt ensemble and its cache, shared by CLOC, the mmdet region classifier and
the inferencer."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from cllip_mm.models.utils import ClassEmbeddingCacheMixin, ensemble_class_embeddings


def fake_embed_texts(texts):
    """Deterministic, distinct, L2-normalised [N, 3] embeddings of texts."""
    rows = [[float(len(t)), float(sum(map(ord, t)) % 7), float(t.count('a') + 1)] for t in texts]
    return F.normalize(torch.tensor(rows), dim=-1)


def test_ensemble_is_the_normalised_mean_over_templates_per_name():
    names, templates = ['cat', 'zebra'], ['a {}.', 'a photo of the {}!', '{}']
    expected = torch.stack([
        F.normalize(torch.stack([fake_embed_texts([t.format(n)])[0] for t in templates]).mean(0),
                    dim=-1) for n in names])
    got = ensemble_class_embeddings(fake_embed_texts, names, templates)
    assert torch.allclose(got, expected)
    # Chunked text encoding gives the same result.
    assert torch.allclose(ensemble_class_embeddings(fake_embed_texts, names, templates, chunk=2),
                          expected)


class Cached(ClassEmbeddingCacheMixin, nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.calls = 0

    def compute(self):
        self.calls += 1
        return torch.ones(1)


def test_cache_is_emptied_by_train_and_by_loading_weights():
    model = Cached()
    for _ in range(2):
        model.cached_class_embeddings('key', model.compute)
    assert model.calls == 1
    model.cached_class_embeddings('other', model.compute)
    assert model.calls == 2
    model.eval()  # train(False)
    model.cached_class_embeddings('key', model.compute)
    assert model.calls == 3
    model.load_state_dict(model.state_dict())
    model.cached_class_embeddings('key', model.compute)
    assert model.calls == 4
