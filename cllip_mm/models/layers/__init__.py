from .nms import batched_nms, nms
from .pos_embed import resize_pos_embed
from .roi_align import boxes_to_rois, roi_align
from .transformer import Attention, QuickGELU, ResidualAttentionBlock, Transformer, build_activation

__all__ = [
    'resize_pos_embed', 'boxes_to_rois', 'roi_align', 'nms', 'batched_nms', 'Attention',
    'QuickGELU', 'ResidualAttentionBlock', 'Transformer', 'build_activation'
]
