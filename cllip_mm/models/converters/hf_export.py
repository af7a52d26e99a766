# Copyright (c) cllip_mm contributors. All rights reserved.
"""A built ``CLOC`` -> a Hugging Face ``CLIPModel`` directory (+ the Prompter)."""
from typing import List, Mapping, NamedTuple, Optional

import torch

from .arch import encoder_cfgs_from_model
from .hf_clip import (
    HF_LEGACY_EOS_TOKEN_ID,
    export_hf_clip,
    hf_config_from_encoder_cfgs,
    move_token_embedding,
)
from .prompter_io import export_prompter
from .tokenizer import export_tokenizer


class HFExport(NamedTuple):
    """What :func:`export_cloc_to_hf` wrote.

    Attributes:
        config (dict): The ``CLIPConfig`` keyword arguments.
        left_out (list[str]): ``CLOC`` keys with no place in ``CLIPModel`` (the
            Prompter's and grounding head's go to ``prompter.safetensors`` instead).
        eot_moved_to (int | None): The new EOT id when the model's EOT id was HF's
            reserved value 2 (token embedding row copied, tokenizer rewritten).
        tokenizer (dict | None): Token ids of the written tokenizer.
        prompter_files (tuple | None): Paths of the Prompter files.
        image_processor (dict | None): ``image_mean`` / ``image_std`` (0-1 scale, RGB) of
            the written ``preprocessor_config.json``.
    """
    config: dict
    left_out: List[str]
    eot_moved_to: Optional[int]
    tokenizer: Optional[dict]
    prompter_files: Optional[tuple]
    image_processor: Optional[dict]


def export_image_processor(model: torch.nn.Module, out_dir: str) -> Optional[dict]:
    """Write ``preprocessor_config.json`` (a ``CLIPImageProcessor``: resize the short side
    to the encoder's input size, center-crop, normalise with the model's mean / std), as
    LLaVA-style code loads it next to the vision tower. Nothing is written when the
    model's data preprocessor does not normalise."""
    from transformers import CLIPImageProcessor
    preprocessor = getattr(model, 'data_preprocessor', None)
    mean, std = getattr(preprocessor, 'mean', None), getattr(preprocessor, 'std', None)
    if mean is None or std is None or not getattr(preprocessor, '_enable_normalize', True):
        return None
    h, w = model.image_encoder.img_size
    stats = dict(image_mean=[float(m) / 255 for m in mean.flatten()],
                 image_std=[float(s) / 255 for s in std.flatten()])
    CLIPImageProcessor(size={'shortest_edge': min(h, w)}, crop_size={'height': h, 'width': w},
                       **stats).save_pretrained(out_dir)
    return stats


def export_cloc_to_hf(model: torch.nn.Module,
                      out_dir: str,
                      model_cfg: Optional[Mapping] = None,
                      tokenizer_path: Optional[str] = None,
                      with_prompter: bool = True,
                      dtype: Optional[torch.dtype] = None) -> HFExport:
    """Write ``config.json`` + ``model.safetensors`` of a ``transformers.CLIPModel``
    (also loadable as ``CLIPVisionModel`` / ``CLIPTextModel``), the tokenizer, the
    image processor (``preprocessor_config.json``) and the Prompter files.

    Args:
        model (CLOC): The built model with its weights.
        out_dir (str): Output directory.
        model_cfg (dict, optional): The ``model`` config; its ``prompter`` /
            ``grounding_head`` entries describe the exported Prompter.
        tokenizer_path (str, optional): The tokenizer to write (usually
            ``model_cfg['tokenizer']['path']``). Needed when the EOT id is 2.
        with_prompter (bool): Write ``prompter.safetensors`` / ``prompter_config.json``
            when the model has a Prompter.
        dtype (torch.dtype, optional): Weights dtype of the HF model (default float32).

    Returns:
        HFExport: What was written.
    """
    from transformers import CLIPConfig, CLIPModel

    encoders = encoder_cfgs_from_model(model)
    img, txt = encoders['image_encoder'], encoders['text_encoder']
    state_dict = {k: v.detach().float() for k, v in model.state_dict().items()}

    eot_moved_to = None
    if txt['eot_token_id'] == HF_LEGACY_EOS_TOKEN_ID:
        # HF reads eos_token_id == 2 as "pool at the argmax id": give EOT a new id.
        if tokenizer_path is None:
            raise ValueError('the model pools at EOT id 2, which Hugging Face CLIP reads as '
                             'argmax pooling; exporting moves EOT to a new id and needs the '
                             'tokenizer (tokenizer_path) to rewrite it')
        eot_moved_to = move_token_embedding(state_dict, HF_LEGACY_EOS_TOKEN_ID)
        txt.update(vocab_size=eot_moved_to + 1, eot_token_id=eot_moved_to)

    token_ids = None
    if tokenizer_path is not None:
        token_ids = export_tokenizer(tokenizer_path, out_dir, txt['context_length'],
                                     eot_token_id=eot_moved_to)

    hf_state_dict, left_out = export_hf_clip(state_dict)
    logit_scale = state_dict.get('clip_loss.logit_scale')
    config = hf_config_from_encoder_cfgs(
        img, txt, logit_scale=None if logit_scale is None else float(logit_scale),
        bos_token_id=token_ids['sot_token_id'] if token_ids else None,
        pad_token_id=token_ids['pad_token_id'] if token_ids else None)
    hf_model = CLIPModel(CLIPConfig(**config))
    hf_model.load_state_dict(hf_state_dict, strict=True)
    if dtype is not None:
        hf_model = hf_model.to(dtype)
    hf_model.save_pretrained(out_dir)

    image_processor = export_image_processor(model, out_dir)

    prompter_files = None
    if with_prompter and getattr(model, 'prompter', None) is not None:
        model_cfg = model_cfg or {}
        if not model_cfg.get('prompter'):
            raise ValueError('exporting the Prompter needs model_cfg with its prompter config')
        region_loss = getattr(model, 'region_loss', None)
        has_head = getattr(model, 'grounding_head', None) is not None
        prompter_files = export_prompter(
            state_dict, out_dir, model_cfg['prompter'],
            model_cfg.get('grounding_head') if has_head else None,
            vision=dict(patch_size=img['patch_size'], image_size=list(model.image_encoder.img_size),
                        width=img['width'], embed_dim=img['embed_dim'],
                        patch_token_norm=model.image_encoder.patch_token_norm),
            region_logit_scale=(float(region_loss.logit_scale)  # None: shares clip_loss's
                                if getattr(region_loss, 'logit_scale', None) is not None
                                else None))
    return HFExport(config, left_out, eot_moved_to, token_ids, prompter_files, image_processor)
