from .prompter import Prompter, PrompterLayer

__all__ = ['Prompter', 'PrompterLayer']
