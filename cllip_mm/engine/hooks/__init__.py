# Copyright (c) cllip_mm contributors. All rights reserved.
from .progress_bar_hook import ProgressBarHook

__all__ = ['ProgressBarHook']
