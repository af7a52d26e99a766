# Copyright (c) cllip_mm contributors. All rights reserved.
"""ODVG records (mmdet's grounding-data format) to and from cllip_mm records.

ODVG is the JSON Lines format of MM-Grounding-DINO (mmdet
``configs/mm_grounding_dino/usage.md``, read by ``mmdet.datasets.ODVGDataset``). A line
is either a **grounding** record::

    {"filename": "images/1.jpg", "height": 480, "width": 640,
     "grounding": {"caption": "a woman holds a blue umbrella",
                   "regions": [{"bbox": [10, 20, 200, 470],       # one box ...
                                "phrase": "a woman", "tokens_positive": [[0, 7]]},
                               {"bbox": [[...], [...]],            # ... or a list of boxes
                                "phrase": "a blue umbrella", "tokens_positive": [[14, 29]]}]}}

or a **detection** record, whose ``label`` indexes a label map file
(``{"0": "person", "1": "bicycle", ...}``)::

    {"filename": "000000000139.jpg", "height": 426, "width": 640,
     "detection": {"instances": [{"bbox": [236.98, 142.51, 261.68, 212.01],
                                  "label": 58, "category": "potted plant"}]}}

Boxes are xyxy pixels of the image (the frame of cllip_mm's own format).
:class:`ODVGRecordConverter` turns each record into a record of cllip_mm's JSON Lines
format (``image``, ``width``, ``height``, ``caption``, ``regions``), which the record
checks (:class:`~cllip_mm.datasets.records.RecordParser`, used by
:class:`~cllip_mm.datasets.RegionTextDataset` and the shard stream) then validate like
region-text records; every region carries ``_field`` (e.g. ``grounding.regions[2]``)
so that errors name the ODVG field. A grounding region with ``k`` boxes becomes ``k`` regions with the same phrase; a
list phrase (mmdet's GoldG converter writes one for non-contiguous tokens) is joined
with spaces; a missing phrase is read from ``tokens_positive``.

Detection records have no caption; the **caption policy** (``caption_policy`` of the
dataset, see :data:`DEFAULT_CAPTION_POLICY`) makes one: the captions of the image in a
COCO-style captions file (``images[].file_name`` / ``annotations[].image_id`` and
``caption``) if one is given and lists the image, else a template over the image's
distinct categories in order of first appearance ("a photo of person, dog and frisbee.").
"""
import os.path as osp
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence

from mmengine.fileio import load

from .records import BadRecordError, Line, is_finite_number, record_image, where

#: The caption policy of detection records (all keys optional, see ``make_caption``).
#: ``captions_file``: a COCO-style captions JSON (relative to ``data_root``), or None.
#: ``select``: ``'first'`` caption of the image or ``'join'`` them all with
#: ``caption_sep``. ``template``: a ``str.format`` pattern with ``{}`` for the
#: categories, used when the image has no caption; the categories are joined with
#: ``category_sep`` and the last two with ``last_sep``.
DEFAULT_CAPTION_POLICY = dict(
    captions_file=None, select='first', caption_sep=' ',
    template='a photo of {}.', category_sep=', ', last_sep=' and ')


def is_odvg_record(raw: Any) -> bool:
    """Whether a parsed JSON line is an ODVG record (the format is decided per file by
    its first record)."""
    return isinstance(raw, dict) and 'filename' in raw and (
        'grounding' in raw or 'detection' in raw)


def load_label_map(path: str, backend_args: Optional[dict] = None) -> Dict[int, str]:
    """Read an ODVG label map (``{"0": "person", ...}``) as ``{0: 'person', ...}``."""
    raw = load(path, file_format='json', backend_args=backend_args)
    if not isinstance(raw, dict):
        raise ValueError(f'{path}: an ODVG label map is a JSON object '
                         f'{{"label": "name"}}, got {type(raw).__name__}')
    label_map = {}
    for key, name in raw.items():
        try:
            label = int(key)
        except ValueError:
            raise ValueError(f'{path}: key {key!r} is not an integer label') from None
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f'{path}: label {key} has no category name ({name!r})')
        label_map[label] = name.strip()
    return label_map


def load_coco_captions(path: str, backend_args: Optional[dict] = None
                       ) -> Dict[str, List[str]]:
    """Captions per image file name from a COCO captions file (``captions_*.json``).

    Keys are the ``file_name`` of ``images[]`` and its basename, so that ODVG
    ``filename`` values with or without a folder (``train2017/x.jpg``) both match.
    """
    raw = load(path, file_format='json', backend_args=backend_args)
    try:
        names = {img['id']: img['file_name'] for img in raw['images']}
        captions: Dict[str, List[str]] = {}
        for ann in raw['annotations']:
            name = names[ann['image_id']]
            for key in {name, osp.basename(name)}:
                captions.setdefault(key, []).append(ann['caption'].strip())
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f'{path}: not a COCO captions file (images[].id/file_name, '
                         f'annotations[].image_id/caption): {e!r}') from None
    return captions


def build_odvg_converter(label_map_file: Optional[str] = None,
                         caption_policy: Optional[dict] = None,
                         data_root: Optional[str] = None,
                         backend_args: Optional[dict] = None) -> 'ODVGRecordConverter':
    """The converter of a dataset's ODVG records, its files read (relative paths are
    relative to ``data_root``): the label map ``label_map_file`` and the captions file
    ``caption_policy['captions_file']``."""

    def resolve(path):
        return path if osp.isabs(path) else osp.join(data_root or '', path)

    label_map = None if label_map_file is None else load_label_map(
        resolve(label_map_file), backend_args)
    captions_file = (caption_policy or {}).get('captions_file')
    captions = None if captions_file is None else load_coco_captions(
        resolve(captions_file), backend_args)
    return ODVGRecordConverter('', label_map, caption_policy, captions)


class ODVGRecordConverter:
    """Validate an ODVG record and convert it to a cllip_mm record.

    Args:
        ann_file (str): The annotation file named in messages, unless :meth:`convert`
            is given another ``source``.
        label_map (dict[int, str], optional): The label map of detection records. Without
            it, a detection instance needs ``category``.
        caption_policy (dict, optional): Overrides of :data:`DEFAULT_CAPTION_POLICY`.
        captions (dict[str, list[str]], optional): Captions per file name (read from
            ``caption_policy['captions_file']`` by the dataset).
    """

    def __init__(self,
                 ann_file: str,
                 label_map: Optional[Dict[int, str]] = None,
                 caption_policy: Optional[dict] = None,
                 captions: Optional[Dict[str, List[str]]] = None) -> None:
        policy = dict(DEFAULT_CAPTION_POLICY)
        unknown = set(caption_policy or {}) - set(policy)
        if unknown:
            raise ValueError(f'caption_policy: unknown keys {sorted(unknown)}; '
                             f'known: {sorted(policy)}')
        policy.update(caption_policy or {})
        if policy['select'] not in ('first', 'join'):
            raise ValueError(f"caption_policy['select'] must be 'first' or 'join', got "
                             f"{policy['select']!r}")
        if '{}' not in policy['template']:
            raise ValueError(f"caption_policy['template'] needs a '{{}}' for the "
                             f"categories, got {policy['template']!r}")
        self.ann_file = ann_file
        self.label_map = label_map
        self.policy = policy
        self.captions = captions or {}

    # ------------------------------------------------------------------ records
    def convert(self, raw: Any, line_no: Line,
                on_region_error: Callable[[BadRecordError], None],
                source: Optional[str] = None) -> dict:
        """Return the cllip_mm record of ODVG record ``raw`` (line ``line_no`` of
        ``source``, default :attr:`ann_file`; in a shard, the sample key).

        Record-level problems raise :class:`BadRecordError`; region-level ones are
        passed to ``on_region_error`` (which raises or counts) and the region dropped.
        ``width`` / ``height`` and the boxes' geometry are left to the record checks.
        """
        at = partial(where, self.ann_file if source is None else source, line_no)
        image = record_image(raw, at, 'filename')
        record = {k: raw[k] for k in ('width', 'height') if k in raw}
        record['image'] = image
        if 'grounding' in raw:
            record.update(self._grounding(raw['grounding'], at, image, on_region_error))
        elif 'detection' in raw:
            record.update(self._detection(raw['detection'], at, image, on_region_error))
        else:
            raise BadRecordError(
                f'{at("grounding", image)}: missing (an ODVG record has `grounding` or '
                '`detection`)', 'missing field')
        return record

    def _grounding(self, ann: Any, at: Callable[..., str], image: str,
                   on_region_error: Callable) -> dict:
        self._check_dict(ann, 'grounding', at, image)
        caption = ann.get('caption')
        if not isinstance(caption, str):
            raise self._error(at, 'grounding.caption', image,
                              f'expected a string, got {caption!r}', caption)
        regions_in = ann.get('regions')
        if not isinstance(regions_in, list):
            raise self._error(at, 'grounding.regions', image,
                              f'expected a list, got {regions_in!r}', regions_in)
        regions = []
        for i, region in enumerate(regions_in):
            field = f'grounding.regions[{i}]'
            try:
                phrase, boxes = self._grounding_region(region, caption, at, image,
                                                       field)
            except BadRecordError as e:
                on_region_error(e)
                continue
            score = region.get('score', 1.0)
            regions += [dict(bbox=box, phrase=phrase, score=score, _field=field)
                        for box in boxes]
        return dict(caption=caption, regions=regions)

    def _grounding_region(self, region: Any, caption: str, at: Callable[..., str],
                          image: str, field: str):
        if not isinstance(region, dict):
            raise self._region_error(at, field, image,
                                     f'expected a JSON object, got {region!r}',
                                     'wrong type')
        if 'bbox' not in region:
            raise self._region_error(at, field + '.bbox', image, 'missing',
                                     'missing field')
        bbox = region['bbox']
        # one box [x1, y1, x2, y2] or a list of boxes
        boxes = bbox if isinstance(bbox, list) and bbox and all(
            isinstance(b, list) for b in bbox) else [bbox]
        spans = region.get('tokens_positive')
        if spans is not None and not _valid_spans(spans, len(caption)):
            raise self._region_error(
                at, field + '.tokens_positive', image,
                f'expected a list of [start, end] character spans of the caption '
                f'(0 <= start < end <= {len(caption)}), got {spans!r}',
                'bad tokens_positive')
        phrase = region.get('phrase')
        if phrase is None and spans:
            phrase = ' '.join(caption[int(s):int(e)] for s, e in spans)
        elif phrase is None:
            raise self._region_error(at, field + '.phrase', image,
                                     'missing (and no tokens_positive)', 'missing field')
        if isinstance(phrase, list) and phrase and all(isinstance(p, str) for p in phrase):
            phrase = ' '.join(p.strip() for p in phrase)
        if not isinstance(phrase, str):
            raise self._region_error(at, field + '.phrase', image,
                                     f'expected a string or a list of strings, got '
                                     f'{phrase!r}', 'wrong type')
        return phrase, boxes

    def _detection(self, ann: Any, at: Callable[..., str], image: str,
                   on_region_error: Callable) -> dict:
        self._check_dict(ann, 'detection', at, image)
        instances = ann.get('instances', [])
        if not isinstance(instances, list):
            raise self._error(at, 'detection.instances', image,
                              f'expected a list, got {instances!r}', instances)
        regions, categories = [], []
        for i, inst in enumerate(instances):
            field = f'detection.instances[{i}]'
            try:
                name = self._category(inst, at, image, field)
            except BadRecordError as e:
                on_region_error(e)
                continue
            regions.append(dict(bbox=inst.get('bbox'), phrase=name,
                                score=inst.get('score', 1.0), _field=field))
            if name not in categories:
                categories.append(name)
        return dict(caption=self.make_caption(image, categories), regions=regions)

    def _category(self, inst: Any, at: Callable[..., str], image: str, field: str) -> str:
        if not isinstance(inst, dict):
            raise self._region_error(at, field, image,
                                     f'expected a JSON object, got {inst!r}', 'wrong type')
        if 'bbox' not in inst:
            raise self._region_error(at, field + '.bbox', image, 'missing',
                                     'missing field')
        if self.label_map is not None:
            label = inst.get('label')
            if label is None:
                raise self._region_error(at, field + '.label', image, 'missing',
                                         'missing field')
            if not (is_finite_number(label) and float(label).is_integer()):
                raise self._region_error(at, field + '.label', image,
                                         f'expected an integer, got {label!r}',
                                         'wrong type')
            if int(label) not in self.label_map:
                raise self._region_error(at, field + '.label', image,
                                         f'label {label} is not in the label map',
                                         'unknown label')
            return self.label_map[int(label)]
        name = inst.get('category')
        if name is None:
            raise self._region_error(
                at, field + '.category', image,
                'missing (give the dataset a label_map_file to name labels)',
                'missing field')
        if not isinstance(name, str) or not name.strip():
            raise self._region_error(at, field + '.category', image,
                                     f'expected a non-empty string, got {name!r}',
                                     'wrong type' if not isinstance(name, str)
                                     else 'empty phrase')
        return name.strip()

    def make_caption(self, image: str, categories: Sequence[str]) -> str:
        """The caption of a detection record: its captions from the captions file (if
        any, by file name then basename), else the template over ``categories``."""
        p = self.policy
        captions = self.captions.get(image) or self.captions.get(osp.basename(image))
        if captions:
            return captions[0] if p['select'] == 'first' else p['caption_sep'].join(captions)
        cats = list(categories)
        if len(cats) > 1:
            cats = [p['category_sep'].join(cats[:-1]) + p['last_sep'] + cats[-1]]
        return p['template'].format(cats[0] if cats else '').strip()

    # ------------------------------------------------------------------ errors
    @staticmethod
    def _error(at, field, image, msg, value) -> BadRecordError:
        return BadRecordError(f'{at(field, image)}: {msg}',
                              'missing field' if value is None else 'wrong type')

    @staticmethod
    def _region_error(at, field, image, msg, reason) -> BadRecordError:
        return BadRecordError(f'{at(field, image)}: {msg}', reason, 'region')

    def _check_dict(self, ann, field, at, image):
        if not isinstance(ann, dict):
            raise self._error(at, field, image, f'expected a JSON object, got {ann!r}', ann)


def _valid_spans(spans: Any, length: int) -> bool:
    return isinstance(spans, list) and all(
        isinstance(s, list) and len(s) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in s)
        and 0 <= s[0] < s[1] <= length for s in spans)

