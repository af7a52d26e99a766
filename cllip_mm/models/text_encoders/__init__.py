from .text_transformer import TextTransformer

__all__ = ['TextTransformer']
