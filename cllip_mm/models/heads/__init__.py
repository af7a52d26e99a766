from .grounding_head import GroundingHead

__all__ = ['GroundingHead']
