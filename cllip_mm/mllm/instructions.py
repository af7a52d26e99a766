# Copyright (c) cllip_mm contributors. All rights reserved.
"""Region instructions (questions with their answers) generated from region-text records.

Three tasks, from any :class:`~cllip_mm.mllm.records.RegionRecord` list (the demo's JSON Lines
or an ODVG file, read by :func:`~cllip_mm.mllm.records.load_region_records`):

- ``'referring'``: "what is in <box>?" -> the region's phrase (Ferret's referring);
- ``'grounding'``: "where is the <phrase>?" -> the region's box as text coordinates (only
  for phrases that name exactly one region of the image, so the answer is unique);
- ``'relation'`` (free-form): "where is the <phrase> relative to the <other>?" -> one of
  ``left`` / ``right`` / ``above`` / ``below``: the direction from the other region's box
  centre to the region's, along the axis of the larger offset. Only pairs of
  single-instance phrases whose centres are at least ``relation_margin`` apart (normalised
  image side) on that axis, and at most half as far on the other, are asked: the answer is
  then not a judgement call.

Boxes in questions and answers are text coordinates in the 0-999 frame of
:mod:`cllip_mm.mllm.coords`. A question keeps the normalised boxes it shows (as the text reads
back, at bin centres: the box a reader of the question sees), so that the MLLM's Prompter
region token is made from the same box as the text (:meth:`Instruction.question` with
``region_token=True`` writes a ``<region>`` token after each box, Ferret's layout).

Generation is deterministic given the seed: image ``i``'s questions come from a generator
seeded with ``(seed, i, task)``, so they do not change when other images or tasks are added.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from .coords import format_box, text_box
from .records import RegionRecord

TASKS = ('referring', 'grounding', 'relation')
RELATIONS = ('left', 'right', 'above', 'below')
#: The Ferret-style region token written after a box when the MLLM has a region sampler.
REGION_TOKEN = '<region>'
#: Question templates: ``<box>`` is where a box goes (as text), ``{phrase}`` / ``{other}``
#: the phrases (replaced literally, so phrases may hold any character).
DEFAULT_TEMPLATES = dict(
    referring='what is in <box>?',
    grounding='where is the {phrase}?',
    relation='where is the {phrase} relative to the {other}?')
BOX_MARK = '<box>'


class Instruction(NamedTuple):
    """One question about one image, with its answer.

    Attributes:
        image_index (int): Index of the image in the record list.
        task (str): One of :data:`TASKS`.
        parts (tuple[str]): The question's text around its boxes: ``parts[0] box_0 parts[1]
            box_1 ... parts[-1]`` (``len(parts) == len(boxes) + 1``).
        boxes (tuple): The boxes of the question, normalised xyxy in [0, 1] of the image at
            the text's bin centres (what the text reads back as).
        answer (str): The expected answer text.
        target: What the answer is scored against: the phrase (referring), the
            ground-truth normalised xyxy box, not quantised (grounding), the relation word.
        region_index (int): The record's region the question is about (the first one for
            relations).
    """
    image_index: int
    task: str
    parts: Tuple[str, ...]
    boxes: Tuple[Tuple[float, float, float, float], ...]
    answer: str
    target: Union[str, Tuple[float, ...]]
    region_index: int

    def question(self, region_token: bool = False) -> str:
        """The question text; with ``region_token`` a ``<region>`` follows each box."""
        out = [self.parts[0]]
        for box, part in zip(self.boxes, self.parts[1:]):
            out.append(format_box(box) + (' ' + REGION_TOKEN if region_token else '') + part)
        return ''.join(out)


def relation_of(box: Sequence[float], other: Sequence[float], margin: float) -> Optional[str]:
    """Where ``box`` lies relative to ``other`` (normalised xyxy, y down): ``'left'``,
    ``'right'``, ``'above'``, ``'below'``, or None when the centres are less than
    ``margin`` apart on the dominant axis or more than half as far apart on the other."""
    dx = (box[0] + box[2] - other[0] - other[2]) / 2
    dy = (box[1] + box[3] - other[1] - other[3]) / 2
    horizontal = abs(dx) >= abs(dy)
    major, minor = (dx, dy) if horizontal else (dy, dx)
    if abs(major) < margin or abs(minor) > abs(major) / 2:
        return None
    if horizontal:
        return 'left' if dx < 0 else 'right'
    return 'above' if dy < 0 else 'below'


class InstructionBuilder:
    """Questions and answers from region-text records.

    Args:
        per_image (dict): Questions per image and task, at most (fewer when an image has
            fewer eligible regions / pairs), e.g. ``dict(referring=2, grounding=2,
            relation=1)``; a task left out is not asked.
        seed (int): Seed of the sampling.
        relation_margin (float): Smallest centre offset (normalised image side) of a
            relation question on its axis.
        templates (dict, optional): Question templates per task (see
            :data:`DEFAULT_TEMPLATES`).
    """

    def __init__(self,
                 per_image: Optional[Dict[str, int]] = None,
                 seed: int = 0,
                 relation_margin: float = 0.1,
                 templates: Optional[Dict[str, str]] = None) -> None:
        per_image = dict(per_image if per_image is not None else
                         dict(referring=2, grounding=2, relation=1))
        unknown = set(per_image) - set(TASKS)
        if unknown:
            raise ValueError(f'unknown tasks {sorted(unknown)}; choose from {TASKS}')
        if any(int(n) < 0 for n in per_image.values()):
            raise ValueError(f'per_image counts must be >= 0, got {per_image}')
        self.per_image = {t: int(per_image[t]) for t in TASKS if per_image.get(t)}
        self.seed = int(seed)
        self.relation_margin = float(relation_margin)
        self.templates = dict(DEFAULT_TEMPLATES, **(templates or {}))
        for task, template in self.templates.items():
            boxes = template.count(BOX_MARK)
            if boxes != (1 if task == 'referring' else 0):
                raise ValueError(f'the {task} template must hold {BOX_MARK} '
                                 f"{'once' if task == 'referring' else 'nowhere'}: {template!r}")

    def build(self, records: Sequence[RegionRecord]) -> List[Instruction]:
        """Every image's questions, image by image, tasks in :data:`TASKS` order."""
        out = []
        for index, record in enumerate(records):
            for task_id, task in enumerate(TASKS):
                count = self.per_image.get(task, 0)
                if count:
                    rng = np.random.default_rng([self.seed, index, task_id])
                    out.extend(getattr(self, f'_{task}')(index, record, count, rng))
        return out

    # ------------------------------------------------------------------ tasks
    def _parts(self, task: str, phrase: str = '', other: str = '') -> Tuple[str, ...]:
        text = self.templates[task].replace('{phrase}', phrase).replace('{other}', other)
        return tuple(text.split(BOX_MARK))

    def _referring(self, index: int, record: RegionRecord, count: int,
                   rng: np.random.Generator) -> List[Instruction]:
        boxes = record.normalized_boxes()
        picked = rng.permutation(len(boxes))[:count]
        return [Instruction(index, 'referring', self._parts('referring'),
                            (tuple(text_box(boxes[r])), ), record.phrases[r],
                            record.phrases[r], int(r)) for r in picked]

    @staticmethod
    def _single_instance(record: RegionRecord) -> List[int]:
        """Regions whose phrase names no other region of the image."""
        counts: Dict[str, int] = {}
        for p in record.phrases:
            counts[p] = counts.get(p, 0) + 1
        return [r for r, p in enumerate(record.phrases) if counts[p] == 1]

    def _grounding(self, index: int, record: RegionRecord, count: int,
                   rng: np.random.Generator) -> List[Instruction]:
        boxes = record.normalized_boxes()
        eligible = self._single_instance(record)
        picked = [eligible[i] for i in rng.permutation(len(eligible))[:count]]
        return [Instruction(index, 'grounding', self._parts('grounding', record.phrases[r]),
                            (), format_box(boxes[r]), tuple(float(v) for v in boxes[r]), int(r))
                for r in picked]

    def _relation(self, index: int, record: RegionRecord, count: int,
                  rng: np.random.Generator) -> List[Instruction]:
        boxes = record.normalized_boxes()
        eligible = self._single_instance(record)
        pairs = [(a, b, rel) for a in eligible for b in eligible if a != b
                 for rel in [relation_of(boxes[a], boxes[b], self.relation_margin)]
                 if rel is not None]
        picked = [pairs[i] for i in rng.permutation(len(pairs))[:count]]
        return [Instruction(index, 'relation',
                            self._parts('relation', record.phrases[a], record.phrases[b]),
                            (), rel, rel, int(a)) for a, b, rel in picked]
