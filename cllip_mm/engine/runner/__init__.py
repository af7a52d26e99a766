# Copyright (c) cllip_mm contributors. All rights reserved.
from .loops import ResumableIterBasedTrainLoop

__all__ = ['ResumableIterBasedTrainLoop']
