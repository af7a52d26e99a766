# Copyright (c) cllip_mm contributors. All rights reserved.
"""Tiny random Hugging Face CLIPs and CLIP tokenizers, made locally (nothing downloaded)."""
import importlib.util
import json
import os
import os.path as osp

import torch
import torch.nn.functional as F

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
LETTERS = 'abcdefghijklmnopqrstuvwxyz'
MERGES = ('c a', 'ca t</w>', 'd o', 'do g</w>', 't h', 'th e</w>', 'm a', 'ma t</w>', 'a t</w>')
# The tokenizer below: 52 letters, 9 merges, then SOT = 61 and EOT = 62 (the largest id,
# as in OpenAI's vocabulary). Texts only use letters and spaces (anything else is unk).
SOT_ID, EOT_ID, TOKENIZER_VOCAB = 61, 62, 63
TEXTS = ['a cat', 'the dog at the mat', 'cat dog cat', 'zebra']


def load_tool(name):
    """A script of tools/model_converters as a module (to call its ``main(argv)``)."""
    path = osp.join(REPO, 'tools', 'model_converters', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_clip_tokenizer(out_dir) -> str:
    """A tiny CLIP BPE tokenizer (vocab.json + merges.txt -> CLIPTokenizer.save_pretrained)."""
    from transformers import CLIPTokenizer
    src = osp.join(str(out_dir), 'src')
    os.makedirs(src, exist_ok=True)
    vocab = {c: i for i, c in enumerate(LETTERS)}
    vocab.update({c + '</w>': len(LETTERS) + i for i, c in enumerate(LETTERS)})
    for merge in MERGES:
        vocab[merge.replace(' ', '')] = len(vocab)
    vocab['<|startoftext|>'] = len(vocab)
    vocab['<|endoftext|>'] = len(vocab)
    assert (vocab['<|startoftext|>'], vocab['<|endoftext|>']) == (SOT_ID, EOT_ID)
    with open(osp.join(src, 'vocab.json'), 'w') as f:
        json.dump(vocab, f)
    with open(osp.join(src, 'merges.txt'), 'w') as f:
        f.write('#version: 0.2\n' + '\n'.join(MERGES) + '\n')
    tokenizer = CLIPTokenizer(osp.join(src, 'vocab.json'), osp.join(src, 'merges.txt'))
    out = osp.join(str(out_dir), 'tokenizer')
    tokenizer.save_pretrained(out)
    return out


def tiny_clip_config(act='gelu', eos_token_id=EOT_ID, image_size=32, context_length=32):
    from transformers import CLIPConfig
    return CLIPConfig(
        text_config=dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=context_length,
                         hidden_act=act, eos_token_id=eos_token_id, bos_token_id=SOT_ID,
                         pad_token_id=EOT_ID),
        vision_config=dict(hidden_size=32, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, image_size=image_size, patch_size=8,
                           hidden_act=act),
        projection_dim=16, logit_scale_init_value=3.0)


def tiny_hf_clip(act='gelu', eos_token_id=EOT_ID, seed=0, **kwargs):
    """A random ``CLIPModel`` whose every parameter (LayerNorms and biases too) is random,
    so that a misplaced tensor changes the outputs."""
    from transformers import CLIPModel
    torch.manual_seed(seed)
    model = CLIPModel(tiny_clip_config(act, eos_token_id, **kwargs)).eval()
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() <= 1:
                param.add_(0.2 * torch.randn_like(param))
    return model


def save_hf_clip(model, out_dir, tokenizer_dir=None) -> str:
    """``save_pretrained`` (safetensors), plus the tokenizer files as on the Hub."""
    from cllip_mm.models.converters import copy_tokenizer_files
    model.save_pretrained(str(out_dir))
    assert osp.isfile(osp.join(str(out_dir), 'model.safetensors'))
    if tokenizer_dir is not None:
        copy_tokenizer_files(tokenizer_dir, str(out_dir))
    return str(out_dir)


@torch.no_grad()
def hf_embeddings(model, images, token_ids):
    """L2-normalised ``get_image_features`` / ``get_text_features`` of a CLIPModel."""
    def pooled(out):  # transformers >= 5 returns a model output, < 5 a tensor
        return getattr(out, 'pooler_output', out)
    image = pooled(model.get_image_features(pixel_values=images))
    text = pooled(model.get_text_features(input_ids=token_ids))
    return F.normalize(image, dim=-1), F.normalize(text, dim=-1)
