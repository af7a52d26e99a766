# Copyright (c) cllip_mm contributors. All rights reserved.
from .optimizers import *  # noqa: F401,F403
