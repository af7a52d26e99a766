from .grounding_head import GroundingHead
from .prompter import Prompter, PrompterLayer

__all__ = ['Prompter', 'PrompterLayer', 'GroundingHead']
