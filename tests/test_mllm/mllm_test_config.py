# Copyright (c) cllip_mm contributors. All rights reserved.
"""The tiny LM config of the MLLM tests, importable by name (``conftest`` is not: pytest
imports every directory's ``conftest.py`` under that one module name)."""

#: A Llama of 64 wide, 2 blocks: seconds to train on the tiny set.
TINY_LM = dict(model_type='llama', hidden_size=64, intermediate_size=128, num_hidden_layers=2,
               num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
               tie_word_embeddings=True)
