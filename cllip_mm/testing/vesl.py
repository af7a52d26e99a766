# Copyright (c) cllip_mm contributors. All rights reserved.
"""Tiny random VESL models saved to local directories, and images to label.

- :func:`make_tiny_tagger`: an NLTK ``PerceptronTagger`` trained on a few tagged
  sentences, saved in NLTK's JSON format;
- :func:`make_tiny_blip`: a random ``BlipForConditionalGeneration`` + ``BlipProcessor``
  (a word-level ``BertTokenizer`` over :data:`WORDS`), so captions are word sequences;
- :func:`make_tiny_owlv2`: a random ``Owlv2ForObjectDetection`` + ``Owlv2Processor``
  (a letter-level ``CLIPTokenizer``).

They run the real stage code paths (loading from disk, processors, ``generate``,
batched OWLv2 queries) in seconds on a CPU.
"""
import json
import os
import os.path as osp
from typing import Dict, Optional

import numpy as np

#: Tagged sentences the tiny tagger learns (Penn Treebank tags).
TAGGED_SENTENCES = [
    'a/DT red/JJ dog/NN sits/VBZ on/IN the/DT green/JJ grass/NN',
    'the/DT small/JJ cat/NN and/CC a/DT blue/JJ ball/NN are/VBP near/IN the/DT table/NN',
    'two/CD people/NNS walk/VBP along/IN a/DT sandy/JJ beach/NN',
    'a/DT wooden/JJ chair/NN stands/VBZ next/JJ to/TO the/DT white/JJ wall/NN',
    'his/PRP$ old/JJ car/NN is/VBZ parked/VBN by/IN the/DT street/NN lamp/NN',
    'a/DT man/NN holds/VBZ a/DT cup/NN of/IN coffee/NN ./.',
    'the/DT tree/NN has/VBZ green/JJ leaves/NNS',
    'a/DT black/JJ bird/NN flies/VBZ over/IN the/DT river/NN',
    'a/DT red/JJ dog/NN on/IN the/DT green/JJ grass/NN by/IN the/DT river/NN ./.',
    'a/DT big/JJ boat/NN near/IN the/DT old/JJ wooden/JJ table/NN ./.',
]
#: The tiny captioner's vocabulary: the words of :data:`TAGGED_SENTENCES`.
WORDS = sorted({tok.split('/')[0] for s in TAGGED_SENTENCES for tok in s.split()})


def make_tiny_tagger(out_dir: str) -> str:
    """Train NLTK's averaged perceptron on :data:`TAGGED_SENTENCES`; save as JSON."""
    from nltk.tag.perceptron import PerceptronTagger

    from cllip_mm.vesl.phrase_extractors import authorize_nltk_dir
    sentences = [[tuple(tok.split('/')) for tok in s.split()] for s in TAGGED_SENTENCES]
    tagger = PerceptronTagger(load=False)
    tagger.train(sentences, nr_iter=20)
    os.makedirs(out_dir, mode=0o700, exist_ok=True)
    authorize_nltk_dir(out_dir)
    tagger.save_to_json(lang='eng', loc=osp.realpath(out_dir))
    return out_dir


def make_tiny_blip(out_dir: str, seed: int = 0) -> str:
    """A random BLIP captioner (32 px, 1 layer) saved with its processor."""
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )
    os.makedirs(out_dir, exist_ok=True)
    specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '[DEC]']
    vocab = specials + WORDS
    vocab_file = osp.join(out_dir, 'vocab_src.txt')
    with open(vocab_file, 'w') as f:
        f.write('\n'.join(vocab) + '\n')
    tokenizer = BertTokenizer(vocab_file, bos_token='[DEC]', model_max_length=32)
    processor = BlipProcessor(
        image_processor=BlipImageProcessor(size=dict(height=32, width=32)),
        tokenizer=tokenizer)
    # initializer_range 0.2 (not 0.02): the random decoder then listens to the image,
    # so captions (and phrases) differ between images
    config = BlipConfig(
        initializer_range=0.2,
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                         initializer_range=0.2,
                         num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=64, bos_token_id=vocab.index('[DEC]'),
                         pad_token_id=0, sep_token_id=vocab.index('[SEP]'),
                         eos_token_id=vocab.index('[SEP]')),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, image_size=32, patch_size=8,
                           initializer_range=0.2),
        projection_dim=32)
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config).eval()
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    os.remove(vocab_file)
    return out_dir


def make_tiny_owlv2(out_dir: str, seed: int = 0, image_size: int = 64) -> str:
    """A random OWLv2 (``image_size`` px, patch 16, 1 layer) saved with its processor."""
    import torch
    from transformers import (
        CLIPTokenizer,
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessor,
        Owlv2Processor,
    )
    os.makedirs(out_dir, exist_ok=True)
    letters = 'abcdefghijklmnopqrstuvwxyz'
    vocab = {c: i for i, c in enumerate(letters)}
    vocab.update({c + '</w>': len(letters) + i for i, c in enumerate(letters)})
    vocab['<|startoftext|>'] = len(vocab)
    vocab['<|endoftext|>'] = len(vocab)
    src = osp.join(out_dir, 'tokenizer_src')
    os.makedirs(src, exist_ok=True)
    with open(osp.join(src, 'vocab.json'), 'w') as f:
        json.dump(vocab, f)
    with open(osp.join(src, 'merges.txt'), 'w') as f:
        f.write('#version: 0.2\n')
    tokenizer = CLIPTokenizer(osp.join(src, 'vocab.json'), osp.join(src, 'merges.txt'),
                              model_max_length=16)
    processor = Owlv2Processor(
        image_processor=Owlv2ImageProcessor(size=dict(height=image_size, width=image_size)),
        tokenizer=tokenizer)
    eot = vocab['<|endoftext|>']
    config = Owlv2Config(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=16, bos_token_id=vocab['<|startoftext|>'],
                         eos_token_id=eot, pad_token_id=eot),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, image_size=image_size, patch_size=16),
        projection_dim=32)
    torch.manual_seed(seed)
    model = Owlv2ForObjectDetection(config).eval()
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def make_tiny_vesl_models(root: str) -> Dict[str, str]:
    """All three under ``root``; returns their paths (``captioner``, ``tagger``,
    ``detector``)."""
    return dict(captioner=make_tiny_blip(osp.join(root, 'blip')),
                tagger=make_tiny_tagger(osp.join(root, 'tagger')),
                detector=make_tiny_owlv2(osp.join(root, 'owlv2')))


def tiny_vesl_config(models: Dict[str, str], base: Optional[str] = None, **overrides):
    """The shipped paper config (``configs/vesl/vesl_blip-large_owlv2-l14_1xb8_images.py``)
    pointed at the tiny models, on CPU in float32, captions of at most 12 tokens."""
    from mmengine.config import Config
    if base is None:
        repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
        base = osp.join(repo, 'configs/vesl/vesl_blip-large_owlv2-l14_1xb8_images.py')
    cfg = Config.fromfile(base)
    cfg.captioner.update(model_path=models['captioner'], max_new_tokens=12, num_beams=1)
    cfg.phrase_extractor.tagger_path = models['tagger']
    cfg.detector.model_path = models['detector']
    cfg.update(device='cpu', dtype='float32', batch_size=4, shard_size=4)
    cfg.merge_from_dict(overrides)
    return cfg


def make_vesl_images(root: str, num: int, seed: int = 0, min_size: int = 40,
                     max_size: int = 80) -> list:
    """``num`` random JPEGs (coloured rectangles on noise, varied sizes) under
    ``root``; returns their paths, sorted."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    paths = []
    for i in range(num):
        w, h = rng.integers(min_size, max_size + 1, size=2)
        img = rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8)
        for _ in range(rng.integers(1, 4)):
            x1, y1 = rng.integers(0, w // 2), rng.integers(0, h // 2)
            x2, y2 = rng.integers(x1 + 8, w + 1), rng.integers(y1 + 8, h + 1)
            img[y1:y2, x1:x2] = rng.integers(80, 256, size=3)
        path = osp.join(root, f'img_{i:04d}.jpg')
        Image.fromarray(img).save(path, quality=90)
        paths.append(path)
    return paths
