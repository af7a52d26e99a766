# Copyright (c) cllip_mm contributors. All rights reserved.
"""Assemble the region-aware LLaVA from a cllip_mm vision tower, a tokenizer and an LM config."""
from typing import Optional, Union

from .modeling import RegionLlavaConfig, RegionLlavaForConditionalGeneration
from .tokenizer import IMAGE_TOKEN, REGION_TOKEN
from .vision import VisionSource

#: The demo's LM: a small Llama trained from scratch (0.8 M parameters; 128 wide, 4 blocks).
DEFAULT_LM = dict(model_type='llama', hidden_size=128, intermediate_size=256,
                  num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                  max_position_embeddings=1024, tie_word_embeddings=True)


def build_region_llava(source: VisionSource,
                       tokenizer,
                       lm: Optional[dict] = None,
                       region_token: bool = False,
                       vision_feature_layer: Union[int, list] = -1,
                       vision_feature_select_strategy: str = 'default',
                       train_vision_tower: bool = False,
                       train_region_sampler: bool = False,
                       seed: Optional[int] = None) -> RegionLlavaForConditionalGeneration:
    """A :class:`RegionLlavaForConditionalGeneration` with the cllip_mm tower's weights.

    Args:
        source (VisionSource): From :func:`~cllip_mm.mllm.vision.load_vision_source`.
        tokenizer (PreTrainedTokenizerFast): From
            :func:`~cllip_mm.mllm.tokenizer.build_instruction_tokenizer` (its ``<image>``,
            ``<region>``, pad / bos / eos ids are used).
        lm (dict, optional): The text config (``model_type`` plus its arguments; default
            :data:`DEFAULT_LM`); vocabulary size and special ids come from the tokenizer.
            The LM is randomly initialised.
        region_token (bool): Add the Prompter region token (Ferret*); needs a source
            with a Prompter (a CLOC).
        vision_feature_layer (int | list): LLaVA's: which tower block's tokens are the
            image tokens (-1: the last, what the Prompter reads).
        vision_feature_select_strategy (str): ``'default'`` (patch tokens only) or
            ``'full'`` (with the class token).
        train_vision_tower (bool): Train the tower (default frozen).
        train_region_sampler (bool): Train the Prompter (default frozen: its output is
            CLOC's region embedding).
        seed (int, optional): Seed of the random initialisation (``torch.manual_seed``).

    Returns:
        RegionLlavaForConditionalGeneration: In train mode.
    """
    import torch
    if region_token and source.region_sampler is None:
        raise ValueError('region_token=True needs a vision source with a Prompter (a CLOC '
                         'checkpoint); this one has none (the CLIP baseline?)')
    if seed is not None:
        torch.manual_seed(seed)
    text_config = dict(DEFAULT_LM if lm is None else lm)
    text_config.update(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    image_token_index = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    region_token_index = tokenizer.convert_tokens_to_ids(REGION_TOKEN)
    vision_config = dict(source.vision_config, model_type='clip_vision_model')
    grid = (vision_config['image_size'] // vision_config['patch_size'])**2
    config = RegionLlavaConfig(
        vision_config=vision_config, text_config=text_config,
        image_token_index=image_token_index,
        image_seq_length=grid + (vision_feature_select_strategy == 'full'),
        vision_feature_layer=vision_feature_layer,
        vision_feature_select_strategy=vision_feature_select_strategy,
        tie_word_embeddings=bool(text_config.get('tie_word_embeddings', False)),
        region_token_index=region_token_index,
        region_sampler=source.region_sampler if region_token else None,
        patch_token_norm=source.patch_token_norm,
        image_processing=dict(source.image_processing))
    model = RegionLlavaForConditionalGeneration(config)
    model.model.vision_tower.load_state_dict(source.vision_state_dict, strict=True)
    if region_token:
        model.region_sampler.load_state_dict(source.region_sampler_state_dict, strict=True)
    model.freeze(vision_tower=not train_vision_tower, region_sampler=not train_region_sampler)
    return model.train()
