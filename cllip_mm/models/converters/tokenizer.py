# Copyright (c) cllip_mm contributors. All rights reserved.
"""Writing a model's tokenizer as a Hugging Face tokenizer directory."""
import json
import os
import os.path as osp
from typing import Dict, Optional

from ..tokenizers import EOT_TOKEN, SOT_TOKEN, HFTokenizer
from .io import copy_tokenizer_files


def _set_token_id(tokenizer_json: dict, token: str, new_id: int) -> None:
    """Give ``token`` the id ``new_id`` everywhere in a ``tokenizer.json`` (in place)."""
    for entry in tokenizer_json.get('added_tokens') or []:
        if entry['content'] == token:
            entry['id'] = new_id
    vocab = (tokenizer_json.get('model') or {}).get('vocab')
    if isinstance(vocab, dict):
        if token in vocab:
            vocab[token] = new_id
    elif vocab is not None:
        raise ValueError(f"cannot move a token of a {tokenizer_json['model'].get('type')} tokenizer")

    def fix_processor(proc: Optional[dict]) -> None:
        if not proc:
            return
        if proc.get('type') == 'Sequence':
            for sub in proc.get('processors', []):
                fix_processor(sub)
        for special in (proc.get('special_tokens') or {}).values():  # TemplateProcessing
            if special.get('id') == token:
                special['ids'] = [new_id] * len(special.get('ids', [new_id]))
        for name in ('sep', 'cls'):  # BertProcessing / RobertaProcessing: [token, id]
            if isinstance(proc.get(name), list) and proc[name][0] == token:
                proc[name][1] = new_id

    fix_processor(tokenizer_json.get('post_processor'))
    padding = tokenizer_json.get('padding')
    if padding and padding.get('pad_token') == token:
        padding['pad_id'] = new_id


def export_tokenizer(path: str, out_dir: str, context_length: int,
                     eot_token_id: Optional[int] = None) -> Dict[str, int]:
    """Write the tokenizer at ``path`` (what :class:`HFTokenizer` loads) to ``out_dir``
    as a Hugging Face tokenizer that ``AutoTokenizer.from_pretrained`` loads and that
    tokenises like :class:`HFTokenizer`: ``[SOT] tokens [EOT]``.

    A ``save_pretrained`` directory is copied file by file. A bare ``tokenizer.json``
    (the demo tokenizer) is wrapped in a ``PreTrainedTokenizerFast`` with SOT / EOT
    as its bos / eos tokens.

    Args:
        path (str): Tokenizer directory or ``tokenizer.json``.
        out_dir (str): Output directory.
        context_length (int): ``model_max_length`` of a wrapped tokenizer.
        eot_token_id (int, optional): A new id for the EOT token (see
            :func:`~cllip_mm.models.converters.hf_clip.move_token_embedding`).

    Returns:
        dict: ``sot_token_id``, ``eot_token_id`` and ``pad_token_id`` of the written
        tokenizer.
    """
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    source = HFTokenizer(path, context_length=context_length)
    ids = dict(sot_token_id=source.sot_token_id, eot_token_id=source.eot_token_id,
               pad_token_id=source.pad_token_id)
    move = eot_token_id is not None and eot_token_id != source.eot_token_id
    if osp.isdir(path) and osp.isfile(osp.join(path, 'tokenizer_config.json')) and not move:
        copy_tokenizer_files(path, out_dir)
        return ids

    tokenizer_json = json.loads(source.tokenizer.backend_tokenizer.to_str())
    if move:
        _set_token_id(tokenizer_json, EOT_TOKEN, eot_token_id)
        ids['eot_token_id'] = eot_token_id
        if ids['pad_token_id'] == source.eot_token_id:
            ids['pad_token_id'] = eot_token_id
    backend = Tokenizer.from_str(json.dumps(tokenizer_json))
    backend.post_processor = processors.TemplateProcessing(
        single=f'{SOT_TOKEN} $A {EOT_TOKEN}',
        special_tokens=[(SOT_TOKEN, ids['sot_token_id']), (EOT_TOKEN, ids['eot_token_id'])])
    pad_token = source.tokenizer.convert_ids_to_tokens(source.pad_token_id)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=SOT_TOKEN, eos_token=EOT_TOKEN,
        pad_token=EOT_TOKEN if pad_token == EOT_TOKEN else pad_token,
        model_max_length=context_length)
    os.makedirs(out_dir, exist_ok=True)
    wrapped.save_pretrained(out_dir)
    return ids
