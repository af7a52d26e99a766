# Copyright (c) cllip_mm contributors. All rights reserved.
"""Training the region-aware LLaVA with MMEngine's runner.

Why MMEngine's loop and not transformers' ``Trainer``: every model of this project trains
with MMEngine (``tools/train.py``, its configs, hooks, logs, checkpoints and resume), so the
MLLM's runs log and checkpoint like CLOC's, with the same schedulers and seeding
(``randomness``); ``Trainer`` would need ``accelerate``, which the project does not
depend on, and a second set of conventions. What is transformers' stays so: the model is a
``PreTrainedModel`` (``save_pretrained`` / ``from_pretrained``, ``generate``); MMEngine only
sees it through :class:`RegionLlavaTrainer`, a ``BaseModel`` whose ``loss`` is the LM loss
and whose data preprocessor is :class:`~cllip_mm.mllm.data.InstructionDataPreprocessor`.
"""
import os.path as osp
from typing import Optional

import torch
from mmengine.model import BaseModel

from cllip_mm.registry import MODELS
from .data import InstructionDataPreprocessor
from .modeling import RegionLlavaForConditionalGeneration


@MODELS.register_module()
class RegionLlavaTrainer(BaseModel):
    """MMEngine's view of a :class:`RegionLlavaForConditionalGeneration`.

    Args:
        model (RegionLlavaForConditionalGeneration): The model (built, weights loaded).
        data_preprocessor (InstructionDataPreprocessor, optional): Default: from the
            model's config, right padding.
    """

    def __init__(self, model: RegionLlavaForConditionalGeneration,
                 data_preprocessor: Optional[InstructionDataPreprocessor] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor or InstructionDataPreprocessor.from_config(model.config))
        self.mllm = model

    def forward(self, input_ids, attention_mask, pixel_values, labels=None, region_boxes=None,
                region_valid=None, index=None, mode: str = 'loss'):
        if mode == 'loss':
            loss = self.mllm.loss_on(input_ids, attention_mask, labels, pixel_values,
                                     region_boxes, region_valid)
            return dict(loss=loss)
        if mode == 'tensor':
            embeds = self.mllm.embed_inputs(input_ids, pixel_values, region_boxes, region_valid)
            return self.mllm(inputs_embeds=embeds, attention_mask=attention_mask).logits
        raise RuntimeError(f'Invalid mode "{mode}": RegionLlavaTrainer supports loss and tensor '
                           '(generation: RegionLlavaForConditionalGeneration.generate_from)')


def runner_config(work_dir: str,
                  max_iters: int,
                  batch_size: int = 16,
                  lr: float = 1e-3,
                  weight_decay: float = 0.0,
                  warmup_iters: int = 50,
                  seed: int = 0,
                  log_interval: int = 10,
                  num_workers: int = 0) -> dict:
    """The runner's settings (AdamW, linear warm-up then cosine to 1% of ``lr``, gradient
    clipping at 1.0, a checkpoint at the end, fixed seed); the model and the dataset are
    passed as objects by :func:`train_region_llava`."""
    warmup_iters = min(warmup_iters, max(max_iters - 1, 1))
    return dict(
        work_dir=work_dir,
        train_dataloader=dict(
            batch_size=batch_size, num_workers=num_workers,
            persistent_workers=num_workers > 0,
            sampler=dict(type='InfiniteSampler', shuffle=True, seed=seed),
            collate_fn=dict(type='pseudo_collate')),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        optim_wrapper=dict(
            type='OptimWrapper',
            optimizer=dict(type='AdamW', lr=lr, weight_decay=weight_decay, betas=(0.9, 0.98)),
            clip_grad=dict(max_norm=1.0)),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
            dict(type='CosineAnnealingLR', T_max=max(max_iters - warmup_iters, 1),
                 eta_min=lr * 0.01, by_epoch=False, begin=warmup_iters, end=max_iters)],
        default_hooks=dict(
            timer=dict(type='IterTimerHook'),
            logger=dict(type='LoggerHook', interval=log_interval),
            param_scheduler=dict(type='ParamSchedulerHook'),
            checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters,
                            max_keep_ckpts=1),
            sampler_seed=dict(type='DistSamplerSeedHook')),
        randomness=dict(seed=seed),
        log_processor=dict(by_epoch=False, window_size=log_interval),
        default_scope='cllip_mm',
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        launcher='none')


def train_region_llava(model: RegionLlavaForConditionalGeneration,
                       dataset: torch.utils.data.Dataset,
                       work_dir: str,
                       max_iters: int,
                       **kwargs) -> RegionLlavaForConditionalGeneration:
    """Train with MMEngine's runner (settings: :func:`runner_config`, whose keyword
    arguments ``kwargs`` are); returns the trained model (in eval mode). The runner's
    log and last checkpoint are in ``work_dir``."""
    from mmengine.runner import Runner
    cfg = runner_config(work_dir, max_iters, **kwargs)
    cfg['train_dataloader']['dataset'] = dataset
    runner = Runner(model=RegionLlavaTrainer(model), **cfg)
    runner.train()
    return model.eval()


def last_log_dir(work_dir: str) -> Optional[str]:
    """The newest timestamped log directory of a run (MMEngine writes one per run)."""
    import glob
    runs = sorted(d for d in glob.glob(osp.join(work_dir, '2*')) if osp.isdir(d))
    return runs[-1] if runs else None
