from .cloc import CLOC

__all__ = ['CLOC']
