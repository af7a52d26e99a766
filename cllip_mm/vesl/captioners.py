# Copyright (c) cllip_mm contributors. All rights reserved.
"""Captioners: image -> caption (VESL stage 1).

Every captioner is called as ``captioner(images, metas) -> list[str]`` with
``images`` a list of RGB ``PIL.Image`` (EXIF orientation applied) and ``metas`` the
per-image metadata of the input (e.g. the ``KEY.json`` of an img2dataset shard).
"""
import os.path as osp
from typing import List, Optional, Sequence

import torch

from cllip_mm.registry import VESL_STAGES
from .utils import dtype_kwarg, get_device, get_dtype

#: Auto classes tried, in order, for a generic image -> text checkpoint.
_AUTO_CLASSES = ('AutoModelForImageTextToText', 'AutoModelForVision2Seq')


@VESL_STAGES.register_module()
class HFCaptioner:
    """A Hugging Face transformers captioner loaded from a local directory.

    Works with image-to-text checkpoints saved by ``save_pretrained``: BLIP
    (``BlipForConditionalGeneration``), BLIP-2, GIT, and other models of
    ``AutoModelForImageTextToText`` / ``AutoModelForVision2Seq``, with their
    ``AutoProcessor``; and ``VisionEncoderDecoderModel`` checkpoints (e.g. ViT-GPT2),
    with an image processor and a tokenizer in the same directory. Nothing is
    downloaded (``local_files_only=True``). Decoding is greedy by default, so the
    captions are deterministic.

    Args:
        model_path (str): The local checkpoint directory.
        prompt (str, optional): A text prefix (BLIP's conditional captioning, or the
            instruction of a chat-style model); stripped from the output.
        max_new_tokens (int): Maximum caption length in tokens.
        num_beams (int): Beam search width (1 = greedy).
        generate_kwargs (dict, optional): More arguments of ``model.generate``.
        device (str): ``'cpu'``, ``'cuda[:i]'`` or ``'auto'``.
        dtype (str): ``'float32'``, ``'bfloat16'`` or ``'float16'`` of the weights
            and pixel inputs.
    """

    name = 'caption'

    def __init__(self,
                 model_path: str,
                 prompt: Optional[str] = None,
                 max_new_tokens: int = 40,
                 num_beams: int = 1,
                 generate_kwargs: Optional[dict] = None,
                 device: str = 'cpu',
                 dtype: str = 'float32') -> None:
        import transformers
        if not osp.isdir(model_path):
            raise FileNotFoundError(
                f'HFCaptioner: model_path {model_path!r} is not a directory (download the '
                'checkpoint first, see docs/vesl.md)')
        self.device, self.dtype = get_device(device), get_dtype(dtype)
        self.prompt = prompt
        self.generate_kwargs = dict(max_new_tokens=max_new_tokens, num_beams=num_beams,
                                    do_sample=False, **(generate_kwargs or {}))
        config = transformers.AutoConfig.from_pretrained(model_path, local_files_only=True)
        kwargs = dict(local_files_only=True, **dtype_kwarg(self.dtype))
        if config.model_type == 'vision-encoder-decoder':
            self.model = transformers.VisionEncoderDecoderModel.from_pretrained(
                model_path, **kwargs)
            self.image_processor = transformers.AutoImageProcessor.from_pretrained(
                model_path, local_files_only=True)
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                model_path, local_files_only=True)
            self.processor = None
        else:
            self.processor = transformers.AutoProcessor.from_pretrained(
                model_path, local_files_only=True)
            self.model = self._load_auto(transformers, model_path, config, kwargs)
            self.tokenizer = getattr(self.processor, 'tokenizer', self.processor)
        self.model.to(self.device).eval()

    @staticmethod
    def _load_auto(transformers, model_path: str, config, kwargs: dict):
        errors = []
        for name in _AUTO_CLASSES:
            auto = getattr(transformers, name, None)
            if auto is None:
                continue
            try:
                return auto.from_pretrained(model_path, **kwargs)
            except ValueError as e:  # the auto class does not know this model type
                errors.append(f'{name}: {e}')
        raise ValueError(f'HFCaptioner: no image-to-text model class for model_type '
                         f'{config.model_type!r} in {model_path}: ' + ' | '.join(errors))

    @torch.no_grad()
    def __call__(self, images: Sequence, metas: Sequence[dict]) -> List[str]:
        if self.processor is None:
            inputs = dict(pixel_values=self.image_processor(
                images=list(images), return_tensors='pt')['pixel_values'])
        elif self.prompt is None:
            inputs = dict(self.processor(images=list(images), return_tensors='pt'))
        else:
            inputs = dict(self.processor(images=list(images), text=[self.prompt] * len(images),
                                         return_tensors='pt', padding=True))
        inputs = {k: v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device)
                  for k, v in inputs.items()}
        out = self.model.generate(**inputs, **self.generate_kwargs)
        input_ids = inputs.get('input_ids')
        if input_ids is not None and out.shape[1] > input_ids.shape[1] \
                and torch.equal(out[:, :input_ids.shape[1]], input_ids):
            out = out[:, input_ids.shape[1]:]  # decoder-only models echo the prompt
        captions = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        return [self._clean(c) for c in captions]

    def _clean(self, caption: str) -> str:
        caption = ' '.join(caption.split())
        if self.prompt and caption.lower().startswith(self.prompt.lower().strip()):
            caption = caption[len(self.prompt.strip()):].strip()
        return caption


@VESL_STAGES.register_module()
class ExistingCaptions:
    """Keep the captions the input already has (alt-text, human captions).

    The caption is ``meta[key]`` (img2dataset's ``KEY.json`` / ``KEY.txt``, a sidecar
    ``.txt`` of a folder image, or the second column of a file list). Images without
    one get the ``fallback`` captioner's caption, or ``''`` (no phrases, no regions).

    Args:
        key (str): The metadata field holding the caption.
        fallback (dict, optional): Config of a captioner for images without caption.
        device, dtype: Passed to the fallback captioner.
    """

    name = 'caption'

    def __init__(self, key: str = 'caption', fallback: Optional[dict] = None,
                 device: str = 'cpu', dtype: str = 'float32') -> None:
        self.key = key
        self.fallback = None if fallback is None else VESL_STAGES.build(
            fallback, default_args=dict(device=device, dtype=dtype))

    def __call__(self, images: Sequence, metas: Sequence[dict]) -> List[str]:
        captions = []
        for meta in metas:
            value = meta.get(self.key)
            captions.append(' '.join(value.split()) if isinstance(value, str) else '')
        missing = [i for i, c in enumerate(captions) if not c]
        if missing and self.fallback is not None:
            filled = self.fallback([images[i] for i in missing], [metas[i] for i in missing])
            for i, caption in zip(missing, filled):
                captions[i] = caption
        return captions
