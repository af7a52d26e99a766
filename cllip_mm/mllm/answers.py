# Copyright (c) cllip_mm contributors. All rights reserved.
"""Reading the MLLM's generations: parse each answer, score it, count what cannot be read.

Per task (:mod:`cllip_mm.mllm.instructions`):

- ``'referring'``: correct when the answer, normalised (NFKC, lowercased, whitespace
  collapsed, trailing ``.`` / ``!`` dropped), equals the region's phrase normalised the
  same way (exact phrase match); malformed when it is empty.
- ``'grounding'``: the first bracketed group of four integers is the answer
  (:func:`cllip_mm.mllm.coords.find_boxes`); correct when its IoU with the ground-truth
  box is at least ``iou_thr`` (0.5: acc@0.5). Malformed: no group at all (``'no box'``),
  or the first group has a value above 999 (``'out of range'``) or x2 < x1 / y2 < y1
  (``'inverted'``).
- ``'relation'``: correct when the normalised answer is the expected word; malformed when
  it is none of ``left`` / ``right`` / ``above`` / ``below``.

Anything that is not a string (None, bytes...) is malformed (``'not text'``). A malformed
answer is wrong and counted, per task and reason; parsing never raises.
"""
import unicodedata
from collections import Counter
from typing import Dict, List, NamedTuple, Optional, Sequence

from .coords import box_iou, find_boxes
from .instructions import RELATIONS, TASKS, Instruction


class ParsedAnswer(NamedTuple):
    """A generation as read for its task.

    Attributes:
        value: The phrase (referring), the normalised xyxy box (grounding), the relation
            word (relation); None when malformed.
        error (str | None): Why the answer is malformed, None when it is not.
    """
    value: object
    error: Optional[str]


def normalize_text(text: str) -> str:
    """NFKC, lowercase, single spaces, no trailing ``.`` / ``!`` or surrounding spaces."""
    text = ' '.join(unicodedata.normalize('NFKC', text).lower().split())
    return text.rstrip('.!').strip()


def parse_answer(task: str, text) -> ParsedAnswer:
    """Read a generation for ``task`` (never raises; see the module docstring)."""
    if task not in TASKS:
        raise ValueError(f'unknown task {task!r}; choose from {TASKS}')
    if not isinstance(text, str):
        return ParsedAnswer(None, 'not text')
    if task == 'grounding':
        found = find_boxes(text)
        if not found:
            return ParsedAnswer(None, 'no box')
        first = found[0]
        return ParsedAnswer(first.box, first.error)
    answer = normalize_text(text)
    if task == 'referring':
        return ParsedAnswer(answer, None) if answer else ParsedAnswer(None, 'empty')
    return ParsedAnswer(answer, None) if answer in RELATIONS else ParsedAnswer(None, 'not a relation')


def is_correct(inst: Instruction, parsed: ParsedAnswer, iou_thr: float = 0.5) -> bool:
    """Whether a parsed answer is right for its instruction (malformed: never)."""
    if parsed.error is not None or parsed.value is None:
        return False
    if inst.task == 'grounding':
        return box_iou(parsed.value, inst.target) >= iou_thr
    return parsed.value == normalize_text(str(inst.target))


class Scores(NamedTuple):
    """What :func:`score_generations` returns.

    Attributes:
        metrics (dict): ``'<task>/acc'`` (``'grounding/acc@0.5'`` for grounding, with
            the threshold used) and ``'<task>/num'`` per task present, and
            ``'<task>/malformed'`` (the fraction of malformed answers).
        malformed (dict): ``{task: {reason: count}}`` of the malformed answers.
        correct (list[bool]): Per instruction.
        parsed (list[ParsedAnswer]): Per instruction.
    """
    metrics: Dict[str, float]
    malformed: Dict[str, Dict[str, int]]
    correct: List[bool]
    parsed: List[ParsedAnswer]


def score_generations(instructions: Sequence[Instruction], generations: Sequence,
                      iou_thr: float = 0.5) -> Scores:
    """Score one generation per instruction (same order)."""
    if len(instructions) != len(generations):
        raise ValueError(f'{len(instructions)} instructions but {len(generations)} generations')
    parsed = [parse_answer(inst.task, text) for inst, text in zip(instructions, generations)]
    correct = [is_correct(inst, p, iou_thr) for inst, p in zip(instructions, parsed)]
    totals: Counter = Counter()
    right: Counter = Counter()
    malformed: Dict[str, Counter] = {}
    for inst, p, ok in zip(instructions, parsed, correct):
        totals[inst.task] += 1
        right[inst.task] += ok
        if p.error is not None:
            malformed.setdefault(inst.task, Counter())[p.error] += 1
    metrics: Dict[str, float] = {}
    for task in TASKS:
        if totals[task]:
            name = f'grounding/acc@{iou_thr:g}' if task == 'grounding' else f'{task}/acc'
            metrics[name] = right[task] / totals[task]
            metrics[f'{task}/malformed'] = sum(malformed.get(task, {}).values()) / totals[task]
            metrics[f'{task}/num'] = totals[task]
    return Scores(metrics, {t: dict(c) for t, c in malformed.items()}, correct, parsed)
