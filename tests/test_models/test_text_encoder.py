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
    # cross-attention (the Prompter's path): queries from x, keys and values from kv
    kv = torch.randn(2, 7, 16)
    expected, _ = ref(x, kv, kv, need_weights=False)
    torch.testing.assert_close(ours(x, kv), expected, atol=1e-5, rtol=1e-5)


def _lengths_seen(model, ids):
    """Embeddings of ``ids`` and the token length the blocks ran at."""
    seen = []
    handle = model.transformer.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[1]))
    try:
        out = model(ids)
    finally:
        handle.remove()
    return out, seen


def test_trim_padding_is_exact_and_runs_at_the_longest_text():
    torch.manual_seed(0)
    padded = tiny_text(trim_padding=False)
    trimmed = tiny_text(trim_padding=True)
    trimmed.load_state_dict(padded.state_dict())
    # Texts of 3, 5 and 2 tokens before EOT (id 2) padded to the context length 12; the
    # padding ids differ from 0 so that a wrong trim would change what is attended to.
    ids = torch.tensor([[1, 5, 6, 7, 2, 9, 9, 9, 9, 9, 9, 9],
                        [1, 5, 8, 7, 4, 3, 2, 0, 0, 0, 0, 0],
                        [1, 4, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
    ref, ref_len = _lengths_seen(padded, ids)
    out, out_len = _lengths_seen(trimmed, ids)
    assert ref_len == [12] and out_len == [7]  # the longest text: EOT at index 6
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)
    # OpenAI's argmax pooling (EOT has the largest id) trims the same way.
    padded.eot_token_id = trimmed.eot_token_id = None
    ids_argmax = torch.where(ids == 2, torch.full_like(ids, 49), ids)
    ref, _ = _lengths_seen(padded, ids_argmax)
    out, out_len = _lengths_seen(trimmed, ids_argmax)
    assert out_len == [7]
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)


def test_trim_padding_gradients_match():
    torch.manual_seed(0)
    padded = tiny_text(trim_padding=False).train()
    trimmed = tiny_text(trim_padding=True).train()
    trimmed.load_state_dict(padded.state_dict())
    ids = torch.tensor([[1, 5, 6, 2, 0, 0, 0, 0], [1, 7, 2, 0, 0, 0, 0, 0]])
    weights = torch.randn(2, 16)
    for model in (padded, trimmed):
        (model(ids) * weights).sum().backward()
    for (name, p), q in zip(padded.named_parameters(), trimmed.parameters()):
        # float32 sums in another order: tolerance relative to the parameter's largest
        # gradient (differences of ~1e-6 of it were seen on some CPUs; a padding token that
        # leaked into the pooled output would differ by the order of the gradient itself)
        scale = float(p.grad.abs().max())
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5 * scale, rtol=1e-5, msg=name)


def test_forward_features_with_positions_and_mask():
    """The options of the mmdet language model: explicit positions and a per-sample mask
    give the plain causal forward when they are the plain ones, and project maps to D."""
    model = tiny_text()
    ids = torch.tensor([[1, 5, 6, 2], [1, 7, 2, 0]])
    plain = model.forward_features(ids)
    positions = torch.arange(4).expand(2, -1)
    mask = torch.ones(4, 4, dtype=torch.bool).tril().expand(2, 1, -1, -1)
    torch.testing.assert_close(model.forward_features(ids, positions, mask), plain)
    projected = model.forward_features(ids, project=True)
    torch.testing.assert_close(projected, plain @ model.text_projection)
    # A mask that hides token 1 from token 2 changes token 2 only (and later tokens).
    blocked = mask.clone()
    blocked[:, :, 2, 1] = False
    out = model.forward_features(ids, positions, blocked)
    torch.testing.assert_close(out[:, :2], plain[:, :2])
    assert not torch.allclose(out[:, 2], plain[:, 2])


def test_grad_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = tiny_text().train()
    ckpt = tiny_text(grad_checkpointing=True).train()
    ckpt.load_state_dict(plain.state_dict())
    ids = torch.tensor([[1, 5, 6, 2, 0], [1, 7, 8, 9, 2]])
    weights = torch.randn(2, 16)
    for model in (plain, ckpt):
        (model(ids) * weights).sum().backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-6, rtol=1e-5, msg=name)
