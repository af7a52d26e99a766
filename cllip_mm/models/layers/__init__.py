from .pos_embed import resize_pos_embed
from .transformer import (Attention, QuickGELU, ResidualAttentionBlock,
                          Transformer, build_activation)

__all__ = ['resize_pos_embed', 'Attention', 'QuickGELU', 'ResidualAttentionBlock', 'Transformer', 'build_activation']
