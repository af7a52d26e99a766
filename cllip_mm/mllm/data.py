# Copyright (c) cllip_mm contributors. All rights reserved.
"""Images and instructions -> token sequences and batches for the region-aware LLaVA.

Sequence layout (token ids; ``N`` = the model's ``num_image_tokens``)::

    <s> <image> x N  USER: q_1 ASSISTANT: a_1 </s>  USER: q_2 ASSISTANT: a_2 </s> ...

A training sample is one image with up to ``turns_per_sample`` of its questions (LLaVA's
multi-turn conversations: the image tokens are paid once for several answers); only the
answers and their ``</s>`` are labelled. A prompt for generation is the same with one
question, ending at ``ASSISTANT:``. With ``region_token=True`` every box of a question is
followed by ``<region>`` and its box (normalised xyxy of the image, as the text reads it)
rides along in ``region_boxes``.

Images are read with mmcv (BGR), resized to the tower's input size without keeping the aspect
ratio (the demo's test pipeline: a box's normalised coordinates are the same before and
after) and normalised with the tower's mean / std after BGR -> RGB, as the CLOC data
preprocessor does.
"""
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.model import BaseDataPreprocessor

from .instructions import Instruction
from .records import RegionRecord
from .tokenizer import ASSISTANT, IMAGE_TOKEN, USER

IGNORE_INDEX = -100


class ImageLoader:
    """Image file (or BGR uint8 HWC array) -> uint8 RGB [3, h, w] at the tower's input size.

    Args:
        size (sequence[int]): (h, w) of the tower's input.
        cache (bool): Keep decoded images of files in memory (about 28 KB each at 96 px).
    """

    def __init__(self, size: Sequence[int], cache: bool = True) -> None:
        self.size = (int(size[0]), int(size[1]))
        self._cache: Optional[Dict[str, torch.Tensor]] = {} if cache else None

    def __call__(self, image: Union[str, np.ndarray]) -> torch.Tensor:
        import mmcv
        if isinstance(image, str) and self._cache is not None and image in self._cache:
            return self._cache[image]
        bgr = mmcv.imread(image) if isinstance(image, str) else np.asarray(image)
        if bgr is None:
            raise FileNotFoundError(f'cannot read image {image!r}')
        resized = mmcv.imresize(bgr, (self.size[1], self.size[0]), interpolation='bilinear')
        rgb = torch.from_numpy(np.ascontiguousarray(resized[..., ::-1])).permute(2, 0, 1)
        if isinstance(image, str) and self._cache is not None:
            self._cache[image] = rgb
        return rgb


class SequenceEncoder:
    """Token ids of prompts and conversations (layout in the module docstring)."""

    def __init__(self, tokenizer, num_image_tokens: int, region_token: bool) -> None:
        self.tokenizer = tokenizer
        self.num_image_tokens = int(num_image_tokens)
        self.region_token = bool(region_token)
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)

    def _ids(self, text: str) -> List[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def prefix(self) -> List[int]:
        return [self.tokenizer.bos_token_id] + [self.image_token_id] * self.num_image_tokens

    def question(self, question: str) -> List[int]:
        return self._ids(f' {USER} {question} {ASSISTANT}')

    def answer(self, answer: str) -> List[int]:
        return self._ids(' ' + answer) + [self.tokenizer.eos_token_id]

    def prompt(self, inst: Instruction) -> Dict[str, torch.Tensor]:
        """One question, ready for generation: ``input_ids`` [L], ``region_boxes`` [R, 4]."""
        ids = self.prefix() + self.question(inst.question(self.region_token))
        return dict(input_ids=torch.tensor(ids), region_boxes=self._boxes([inst]))

    def conversation(self, turns: Sequence[Instruction]) -> Dict[str, torch.Tensor]:
        """Several questions on one image with their answers: ``input_ids`` [L],
        ``labels`` [L] (``-100`` but on the answers and their ``</s>``), ``region_boxes``."""
        ids = self.prefix()
        labels = [IGNORE_INDEX] * len(ids)
        for inst in turns:
            question, answer = self.question(inst.question(self.region_token)), self.answer(inst.answer)
            ids += question + answer
            labels += [IGNORE_INDEX] * len(question) + answer
        return dict(input_ids=torch.tensor(ids), labels=torch.tensor(labels),
                    region_boxes=self._boxes(turns))

    def _boxes(self, turns: Sequence[Instruction]) -> torch.Tensor:
        if not self.region_token:
            return torch.zeros(0, 4)
        boxes = [box for inst in turns for box in inst.boxes]
        return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)


class ConversationDataset(torch.utils.data.Dataset):
    """Training samples: each image's instructions in conversations of up to
    ``turns_per_sample`` turns (the order of an image's questions is shuffled with
    ``seed``, deterministically).

    Each item: ``image`` (uint8 [3, h, w]), ``input_ids``, ``labels``, ``region_boxes``.
    """

    def __init__(self, records: Sequence[RegionRecord], instructions: Sequence[Instruction],
                 encoder: SequenceEncoder, image_loader: ImageLoader,
                 turns_per_sample: int = 4, seed: int = 0) -> None:
        self.records = records
        self.encoder = encoder
        self.image_loader = image_loader
        by_image: Dict[int, List[Instruction]] = {}
        for inst in instructions:
            by_image.setdefault(inst.image_index, []).append(inst)
        self.samples: List[List[Instruction]] = []
        for index in sorted(by_image):
            turns = by_image[index]
            order = np.random.default_rng([seed, index]).permutation(len(turns))
            turns = [turns[i] for i in order]
            for start in range(0, len(turns), turns_per_sample):
                self.samples.append(turns[start:start + turns_per_sample])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        turns = self.samples[i]
        item = self.encoder.conversation(turns)
        item['image'] = self.image_loader(self.records[turns[0].image_index].img_path)
        return item


class PromptDataset(torch.utils.data.Dataset):
    """One prompt per instruction (for generation); items as :class:`ConversationDataset`'s
    without ``labels``, plus ``index`` (the instruction's position)."""

    def __init__(self, records: Sequence[RegionRecord], instructions: Sequence[Instruction],
                 encoder: SequenceEncoder, image_loader: ImageLoader) -> None:
        self.records, self.instructions = records, instructions
        self.encoder, self.image_loader = encoder, image_loader

    def __len__(self) -> int:
        return len(self.instructions)

    def __getitem__(self, i: int) -> dict:
        inst = self.instructions[i]
        item = self.encoder.prompt(inst)
        item.update(image=self.image_loader(self.records[inst.image_index].img_path), index=i)
        return item


class InstructionDataPreprocessor(BaseDataPreprocessor):
    """Batches items of :class:`ConversationDataset` / :class:`PromptDataset` (a list of
    dicts, e.g. MMEngine's ``pseudo_collate``) into model inputs on the model's device.

    Returns a dict: ``input_ids`` [B, L] (padded with ``pad_token_id``, on the right, or on
    the left with ``padding_side='left'`` for generation), ``attention_mask`` [B, L],
    ``labels`` [B, L] (``-100`` on padding; when the items have labels), ``pixel_values``
    [B, 3, h, w], ``region_boxes`` [B, R, 4] and ``region_valid`` [B, R] (R = the most
    boxes of a sample, 0 without region tokens), ``index`` (when the items have one).
    """

    def __init__(self, pad_token_id: int, mean: Sequence[float], std: Sequence[float],
                 padding_side: str = 'right') -> None:
        super().__init__()
        if padding_side not in ('left', 'right'):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.pad_token_id = int(pad_token_id)
        self.padding_side = padding_side
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)

    def _pad(self, seqs: List[torch.Tensor], value: int) -> torch.Tensor:
        length = max(len(s) for s in seqs)
        out = torch.full((len(seqs), length), value, dtype=torch.long)
        for i, s in enumerate(seqs):
            if self.padding_side == 'right':
                out[i, :len(s)] = s
            else:
                out[i, length - len(s):] = s
        return out

    @classmethod
    def from_config(cls, config, padding_side: str = 'right') -> 'InstructionDataPreprocessor':
        """For a :class:`~cllip_mm.mllm.modeling.RegionLlavaConfig`."""
        return cls(config.text_config.pad_token_id, config.image_processing['mean'],
                   config.image_processing['std'], padding_side)

    def forward(self, data: Union[List[dict], Dict[str, list]], training: bool = False) -> dict:
        """``data``: the items, as a list of dicts or a dict of lists (what MMEngine's
        ``pseudo_collate`` makes of them)."""
        if isinstance(data, dict):
            keys = list(data)
            data = [dict(zip(keys, values)) for values in zip(*(data[k] for k in keys))]
        items = list(data)
        ids = [it['input_ids'] for it in items]
        batch = dict(input_ids=self._pad(ids, self.pad_token_id))
        mask = self._pad([torch.ones_like(s) for s in ids], 0)
        batch['attention_mask'] = mask
        if all('labels' in it for it in items):
            batch['labels'] = self._pad([it['labels'] for it in items], IGNORE_INDEX)
        batch['pixel_values'] = torch.stack([it['image'] for it in items])
        rmax = max(len(it['region_boxes']) for it in items)
        boxes = torch.zeros(len(items), rmax, 4)
        valid = torch.zeros(len(items), rmax, dtype=torch.bool)
        for i, it in enumerate(items):
            boxes[i, :len(it['region_boxes'])] = it['region_boxes']
            valid[i, :len(it['region_boxes'])] = True
        batch.update(region_boxes=boxes, region_valid=valid)
        batch = self.cast_data(batch)
        batch['pixel_values'] = (batch['pixel_values'].float() - self.mean) / self.std
        if all('index' in it for it in items):
            batch['index'] = [int(it['index']) for it in items]
        return batch
