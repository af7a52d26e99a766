# Copyright (c) cllip_mm contributors. All rights reserved.
"""Layer-wise learning-rate decay for the CLOC ViT inside any mmdet detector.

mmdet's ``LearningRateDecayOptimizerConstructor`` only knows ConvNeXt (it raises
``NotImplementedError`` for other backbones), so this constructor adds ViT layer decay
on top of MMEngine's ``DefaultOptimWrapperConstructor``: every ``paramwise_cfg`` rule
of the default constructor (``custom_keys``, ``norm_decay_mult``, ...) applies first,
then the learning rate of each parameter of the ViT is multiplied by its layer scale.
"""
import re
from typing import List, Optional

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

#: Parameters of the ViT's input stem (layer 0).
_STEM = ('conv1.', 'class_embedding', 'positional_embedding', 'ln_pre.')
_BLOCK = re.compile(r'^transformer\.resblocks\.(\d+)\.')


def get_vit_layer_id(name: str, num_layers: int, prefix: str = 'backbone.vit.') -> int:
    """Layer id of parameter ``name`` for a ViT with ``num_layers`` blocks.

    The stem (patch embedding, class token, position embedding, ``ln_pre``) is 0,
    block i is i + 1, and everything else, inside the ViT (``ln_post``) or outside it
    (pyramid, neck, heads, language model), is ``num_layers + 1``.
    """
    if not name.startswith(prefix):
        return num_layers + 1
    name = name[len(prefix):]
    if name.startswith(_STEM):
        return 0
    match = _BLOCK.match(name)
    if match:
        return int(match.group(1)) + 1
    return num_layers + 1


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ClocLayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """``DefaultOptimWrapperConstructor`` plus ViT layer-wise LR decay (BEiT / ViTDet).

    A parameter of layer ``i`` (see :func:`get_vit_layer_id`) gets
    ``lr = lr_default_rules * layer_decay_rate ** (num_layers + 1 - i)``: the heads keep
    the base LR, the last block gets ``rate``, the stem ``rate ** (num_layers + 1)``.

    ``paramwise_cfg`` keys, besides those of the default constructor:

    - ``layer_decay_rate`` (float, required): e.g. 0.7 for ViT-B in ViTDet.
    - ``vit_prefix`` (str): name prefix of the ViT's parameters in the model,
      ``'backbone.vit.'`` for :class:`ClocViT` in a detector.
    - ``num_layers`` (int, optional): number of ViT blocks; counted from the
      parameter names when omitted.

    Example::

        optim_wrapper = dict(
            type='OptimWrapper',
            constructor='ClocLayerDecayOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.1),
            paramwise_cfg=dict(layer_decay_rate=0.7, custom_keys={
                'positional_embedding': dict(decay_mult=0.),
                'class_embedding': dict(decay_mult=0.)}))
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        paramwise_cfg = dict(paramwise_cfg or {})
        if 'layer_decay_rate' not in paramwise_cfg:
            raise ValueError(f'{type(self).__name__}: paramwise_cfg needs `layer_decay_rate`')
        self.layer_decay_rate = float(paramwise_cfg.pop('layer_decay_rate'))
        if not 0 < self.layer_decay_rate <= 1:
            raise ValueError(f'layer_decay_rate must be in (0, 1], got {self.layer_decay_rate}')
        self.vit_prefix = paramwise_cfg.pop('vit_prefix', 'backbone.vit.')
        self.num_layers = paramwise_cfg.pop('num_layers', None)
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        # Keep add_params active even when no default rule is given.
        self.paramwise_cfg.setdefault('custom_keys', {})

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   is_dcn_module=None) -> None:
        super().add_params(params, module, prefix, is_dcn_module)
        if prefix:  # recursive call of the default constructor
            return
        names = {id(p): n for n, p in module.named_parameters()}
        num_layers = self.num_layers
        if num_layers is None:
            # ids for a depth above any ViT's: blocks are 1..depth, the rest 0 or above it
            depth_bound = 10**9
            ids = [get_vit_layer_id(n, depth_bound, self.vit_prefix) for n in names.values()]
            blocks = [i for i in ids if 0 < i <= depth_bound]
            if not blocks:
                raise ValueError(f'{type(self).__name__}: no parameter named '
                                 f'{self.vit_prefix}transformer.resblocks.* in the model; '
                                 'set paramwise_cfg.vit_prefix')
            num_layers = max(blocks)
        for group in params:
            name = names[id(group['params'][0])]
            layer_id = get_vit_layer_id(name, num_layers, self.vit_prefix)
            scale = self.layer_decay_rate**(num_layers + 1 - layer_id)
            group['lr'] = group.get('lr', self.base_lr) * scale
            group['lr_scale'] = scale
        print_log(f'{type(self).__name__}: layer-wise LR decay {self.layer_decay_rate} over '
                  f'{num_layers} blocks of {self.vit_prefix!r} (stem scale '
                  f'{self.layer_decay_rate**(num_layers + 1):.3g})', logger='current')
