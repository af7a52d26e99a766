# Copyright (c) cllip_mm contributors. All rights reserved.
"""``RegionInferencer``: region classification, grounding, region-text heat maps and
embeddings of a CLOC model in one call (MMEngine's ``BaseInferencer``)."""
import os.path as osp
import warnings
from datetime import datetime
from typing import Dict, List, Optional, Sequence

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from mmcv.transforms import BaseTransform
from mmengine.dataset import Compose, pseudo_collate
from mmengine.fileio import dump
from mmengine.infer import BaseInferencer
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData, PixelData

from cllip_mm.models.utils.state_dict import strip_module_prefixes
from cllip_mm.registry import TRANSFORMS, VISUALIZERS
from cllip_mm.structures import RegionTextDataSample, denormalize_boxes
from cllip_mm.utils import register_all_modules
from cllip_mm.visualization import RegionTextVisualizer
from .hf_model import cloc_from_hf_dir, is_hf_dir
from .image_inputs import check_boxes, image_to_results, resolve_image_path, to_bgr_hwc

TASKS = ('embed', 'classify', 'ground', 'similarity')
HEATMAP_MODES = ('prompter', 'patch')
#: Sub-modules whose weights must all be in the checkpoint (when the model has them).
REQUIRED_MODULES = ('image_encoder', 'text_encoder', 'prompter', 'grounding_head')


class ImageInputLoader(BaseTransform):
    """The test pipeline's first step for inferencer inputs: ``img_path`` goes to the
    pipeline's own file loader; an ``img`` already given (BGR HWC, see
    :func:`~cllip_mm.apis.image_inputs.to_bgr_hwc`) is passed on as that loader would
    have loaded it (``to_float32`` honoured)."""

    def __init__(self, file_loader) -> None:
        self.file_loader = file_loader
        self.to_float32 = bool(getattr(file_loader, 'to_float32', False))

    def transform(self, results: dict) -> Optional[dict]:
        if results.get('img') is None:
            return self.file_loader(results)
        img = results['img']
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = results['ori_shape'] = img.shape[:2]
        return results


class RegionInferencer(BaseInferencer):
    """Point a CLOC model at images: name the objects in boxes, find the box of a
    phrase, see where a phrase lives, or get embeddings.

    Build it from a config and a checkpoint (as mmdet's ``DetInferencer``), from a
    checkpoint alone (its config is read from the checkpoint), or from a Hugging Face
    directory written by ``tools/model_converters/cllip_to_hf.py``::

        inferencer = RegionInferencer('configs/cloc/cloc_vit-tiny-p8_1xb64-1200it_synthetic.py',
                                      'work_dirs/demo/cloc/iter_1200.pth', device='cpu')
        inferencer = RegionInferencer('hf_cloc_vit-b16')          # exported HF directory
        inferencer.classify_regions('img.jpg', [[10, 20, 60, 80]], ['red circle', 'blue square'])
        inferencer.ground('img.jpg', ['red circle'])
        inferencer.similarity_map('img.jpg', ['red circle'])
        inferencer.embed(images=['a.jpg', 'b.jpg'], texts=['a red circle'])

    Images are file paths, ``file://`` URLs, directories (every file in them), or
    numpy arrays / tensors in any layout (HWC or CHW, any strides), BGR (default,
    OpenCV's) or RGB (``channel_order='rgb'``); they are preprocessed by the config's
    test pipeline, exactly as ``tools/test.py`` does (its file loader reads paths,
    arrays enter after it). Boxes are xyxy pixels of the original image; every box
    and heat map that comes back is in that frame too.

    Each call runs :meth:`__call__` (MMEngine's preprocess -> forward -> visualize ->
    postprocess) with a ``task``: 'embed', 'classify', 'ground' or 'similarity'.
    ``return_datasamples=True`` gives :class:`RegionTextDataSample` s whose
    ``pred_regions`` (and ``pred_similarity`` for heat maps) hold the results;
    otherwise a dict per image (numpy arrays, lists) is returned. ``img_out_dir``,
    ``show`` or ``return_vis`` draw the results with :class:`RegionTextVisualizer`.

    Args:
        model (str | dict | Config, optional): Config file / object, or the path of an
            exported Hugging Face directory (then ``weights`` must be None).
        weights (str, optional): MMEngine checkpoint. Every weight of the image and
            text encoders, Prompter and grounding head must be in it.
        device (str, optional): 'cpu', 'cuda', 'cuda:1'...; the available one if None.
        scope (str): Registry scope. Defaults to 'cllip_mm'.
        show_progress (bool): Show a progress bar over batches.
    """

    preprocess_kwargs: set = {'boxes', 'texts', 'channel_order', 'layout'}
    forward_kwargs: set = {'task', 'vocabulary', 'templates', 'window', 'heatmap_mode'}
    visualize_kwargs: set = {'return_vis', 'show', 'wait_time', 'draw_pred', 'img_out_dir',
                             'score_thr', 'heatmap_index'}
    postprocess_kwargs: set = {'print_result', 'pred_out_dir', 'no_save_pred'}

    def __init__(self,
                 model=None,
                 weights: Optional[str] = None,
                 device: Optional[str] = None,
                 scope: Optional[str] = 'cllip_mm',
                 show_progress: bool = False) -> None:
        if scope:
            init_default_scope(scope)
        register_all_modules(init_default_scope=False)
        self._hf_state_dict = None
        self._weights_name = weights
        if is_hf_dir(model):
            if weights is not None:
                raise ValueError(f'{model!r} is a Hugging Face directory: it carries its '
                                 f'weights, do not pass weights={weights!r}')
            self._weights_name = model
            model, self._hf_state_dict = cloc_from_hf_dir(model)
        super().__init__(model=model, weights=weights, device=device, scope=scope,
                         show_progress=show_progress)
        self.device = next(self.model.parameters()).device

    # ------------------------------------------------------------------ set-up
    def _load_weights_to_model(self, model, checkpoint, cfg) -> None:
        """Load the checkpoint (or the HF directory's weights); missing encoder,
        Prompter or grounding-head weights are an error, not a random model."""
        if self._hf_state_dict is not None:
            checkpoint = dict(state_dict=self._hf_state_dict)
            self._hf_state_dict = None
        if checkpoint is None:
            warnings.warn('RegionInferencer: no weights given, the model is randomly initialised')
            return
        state_dict = strip_module_prefixes(checkpoint.get('state_dict', checkpoint))
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
        required = [k for k in missing if k.split('.')[0] in REQUIRED_MODULES]
        if required:
            raise KeyError(f'{self._weights_name}: no weights for {len(required)} parameters '
                           f'of the model, e.g. {required[:4]}; is it the checkpoint of this '
                           'config?')
        if unexpected:
            print_log(f'{self._weights_name}: {len(unexpected)} unused keys, e.g. '
                      f'{unexpected[:3]}', logger='current')
        meta = checkpoint.get('meta') or {}
        if meta.get('dataset_meta'):
            model.dataset_meta = meta['dataset_meta']

    def _init_pipeline(self, cfg) -> Compose:
        """The config's test pipeline with its file loader wrapped by
        :class:`ImageInputLoader` and annotation loaders dropped."""
        try:
            steps = list(cfg.test_dataloader.dataset.pipeline)
        except AttributeError:
            steps = list(cfg.get('test_pipeline') or [])
        if not steps:
            raise ValueError('the config has no test pipeline (test_dataloader.dataset.pipeline)')
        loaders = [i for i, s in enumerate(steps) if 'LoadImageFrom' in s['type']]
        if not loaders:
            raise ValueError('the test pipeline has no image loading step (LoadImageFrom...)')
        i = loaders[0]
        built = [TRANSFORMS.build(s) for s in steps[:i]]
        built.append(ImageInputLoader(TRANSFORMS.build(steps[i])))
        built += [TRANSFORMS.build(s) for s in steps[i + 1:] if 'LoadAnnotations' not in s['type']]
        return Compose(built)

    def _init_collate(self, cfg):
        return pseudo_collate

    def _init_visualizer(self, cfg) -> RegionTextVisualizer:
        """The config's visualizer when it is a :class:`RegionTextVisualizer`, else a
        default one."""
        vis_cfg = dict(cfg.get('visualizer') or {})
        vis_type = VISUALIZERS.get(vis_cfg['type']) if 'type' in vis_cfg else None
        if not (isinstance(vis_type, type) and issubclass(vis_type, RegionTextVisualizer)):
            vis_cfg = dict(type='RegionTextVisualizer')
        vis_cfg['name'] = f'region_inferencer-{datetime.now().timestamp()}-{id(self)}'
        return VISUALIZERS.build(vis_cfg)

    # ------------------------------------------------------------------ call
    def _inputs_to_list(self, inputs) -> list:
        if isinstance(inputs, (np.ndarray, torch.Tensor)) and inputs.ndim == 4:
            return list(inputs)
        return super()._inputs_to_list(inputs)

    @staticmethod
    def _per_image(value, n: int, name: str) -> Optional[list]:
        if value is None:
            return None
        if len(value) != n:
            raise ValueError(f'{name}: {len(value)} entries for {n} images (give one per image)')
        return list(value)

    def preprocess(self, inputs: list, batch_size: int = 1, boxes=None, texts=None,
                   channel_order: str = 'bgr', layout: str = 'auto'):
        """Load each input through the test pipeline and collate batches.

        Args:
            inputs (list): Paths, URLs or arrays (see the class docstring).
            batch_size (int): Images per forward pass.
            boxes (list, optional): Per image, [R_i, 4] xyxy pixels of that image.
            texts (list, optional): Per image, the texts to ground or map; or one
                list of str for every image.
            channel_order (str): 'bgr' or 'rgb', for arrays.
            layout (str): 'auto', 'hwc' or 'chw', for arrays.
        """
        n = len(inputs)
        boxes = self._per_image(boxes, n, 'boxes')
        if texts is not None and all(isinstance(t, str) for t in texts):
            texts = [list(texts)] * n
        texts = self._per_image(texts, n, 'texts')

        def load(index: int) -> dict:
            where = f'inputs[{index}]'
            results = image_to_results(inputs[index], channel_order, layout, where)
            if boxes is not None:
                results['gt_bboxes'] = check_boxes(boxes[index], f'boxes[{index}]')
                results['gt_phrases'] = [''] * len(results['gt_bboxes'])
            data = self.pipeline(results)
            if data is None:
                raise ValueError(f'{where}: the test pipeline dropped the image')
            meta = dict(input_index=index, channel_order=channel_order, layout=layout)
            if texts is not None:
                meta['texts'] = tuple(texts[index])
            data['data_samples'].set_metainfo(meta)
            return data

        chunks = self._get_chunk_data(map(load, range(n)), batch_size)
        yield from map(self.collate_fn, chunks)

    @torch.no_grad()
    def forward(self, data: dict, task: str = 'embed', vocabulary: Optional[Sequence[str]] = None,
                templates: Optional[Sequence[str]] = None, window: float = 1.0,
                heatmap_mode: str = 'prompter') -> List[RegionTextDataSample]:
        """Run ``task`` on a collated batch; results go into the data samples."""
        if task not in TASKS:
            raise ValueError(f'task must be one of {TASKS}, got {task!r}')
        data = self.model.data_preprocessor(data, False)
        inputs, samples = data['inputs'], data['data_samples']
        for sample in samples:
            sample.set_metainfo(dict(task=task))
        if task == 'embed':
            self._forward_embed(inputs, samples)
        elif task == 'classify':
            if not vocabulary:
                raise ValueError("task='classify' needs a vocabulary (the names to choose from)")
            self._forward_classify(inputs, samples, list(vocabulary), templates)
        elif task == 'ground':
            self._forward_ground(inputs, samples)
        else:
            if heatmap_mode not in HEATMAP_MODES:
                raise ValueError(f'heatmap_mode must be one of {HEATMAP_MODES}, got {heatmap_mode!r}')
            self._forward_similarity(inputs, samples, window, heatmap_mode)
        return samples

    # ------------------------------------------------------------------ tasks
    def _to_original(self, boxes: torch.Tensor, sample) -> torch.Tensor:
        """[R, 4] xyxy pixels of the network input (== of ``img_shape``) -> xyxy pixels
        of the original image, clipped to it."""
        h, w = sample.ori_shape
        scale_factor = sample.metainfo.get('scale_factor')
        if scale_factor is None:
            ih, iw = sample.img_shape
            scale_factor = (iw / w, ih / h)
        sx, sy = float(scale_factor[0]), float(scale_factor[1])
        out = boxes / boxes.new_tensor([sx, sy, sx, sy])
        out[:, 0::2] = out[:, 0::2].clamp(0, w)
        out[:, 1::2] = out[:, 1::2].clamp(0, h)
        return out

    def _input_boxes(self, sample) -> torch.Tensor:
        if 'gt_regions' not in sample:
            return torch.zeros(0, 4)
        return self._to_original(sample.gt_regions.bboxes.float().clone(), sample)

    def _forward_embed(self, inputs, samples) -> None:
        image_embeds = self.model.embed_images(inputs)
        has_boxes = any('gt_regions' in s and len(s.gt_regions) for s in samples)
        region_embeds = self.model.embed_sample_regions(inputs, samples) if has_boxes else None
        for i, sample in enumerate(samples):
            sample.image_embed = image_embeds[i]
            if region_embeds is not None:
                sample.pred_regions = InstanceData(bboxes=self._input_boxes(sample),
                                                   embeds=region_embeds[i])

    def vocabulary_embeds(self, vocabulary: Sequence[str],
                          templates: Optional[Sequence[str]] = None) -> torch.Tensor:
        """Class embeddings [V, D] of ``vocabulary`` as region phrases
        (``CLOC.class_embeddings`` with the phrase context, cached by the model): each
        name in every template (``'{}'`` marks the name), averaged over templates and
        L2-normalised (CLIP's prompt ensembling). Default template: the model's
        ``vocabulary_template``."""
        return self.model.class_embeddings(
            vocabulary, self.model.phrase_context_length,
            templates or (self.model.vocabulary_template, ))

    def _forward_classify(self, inputs, samples, vocabulary, templates) -> None:
        class_embeds = self.vocabulary_embeds(vocabulary, templates)
        region_embeds = self.model.embed_sample_regions(inputs, samples)
        for sample, embeds in zip(samples, region_embeds):
            similarity, probs = self.model.score_regions(embeds, class_embeds)
            scores, labels = probs.max(-1) if len(embeds) else (probs.new_zeros(0),
                                                                  probs.new_zeros(0, dtype=torch.long))
            sample.set_metainfo(dict(vocabulary=tuple(vocabulary)))
            sample.pred_regions = InstanceData(
                bboxes=self._input_boxes(sample), embeds=embeds, similarity=similarity,
                probs=probs, labels=labels, scores=scores,
                label_names=[vocabulary[int(i)] for i in labels])

    def _sample_texts(self, sample, task: str) -> List[str]:
        texts = sample.metainfo.get('texts')
        if texts is None:
            raise ValueError(f"task='{task}' needs texts (one list for all images or one per image)")
        return list(texts)

    def _forward_ground(self, inputs, samples) -> None:
        texts = [self._sample_texts(s, 'ground') for s in samples]
        grounded = self.model.ground_with_scores(inputs, texts)
        pixels = denormalize_boxes(grounded.boxes, inputs.shape[-2:])
        for i, sample in enumerate(samples):
            n = len(texts[i])
            sample.pred_regions = InstanceData(
                bboxes=self._to_original(pixels[i, :n], sample), scores=grounded.scores[i, :n],
                phrases=texts[i])

    def _forward_similarity(self, inputs, samples, window: float, mode: str) -> None:
        texts = [self._sample_texts(s, 'similarity') for s in samples]
        grids = self.model.similarity_grids(inputs, texts, mode, window)
        patch = self.model.patch_size
        for sample, sample_texts, grid_maps in zip(samples, texts, grids):
            # the grid covers [0, gh * p) x [0, gw * p) of the input; then the image's
            # part of the input (img_shape, top-left) is resized to the original image
            gh, gw = grid_maps.shape[-2:]
            maps = F.interpolate(grid_maps[None], (gh * patch, gw * patch), mode='bilinear',
                                 align_corners=False)
            ih, iw = sample.img_shape
            maps = F.interpolate(maps[..., :ih, :iw], tuple(sample.ori_shape), mode='bilinear',
                                 align_corners=False)[0]
            sample.pred_similarity = PixelData(maps=maps,
                                               metainfo=dict(texts=tuple(sample_texts)))
            sample.similarity_grid = grid_maps

    # ------------------------------------------------------------------ visualize
    def _original_rgb(self, image, sample) -> np.ndarray:
        if isinstance(image, str):
            return mmcv.imread(resolve_image_path(image), channel_order='rgb')
        bgr = to_bgr_hwc(image, sample.metainfo.get('channel_order', 'bgr'),
                         sample.metainfo.get('layout', 'auto'))
        return np.ascontiguousarray(bgr[..., ::-1])

    def visualize(self, inputs: list, preds: List[RegionTextDataSample], return_vis: bool = False,
                  show: bool = False, wait_time: float = 0, draw_pred: bool = True,
                  img_out_dir: str = '', score_thr: float = 0.,
                  heatmap_index: int = 0) -> Optional[List[np.ndarray]]:
        """Draw each prediction on its original image (RGB). Writes
        ``img_out_dir/vis/<name>.png`` when ``img_out_dir`` is set."""
        if not (return_vis or show or img_out_dir):
            return None
        results = []
        for pred in preds:
            index = pred.metainfo['input_index']
            image = inputs[index]
            name = (osp.splitext(osp.basename(image))[0] if isinstance(image, str)
                    else f'{index:08d}')
            out_file = osp.join(img_out_dir, 'vis', f'{name}.png') if img_out_dir else None
            results.append(self.visualizer.add_datasample(
                name, self._original_rgb(image, pred), pred, draw_gt=False, draw_pred=draw_pred,
                show=show, wait_time=wait_time, out_file=out_file, pred_score_thr=score_thr,
                heatmap_index=heatmap_index))
        return results

    # ------------------------------------------------------------------ postprocess
    @staticmethod
    def pred_to_dict(sample: RegionTextDataSample) -> dict:
        """A data sample -> a dict of numpy arrays and lists (see the task methods)."""
        out = dict(img_path=sample.metainfo.get('img_path'), ori_shape=tuple(sample.ori_shape))
        if 'image_embed' in sample:
            out['image_embed'] = sample.image_embed.cpu().numpy()
        if 'pred_regions' in sample:
            pred = sample.pred_regions
            for key in ('bboxes', 'embeds', 'scores', 'labels', 'similarity', 'probs'):
                if key in pred:
                    out[key] = pred.get(key).cpu().numpy()
            for key in ('label_names', 'phrases'):
                if key in pred:
                    out[key] = list(pred.get(key))
        if 'vocabulary' in sample.metainfo and sample.metainfo.get('task') == 'classify':
            out['vocabulary'] = list(sample.vocabulary)
        if 'pred_similarity' in sample:
            out['texts'] = list(sample.pred_similarity.texts)
            out['maps'] = sample.pred_similarity.maps.cpu().numpy()
            out['grid'] = sample.similarity_grid.cpu().numpy()
        return out

    def postprocess(self, preds: List[RegionTextDataSample], visualization=None,
                    return_datasamples: bool = False, print_result: bool = False,
                    pred_out_dir: str = '', no_save_pred: bool = False) -> dict:
        """``dict(predictions=..., visualization=...)``: data samples or dicts; with
        ``pred_out_dir`` each dict is also dumped to ``pred_out_dir/preds/<name>.json``."""
        preds = sorted(preds, key=lambda s: s.metainfo['input_index'])
        dicts = [self.pred_to_dict(p) for p in preds]
        if pred_out_dir and not no_save_pred:
            for p, d in zip(preds, dicts):
                path = p.metainfo.get('img_path')
                name = (osp.splitext(osp.basename(path))[0] if path
                        else f'{p.metainfo["input_index"]:08d}')
                dump(d, osp.join(pred_out_dir, 'preds', f'{name}.json'))
        if print_result:
            print_log(dicts, logger='current')
        return dict(predictions=preds if return_datasamples else dicts,
                    visualization=visualization)

    # ------------------------------------------------------------------ one-line API
    @staticmethod
    def _is_single(images) -> bool:
        return isinstance(images, str) and not osp.isdir(images) or (
            isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim in (2, 3))

    def _run(self, images, task: str, per_image: Dict[str, object], **kwargs):
        single = self._is_single(images)
        if single:
            images = [images]
            per_image = {k: ([v] if v is not None else None) for k, v in per_image.items()}
        per_image = {k: v for k, v in per_image.items() if v is not None}
        preds = self(images, task=task, **per_image, **kwargs)['predictions']
        return preds[0] if single else preds

    def classify_regions(self, images, boxes, vocabulary: Sequence[str],
                         templates: Optional[Sequence[str]] = None, batch_size: int = 1,
                         **kwargs):
        """Name the object in each box (zero-shot, among ``vocabulary``).

        Args:
            images: One image (path, URL, array) or a list of them.
            boxes: For one image [R, 4] xyxy pixels; for a list, one such per image.
            vocabulary (list[str]): The names to choose from.
            templates (list[str], optional): Prompt templates, e.g.
                ``['a photo of a {}.']``; their class embeddings are averaged.
            batch_size (int): Images per forward pass.
            **kwargs: ``channel_order``, ``layout``, drawing options (see
                :meth:`visualize`), ``return_datasamples``.

        Returns:
            dict | list[dict]: Per image ``bboxes`` [R, 4], ``labels`` [R] (index in
            the vocabulary), ``label_names``, ``scores`` [R] (probability of the label),
            ``probs`` / ``similarity`` [R, V] (softmax / cosine), ``embeds`` [R, D].
        """
        return self._run(images, 'classify', dict(boxes=boxes), vocabulary=vocabulary,
                         templates=templates, batch_size=batch_size, **kwargs)

    def ground(self, images, phrases, batch_size: int = 1, **kwargs):
        """The box of each phrase (the grounding head).

        Args:
            images: One image or a list.
            phrases (list[str] | list[list[str]]): Phrases for every image, or one list
                per image.

        Returns:
            dict | list[dict]: Per image ``bboxes`` [P, 4] xyxy pixels of the image,
            ``phrases``, ``scores`` [P] (cosine between each phrase and the Prompter's
            embedding of its predicted box).
        """
        return self._run(images, 'ground', dict(texts=phrases), batch_size=batch_size, **kwargs)

    def similarity_map(self, images, texts, window: float = 1.0, mode: str = 'prompter',
                       batch_size: int = 1, **kwargs):
        """Per-patch heat map of region-text similarity.

        ``mode='prompter'``: the Prompter is queried with one box per patch (centred
        on it, ``window`` patches wide); ``'patch'``: the patch tokens through the image
        projection (MaskCLIP's reading of CLIP). Cosine with each text's phrase embedding.

        Returns:
            dict | list[dict]: Per image ``texts``, ``grid`` [T, h, w] (one value per
            patch of the network input) and ``maps`` [T, H, W] (bilinearly resized to
            the original image).
        """
        return self._run(images, 'similarity', dict(texts=texts), window=window,
                         heatmap_mode=mode, batch_size=batch_size, **kwargs)

    @torch.no_grad()
    def embed(self, images=None, texts: Optional[Sequence[str]] = None,
              phrases: Optional[Sequence[str]] = None, boxes=None, batch_size: int = 1,
              **kwargs) -> dict:
        """L2-normalised embeddings.

        Args:
            images: Images (one or a list), optional.
            texts (list[str], optional): Captions (the text tower's full context).
            phrases (list[str], optional): Region phrases (the phrase context length).
            boxes: Region boxes of the images (as in :meth:`classify_regions`).

        Returns:
            dict: ``image_embeds`` [N, D], ``region_embeds`` (list of [R_i, D], when
            ``boxes``), ``text_embeds`` [T, D], ``phrase_embeds`` [P, D]; numpy.
        """
        out = {}
        if images is not None:
            preds = self._run(images, 'embed', dict(boxes=boxes), batch_size=batch_size, **kwargs)
            preds = [preds] if isinstance(preds, dict) else preds
            out['image_embeds'] = np.stack([p['image_embed'] for p in preds])
            if boxes is not None:
                empty = np.zeros((0, self.model.embed_dim), np.float32)
                out['region_embeds'] = [p.get('embeds', empty) for p in preds]
        if texts is not None:
            out['text_embeds'] = self.model.embed_texts(list(texts)).cpu().numpy()
        if phrases is not None:
            out['phrase_embeds'] = self.model.embed_phrases(list(phrases)).cpu().numpy()
        return out
