from .backbones import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .multimodal import *  # noqa: F401,F403
from .prompters import *  # noqa: F401,F403
from .text_encoders import *  # noqa: F401,F403
from .tokenizers import *  # noqa: F401,F403
