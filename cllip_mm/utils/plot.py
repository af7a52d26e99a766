# Copyright (c) cllip_mm contributors. All rights reserved.
"""Training-curve plots from MMEngine logs."""
from typing import Optional, Sequence

from .logs import train_curve


def plot_curves(work_dirs: Sequence[str], labels: Optional[Sequence[str]], keys: Sequence[str],
                out: str) -> str:
    """Write a PNG with one panel per scalar in ``keys`` (e.g. ``loss_clip``,
    ``loss_region``) and one line per work dir that logged it. Returns ``out``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    labels = list(labels or work_dirs)
    if len(labels) != len(work_dirs):
        raise ValueError('give one label per work dir')
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for work_dir, label in zip(work_dirs, labels):
            points = train_curve(work_dir, key)
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, label=label)
        ax.set_title(key)
        ax.set_xlabel('iteration')
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
