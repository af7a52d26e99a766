import torch

from cllip_mm.models.layers import Attention
from cllip_mm.models.text_encoders import TextTransformer


def tiny_text(**kwargs):
    cfg = dict(vocab_size=50, context_length=12, width=32, layers=2, heads=4, embed_dim=16, eot_token_id=2)
    cfg.update(kwargs)
    return TextTransformer(**cfg).eval()


def test_pools_at_eot_and_is_causal():
    model = tiny_text()
    ids = torch.tensor([[1, 5, 6, 2, 0, 0], [1, 5, 6, 2, 7, 9]])
    out = model(ids)
    # Tokens after EOT cannot change the pooled embedding (causal mask).
    torch.testing.assert_close(out[0], out[1])
    ids2 = torch.tensor([[1, 5, 8, 2, 0, 0]])
    assert not torch.allclose(model(ids2)[0], out[0])


def test_shorter_context_is_a_prefix():
    model = tiny_text()
    short = torch.tensor([[1, 5, 6, 2]])
    long = torch.tensor([[1, 5, 6, 2, 0, 0, 0, 0, 0, 0, 0, 0]])
    torch.testing.assert_close(model(short), model(long))


def test_argmax_pooling_when_no_eot_id():
    model = tiny_text(eot_token_id=None)
    ids = torch.tensor([[1, 5, 49, 0]])
    feats = model.forward_features(ids)
    torch.testing.assert_close(model(ids), feats[:, 2] @ model.text_projection)


def test_attention_matches_torch_multihead_attention():
    torch.manual_seed(0)
    ours = Attention(16, 4)
    ref = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 5, 16)
    mask = torch.ones(5, 5, dtype=torch.bool).tril()
    expected, _ = ref(x, x, x, attn_mask=~mask, need_weights=False)
    torch.testing.assert_close(ours(x, attn_mask=mask), expected, atol=1e-5, rtol=1e-5)
