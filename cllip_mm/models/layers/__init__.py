from .nms import batched_nms, nms
from .pos_embed import resize_pos_embed, square_grid
from .roi_align import boxes_to_rois, roi_align
from .transformer import Attention, QuickGELU, ResidualAttentionBlock, Transformer, build_activation

__all__ = [
    'resize_pos_embed', 'square_grid', 'boxes_to_rois', 'roi_align', 'nms', 'batched_nms',
    'Attention', 'QuickGELU', 'ResidualAttentionBlock', 'Transformer', 'build_activation'
]
