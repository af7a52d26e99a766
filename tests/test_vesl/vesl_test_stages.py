"""Test-only VESL stages, imported by configs through ``custom_imports``."""
import os
import signal

from cllip_mm.registry import VESL_STAGES

SIGKILL_ENV = 'CLLIP_TEST_VESL_SIGKILL_AFTER'


@VESL_STAGES.register_module()
class SigkillAfterImages:
    """A filter that keeps everything and SIGKILLs its own process once it has seen
    ``$CLLIP_TEST_VESL_SIGKILL_AFTER`` images (no-op when the variable is unset)."""

    name = 'sigkill'

    def __init__(self):
        self.seen = 0

    def __call__(self, regions, image_size):
        self.seen += 1
        after = os.environ.get(SIGKILL_ENV)
        if after is not None and self.seen >= int(after):
            os.kill(os.getpid(), signal.SIGKILL)
        return regions


@VESL_STAGES.register_module()
class FailOnWidth:
    """A captioner that raises on images of a given width, else captions by width."""

    name = 'caption'

    def __init__(self, width, device='cpu', dtype='float32'):
        self.width = width

    def __call__(self, images, metas):
        if any(img.size[0] == self.width for img in images):
            raise RuntimeError(f'cannot caption an image of width {self.width}')
        return [f'a red dog and a green ball {img.size[0]}' for img in images]
