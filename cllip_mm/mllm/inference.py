# Copyright (c) cllip_mm contributors. All rights reserved.
"""Generation, evaluation and the one-call API of a trained region-aware LLaVA.

:class:`RegionMLLM` bundles the model and its tokenizer: ``save_pretrained`` /
``from_pretrained`` write and read one directory (transformers' files: ``config.json``,
``model.safetensors``, the tokenizer files), and :meth:`RegionMLLM.ask` answers a question
about an image, ``RegionInferencer`` style::

    mllm = RegionMLLM.from_pretrained('work_dirs/region_mllm/cloc_region/hf')
    mllm.ask('img.jpg', 'what is in <box>?', boxes=[[10, 20, 60, 80]])   # xyxy pixels
    mllm.ask('img.jpg', 'where is the red circle?')   # answer + boxes in pixels

Generation is greedy on left-padded batches (:func:`generate_answers`), through
``GenerationMixin.generate`` on the merged input embeddings.
"""
import os.path as osp
from typing import List, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch

from .answers import Scores, score_generations
from .coords import normalize_box, parse_boxes, text_box
from .data import ImageLoader, InstructionDataPreprocessor, PromptDataset, SequenceEncoder
from .instructions import BOX_MARK, Instruction
from .modeling import RegionLlavaForConditionalGeneration
from .records import RegionRecord

#: Enough for a box answer ("[123,456,789,999]" is 18 tokens with the leading space) + </s>.
DEFAULT_MAX_NEW_TOKENS = 24


def _encoder(model: RegionLlavaForConditionalGeneration, tokenizer) -> SequenceEncoder:
    return SequenceEncoder(tokenizer, model.num_image_tokens, model.region_sampler is not None)


@torch.no_grad()
def generate_answers(model: RegionLlavaForConditionalGeneration,
                     tokenizer,
                     records: Sequence[RegionRecord],
                     instructions: Sequence[Instruction],
                     batch_size: int = 32,
                     max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                     image_loader: Optional[ImageLoader] = None) -> List[str]:
    """Greedy answers to the instructions' questions (one string per instruction, the
    decoded new tokens without special tokens, stripped). A model with a region sampler
    gets ``<region>`` tokens after the boxes of the questions."""
    was_training = model.training
    model.eval()
    loader = image_loader or ImageLoader(model.config.image_processing['size'])
    dataset = PromptDataset(records, instructions, _encoder(model, tokenizer), loader)
    batcher = InstructionDataPreprocessor.from_config(model.config, padding_side='left').to(
        model.device)
    answers: List[Optional[str]] = [None] * len(dataset)
    for start in range(0, len(dataset), batch_size):
        batch = batcher([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        new_ids = model.generate_from(
            batch['input_ids'], batch['attention_mask'], batch['pixel_values'],
            batch['region_boxes'], batch['region_valid'], max_new_tokens=max_new_tokens,
            do_sample=False, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id)
        for index, ids in zip(batch['index'], new_ids):
            answers[index] = tokenizer.decode(ids, skip_special_tokens=True).strip()
    model.train(was_training)
    return answers


def evaluate_instructions(model: RegionLlavaForConditionalGeneration,
                          tokenizer,
                          records: Sequence[RegionRecord],
                          instructions: Sequence[Instruction],
                          batch_size: int = 32,
                          max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                          iou_thr: float = 0.5) -> Scores:
    """Generate and score (:func:`~cllip_mm.mllm.answers.score_generations`)."""
    answers = generate_answers(model, tokenizer, records, instructions, batch_size,
                               max_new_tokens)
    return score_generations(instructions, answers, iou_thr)


class Answer(NamedTuple):
    """What :meth:`RegionMLLM.ask` returns.

    Attributes:
        text (str): The generated answer.
        boxes (list[list[float]]): The valid boxes in the answer, xyxy pixels of the image.
        question (str): The question as the model saw it (boxes as text, ``<region>``
            tokens when the model has a region sampler).
    """
    text: str
    boxes: List[List[float]]
    question: str


class RegionMLLM:
    """A trained region-aware LLaVA and its tokenizer (see the module docstring)."""

    def __init__(self, model: RegionLlavaForConditionalGeneration, tokenizer) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.image_loader = ImageLoader(model.config.image_processing['size'], cache=False)

    def save_pretrained(self, out_dir: str) -> None:
        self.model.save_pretrained(out_dir)
        self.tokenizer.save_pretrained(out_dir)

    @classmethod
    def from_pretrained(cls, directory: str, device: Union[str, torch.device] = 'cpu'):
        from transformers import AutoTokenizer
        if not osp.isfile(osp.join(directory, 'config.json')):
            raise FileNotFoundError(f'{directory!r} has no config.json')
        model = RegionLlavaForConditionalGeneration.from_pretrained(directory).to(device)
        return cls(model, AutoTokenizer.from_pretrained(directory))

    @property
    def region_token(self) -> bool:
        return self.model.region_sampler is not None

    @torch.no_grad()
    def ask(self, image: Union[str, np.ndarray], question: str,
            boxes: Optional[Sequence[Sequence[float]]] = None,
            max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> Answer:
        """Answer one question about one image.

        Args:
            image (str | ndarray): Image file, or a BGR uint8 HWC array.
            question (str): The question; each ``<box>`` in it is replaced by the next of
                ``boxes`` written as text coordinates (with a ``<region>`` token when the
                model has a region sampler).
            boxes (list, optional): xyxy pixels of the image, one per ``<box>``.
            max_new_tokens (int): Generation length limit.

        Returns:
            Answer: The text, the boxes it holds (pixels) and the question as asked.
        """
        import mmcv
        bgr = mmcv.imread(image) if isinstance(image, str) else np.asarray(image)
        if bgr is None:
            raise FileNotFoundError(f'cannot read image {image!r}')
        height, width = bgr.shape[:2]
        boxes = [normalize_box(b, width, height) for b in (boxes or [])]
        parts = question.split(BOX_MARK)
        if len(parts) != len(boxes) + 1:
            raise ValueError(f'the question has {len(parts) - 1} {BOX_MARK} marks but '
                             f'{len(boxes)} boxes were given')
        # the region token reads the box the text says (bin centres), as in training
        inst = Instruction(0, 'referring', tuple(parts), tuple(tuple(text_box(b)) for b in boxes),
                           '', '', 0)
        asked = inst.question(self.region_token)
        encoder = _encoder(self.model, self.tokenizer)
        item = encoder.prompt(inst)
        item['image'] = self.image_loader(bgr)
        batch = InstructionDataPreprocessor.from_config(self.model.config, 'left').to(
            self.model.device)([item])
        new_ids = self.model.generate_from(
            batch['input_ids'], batch['attention_mask'], batch['pixel_values'],
            batch['region_boxes'], batch['region_valid'], max_new_tokens=max_new_tokens,
            do_sample=False, eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id)
        text = self.tokenizer.decode(new_ids[0], skip_special_tokens=True).strip()
        scale = [width, height, width, height]
        found = [[v * s for v, s in zip(box, scale)] for box in parse_boxes(text)]
        return Answer(text, found, asked)

