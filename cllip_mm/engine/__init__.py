# Copyright (c) cllip_mm contributors. All rights reserved.
from .hooks import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
from .resume import *  # noqa: F401,F403
from .runner import *  # noqa: F401,F403
from .strategies import *  # noqa: F401,F403
