from .cloc_prompter import ClocPrompter, ClocRoIPrompter, PrompterContext
from .prompter import Prompter, PrompterLayer

__all__ = ['Prompter', 'PrompterLayer', 'ClocPrompter', 'ClocRoIPrompter', 'PrompterContext']
