# Copyright (c) cllip_mm contributors. All rights reserved.
"""Weight conversion between cllip_mm and other code bases: CLIP weights in
(docs/interoperability.md), Hugging Face and the mmdet plugins out (docs/downstream.md)."""
from .arch import (
                   CLOC_WEIGHT_MODULES,
                   cloc_heads_cfg,
                   encoder_cfgs_from_model,
                   encoder_cfgs_from_state_dict,
                   format_config,
                   mlp_ratio_for,
                   reference_shapes,
                   resize_image_pos_embed,
)
from .clip_import import DEFAULT_ACT, SRC_FORMATS, ClipImport, import_clip
from .hf_clip import (
                   convert_hf_clip,
                   encoder_cfgs_from_hf_config,
                   eos_token_id_for_hf,
                   eot_token_id_from_hf,
                   export_hf_clip,
                   hf_config_from_encoder_cfgs,
                   move_token_embedding,
)
from .hf_export import HFExport, export_cloc_to_hf, export_image_processor
from .io import (
                   copy_tokenizer_files,
                   load_cllip_state_dict,
                   load_hf_pretrained,
                   load_state_dict_file,
                   save_mmengine_checkpoint,
)
from .mmdet_plugins import (
                   PART_PREFIXES,
                   check_against_model,
                   convert_cllip_state_dict,
                   converted_parts,
)
from .openai_clip import convert_openai_clip
from .prompter_io import PrompterBundle, export_prompter, hf_patch_tokens, load_prompter
from .report import ConversionReport, match_state_dict
from .tokenizer import export_tokenizer

__all__ = [
    'ConversionReport', 'match_state_dict', 'convert_hf_clip', 'export_hf_clip',
    'convert_openai_clip', 'encoder_cfgs_from_hf_config', 'hf_config_from_encoder_cfgs',
    'eot_token_id_from_hf', 'eos_token_id_for_hf', 'move_token_embedding',
    'encoder_cfgs_from_state_dict', 'encoder_cfgs_from_model', 'mlp_ratio_for',
    'resize_image_pos_embed', 'reference_shapes', 'cloc_heads_cfg', 'format_config',
    'CLOC_WEIGHT_MODULES', 'import_clip', 'ClipImport', 'SRC_FORMATS', 'DEFAULT_ACT',
    'export_cloc_to_hf', 'export_image_processor', 'HFExport', 'export_prompter', 'load_prompter', 'PrompterBundle',
    'hf_patch_tokens', 'export_tokenizer', 'load_state_dict_file', 'load_hf_pretrained',
    'copy_tokenizer_files', 'save_mmengine_checkpoint', 'load_cllip_state_dict',
    'PART_PREFIXES', 'convert_cllip_state_dict', 'check_against_model', 'converted_parts'
]
