from .build_demo_tokenizer import build_word_level_tokenizer
from .hf_tokenizer import EOT_TOKEN, SOT_TOKEN, HFTokenizer

__all__ = ['HFTokenizer', 'build_word_level_tokenizer', 'SOT_TOKEN', 'EOT_TOKEN']
