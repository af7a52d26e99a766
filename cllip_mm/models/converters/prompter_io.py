# Copyright (c) cllip_mm contributors. All rights reserved.
"""The Prompter (+ grounding head) as a small stand-alone file pair next to an exported
Hugging Face CLIP: ``prompter.safetensors`` and ``prompter_config.json``."""
import json
import os
import os.path as osp
from typing import Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import torch

from ..utils.state_dict import sub_state_dict

PROMPTER_WEIGHTS = 'prompter.safetensors'
PROMPTER_CONFIG = 'prompter_config.json'
FORMAT = 'cllip_mm.prompter/1'


class PrompterBundle(NamedTuple):
    """What :func:`load_prompter` returns.

    Attributes:
        prompter (Prompter): In eval mode.
        grounding_head (GroundingHead | None): In eval mode, None when not exported.
        config (dict): The content of ``prompter_config.json``.
    """
    prompter: torch.nn.Module
    grounding_head: Optional[torch.nn.Module]
    config: dict


def _module_kwargs(cfg: Optional[Mapping]) -> Optional[dict]:
    if not cfg:
        return None
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()
            if k not in ('type', 'init_cfg')}


def export_prompter(state_dict: Mapping[str, torch.Tensor],
                    out_dir: str,
                    prompter_cfg: Mapping,
                    grounding_head_cfg: Optional[Mapping] = None,
                    vision: Optional[Mapping] = None,
                    region_logit_scale: Optional[float] = None) -> Tuple[str, str]:
    """Write ``prompter.safetensors`` (keys ``prompter.*`` and ``grounding_head.*`` of a
    ``CLOC`` state dict) and ``prompter_config.json``.

    Args:
        state_dict (dict): A ``CLOC`` state dict.
        out_dir (str): Output directory (usually the exported HF model's).
        prompter_cfg (dict): The ``Prompter`` config (``type`` is dropped).
        grounding_head_cfg (dict, optional): The ``GroundingHead`` config.
        vision (dict, optional): Facts about the image encoder the Prompter reads, e.g.
            ``patch_size``, ``image_size``, ``width`` and ``patch_token_norm``.
        region_logit_scale (float, optional): The log scale of region-text logits.

    Returns:
        tuple: Paths of the weights and the config file.
    """
    from safetensors.torch import save_file
    prefixes = ('prompter.',) + (('grounding_head.',) if grounding_head_cfg else ())
    tensors = {k: v.detach().float().contiguous()
               for k, v in state_dict.items() if k.startswith(prefixes)}
    if not any(k.startswith('prompter.') for k in tensors):
        raise KeyError('state dict has no prompter.* weights')
    config = dict(format=FORMAT,
                  prompter=_module_kwargs(prompter_cfg),
                  grounding_head=_module_kwargs(grounding_head_cfg),
                  vision=dict(vision or {}),
                  region_logit_scale=region_logit_scale)
    os.makedirs(out_dir, exist_ok=True)
    weights, cfg_file = osp.join(out_dir, PROMPTER_WEIGHTS), osp.join(out_dir, PROMPTER_CONFIG)
    save_file(tensors, weights, metadata={'format': FORMAT})
    with open(cfg_file, 'w') as f:
        json.dump(config, f, indent=2)
    return weights, cfg_file


def load_prompter(directory: str, device: Union[str, torch.device] = 'cpu') -> PrompterBundle:
    """Load what :func:`export_prompter` wrote (strictly: every weight must match)."""
    from safetensors.torch import load_file

    from ..heads import GroundingHead
    from ..prompters import Prompter
    cfg_file = osp.join(directory, PROMPTER_CONFIG)
    if not osp.isfile(cfg_file):
        raise FileNotFoundError(f'no {PROMPTER_CONFIG} in {directory!r}')
    with open(cfg_file) as f:
        config = json.load(f)
    if config.get('format') != FORMAT:
        raise ValueError(f"{cfg_file}: format {config.get('format')!r}, expected {FORMAT!r}")
    tensors = load_file(osp.join(directory, PROMPTER_WEIGHTS), device=str(device))
    prompter = Prompter(**config['prompter'])
    prompter.load_state_dict(sub_state_dict(tensors, 'prompter.'))
    head = None
    if config.get('grounding_head'):
        head = GroundingHead(**config['grounding_head'])
        head.load_state_dict(sub_state_dict(tensors, 'grounding_head.'))
        head = head.to(device).eval()
    return PrompterBundle(prompter.to(device).eval(), head, config)


def hf_patch_tokens(last_hidden_state: torch.Tensor,
                    grid: Sequence[int],
                    post_layernorm: Optional[torch.nn.Module] = None) -> torch.Tensor:
    """The patch-token map the Prompter reads, from a Hugging Face CLIP vision tower.

    HF's ``last_hidden_state`` is the output of the last block, *before*
    ``post_layernorm`` (which HF applies to the class token only). Pass
    ``vision_model.post_layernorm`` when the exported model used
    ``patch_token_norm='ln_post'`` (``prompter_config.json``: ``vision.patch_token_norm``).

    Args:
        last_hidden_state (Tensor): [B, 1 + h*w, C], class token first.
        grid (tuple): (h, w) = (H // patch_size, W // patch_size) of the input.
        post_layernorm (nn.Module, optional): Applied to the patch tokens.

    Returns:
        Tensor: [B, C, h, w] contiguous, row-major from the image's top-left.
    """
    tokens = last_hidden_state[:, 1:]
    if post_layernorm is not None:
        tokens = post_layernorm(tokens)
    return tokens.transpose(1, 2).unflatten(2, tuple(grid)).contiguous()
