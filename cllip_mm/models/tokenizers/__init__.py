from cllip_mm.text.build_demo_tokenizer import (
    build_sentencepiece_tokenizer,
    build_word_level_tokenizer,
)
from .hf_tokenizer import EOT_TOKEN, SOT_TOKEN, BaseHFTokenizer, HFTokenizer
from .sentencepiece_tokenizer import SentencePieceTokenizer

__all__ = [
    'BaseHFTokenizer', 'HFTokenizer', 'SentencePieceTokenizer', 'build_word_level_tokenizer',
    'build_sentencepiece_tokenizer', 'SOT_TOKEN', 'EOT_TOKEN'
]
