from .cloc_grounding_head import ClocGroundingHead
from .grounding_head import GroundingHead

__all__ = ['GroundingHead', 'ClocGroundingHead']
