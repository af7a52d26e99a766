# Copyright (c) cllip_mm contributors. All rights reserved.
"""Fully sharded data parallel training with torch's FSDP2 (``fully_shard``) under
MMEngine's :class:`~mmengine.runner.FlexibleRunner`."""
import re
import time
from typing import Callable, Dict, List, Optional, Sequence, Union

import mmengine
import torch
import torch.distributed as torch_dist
import torch.nn as nn
from mmengine._strategy import DDPStrategy
from mmengine.device import get_device
from mmengine.dist import is_distributed, is_main_process
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper
from mmengine.utils import get_git_hash
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

from cllip_mm.registry import STRATEGIES

#: What :class:`FullyShardStrategy` shards by default: the transformer blocks of both
#: towers (``image_encoder.transformer.resblocks[i]``, ``text_encoder.transformer.resblocks[i]``).
DEFAULT_SHARD_MODULES = ('ResidualAttentionBlock', )

ShardModules = Union[Sequence[Union[str, type]], Callable[[nn.Module], bool]]


def build_mp_policy(mp_policy: Union[None, dict, MixedPrecisionPolicy]) -> MixedPrecisionPolicy:
    """A :class:`~torch.distributed.fsdp.MixedPrecisionPolicy` from a config dict.

    Args:
        mp_policy (dict | MixedPrecisionPolicy | None): The policy's arguments
            (``param_dtype``, ``reduce_dtype``, ``output_dtype``,
            ``cast_forward_inputs``); dtypes as ``torch.dtype`` or their names
            (``'bfloat16'``). None: float32 throughout (no mixed precision).

    Returns:
        MixedPrecisionPolicy: The policy.
    """
    if mp_policy is None:
        return MixedPrecisionPolicy()
    if isinstance(mp_policy, MixedPrecisionPolicy):
        return mp_policy
    if not isinstance(mp_policy, dict):
        raise TypeError(f'mp_policy must be a dict or MixedPrecisionPolicy, got {type(mp_policy)}')
    kwargs = dict(mp_policy)
    for key in ('param_dtype', 'reduce_dtype', 'output_dtype'):
        value = kwargs.get(key)
        if isinstance(value, str):
            dtype = getattr(torch, value.replace('torch.', ''), None)
            if not isinstance(dtype, torch.dtype):
                raise ValueError(f'mp_policy.{key}: {value!r} is not a torch dtype')
            kwargs[key] = dtype
    return MixedPrecisionPolicy(**kwargs)


def select_shard_modules(model: nn.Module, shard_modules: ShardModules) -> List[str]:
    """Names of the submodules of ``model`` (not ``model`` itself) that get their own
    ``fully_shard`` unit, children before their ancestors.

    Args:
        model (nn.Module): The model.
        shard_modules (sequence | callable): Class names or classes (a module matches
            when its class or a base class does, like FSDP1's ``ModuleWrapPolicy``), or
            ``fn(module) -> bool`` (like ``lambda_auto_wrap_policy``).

    Raises:
        ValueError: A class name or class in ``shard_modules`` matched no submodule
            (a misspelt name would otherwise shard only the root, silently).
    """
    if callable(shard_modules) and not isinstance(shard_modules, type):
        matches = shard_modules
        unused = set()
    else:
        wanted = [shard_modules] if isinstance(shard_modules, (str, type)) else list(shard_modules)
        unused = set(wanted)

        def matches(module: nn.Module) -> bool:
            hits = {w for w in wanted for cls in type(module).__mro__
                    if w is cls or w == cls.__name__}
            unused.difference_update(hits)
            return bool(hits)

    names = [name for name, module in model.named_modules() if name and matches(module)]
    if unused:
        raise ValueError(
            f'FullyShardStrategy: shard_modules {sorted(map(str, unused))} matched no '
            f'submodule of {type(model).__name__}')
    # named_modules() lists a module before its descendants: reversed, every module
    # is sharded after the modules inside it, as fully_shard requires.
    return names[::-1]


def _average_grad(param: nn.Parameter) -> None:
    """Average ``param.grad`` over all processes (in place), as DDP does."""
    torch_dist.all_reduce(param.grad)
    param.grad.div_(torch_dist.get_world_size())


@STRATEGIES.register_module()
class FullyShardStrategy(DDPStrategy):
    """Fully sharded data parallel training with torch's ``fully_shard`` (FSDP2).

    MMEngine's ``FSDPStrategy`` wraps the model in FSDP1's
    ``FullyShardedDataParallel``, which refuses to run without an accelerator
    (``FSDP needs a non-CPU accelerator device``). ``fully_shard`` shards every
    parameter along dim 0 over the processes as a ``DTensor``, all-gathers a unit's
    parameters before its forward (and again before its backward) and
    reduce-scatters (averages) its gradients after; it runs on CPU / gloo as well as
    on GPUs / NCCL. The model keeps its class (``fully_shard`` changes it in place),
    so ``runner.model`` is the model itself, not a wrapper.

    Sharding: ``fully_shard`` is applied to each submodule selected by
    ``shard_modules`` (by default every transformer block of both towers), children
    first, then to the whole model (the root unit holds the rest: embeddings, the
    prompter, the grounding head). ``fully_shard`` cannot shard 0-dim parameters (the
    losses' logit scales): they are left out of FSDP (``ignored_params``), kept whole
    on every process, and their gradients are averaged by an all-reduce in backward.

    Checkpoints are full state dicts, like ``DDPStrategy``'s: every process takes
    part in gathering the shards (the runner's ``save_checkpoint`` runs on all
    ranks), process 0 writes one file, with the model's parameter names and an
    ordinary ``torch.optim`` optimizer state (integer parameter ids). Such a
    checkpoint loads into a single-process model, into ``Runner`` (``load_from`` /
    ``resume``), and back into this strategy with any number of processes; loading
    reads the whole file on every process and keeps each process's shards.

    Args:
        shard_modules (sequence[str | type] | callable): Which submodules become
            their own ``fully_shard`` unit (FSDP's auto-wrap policy): class names or
            classes, or ``fn(module) -> bool``. Defaults to
            :data:`DEFAULT_SHARD_MODULES`. An empty list shards only the root.
        mp_policy (dict | MixedPrecisionPolicy, optional): Mixed precision, e.g.
            ``dict(param_dtype='bfloat16', reduce_dtype='float32')`` (parameters
            all-gathered and computed in bf16, gradients reduced in fp32; the
            sharded parameters and the optimizer state stay fp32). Defaults to None
            (fp32).
        reshard_after_forward (bool | int): Free each unit's gathered parameters
            after its forward (all-gather again in backward: least memory), keep them
            (``False``: no second all-gather), or reshard to a smaller group of this
            size. The root unit keeps its parameters in any case. Defaults to True.
        **kwargs: Arguments of MMEngine's ``DDPStrategy`` (``model_wrapper`` is
            ignored: there is no wrapper).

    Example (a FlexibleRunner config)::

        runner_type = 'FlexibleRunner'
        strategy = dict(type='cllip_mm.FullyShardStrategy',
                        mp_policy=dict(param_dtype='bfloat16', reduce_dtype='float32'))
    """

    def __init__(self,
                 *,
                 shard_modules: ShardModules = DEFAULT_SHARD_MODULES,
                 mp_policy: Union[None, dict, MixedPrecisionPolicy] = None,
                 reshard_after_forward: Union[bool, int] = True,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.shard_modules = shard_modules
        self.mp_policy = build_mp_policy(mp_policy)
        self.reshard_after_forward = reshard_after_forward
        #: id(parameter) -> its name in the model (filled when the model is sharded)
        self._param_names: Dict[int, str] = {}

    # ------------------------------------------------------------------ sharding
    def _wrap_model(self, model: nn.Module) -> nn.Module:
        """Shard ``model`` in place with ``fully_shard`` (selected submodules, then
        the root) and return it.

        Args:
            model (nn.Module): The built (and initialised) model.

        Returns:
            nn.Module: The same model, now an ``FSDPModule`` whose parameters are
            ``DTensor`` shards over all processes.
        """
        if is_model_wrapper(model) or isinstance(model, FSDPModule):
            return model
        if not is_distributed():
            raise RuntimeError('FullyShardStrategy needs a distributed launch '
                               '(tools/train.py --launcher pytorch, or torchrun)')
        if self.model_wrapper is not None:
            self.logger.warning('FullyShardStrategy ignores model_wrapper: fully_shard '
                                'changes the model in place and has no wrapper.')
        device = get_device()
        model = self.convert_model(model.to(device))
        mesh = init_device_mesh(device, (torch_dist.get_world_size(), ))
        # fully_shard cannot shard 0-dim parameters (the losses' logit scales): they
        # stay whole on every process, and their gradients are averaged as DDP would
        scalars = {p for p in model.parameters() if p.dim() == 0}
        for param in scalars:
            if param.requires_grad:
                param.register_post_accumulate_grad_hook(_average_grad)
        kwargs = dict(mesh=mesh, mp_policy=self.mp_policy, ignored_params=scalars)
        names = select_shard_modules(model, self.shard_modules)
        for name in names:
            fully_shard(model.get_submodule(name),
                        reshard_after_forward=self.reshard_after_forward, **kwargs)
        fully_shard(model, **kwargs)
        self.logger.info(f'FullyShardStrategy: {len(names)} fully_shard units + the root, '
                         f'over {mesh.size()} processes ({device}), {len(scalars)} scalar '
                         f'parameters replicated; mp_policy={self.mp_policy}, '
                         f'reshard_after_forward={self.reshard_after_forward}')
        self._param_names = {id(p): name for name, p in model.named_parameters()}
        return model

    # ------------------------------------------------------------------ state dicts
    def _options(self, **kwargs) -> StateDictOptions:
        return StateDictOptions(full_state_dict=True, **kwargs)

    def _optimizer(self) -> torch.optim.Optimizer:
        if not isinstance(self.optim_wrapper, OptimWrapper):
            raise TypeError('FullyShardStrategy supports one OptimWrapper, got '
                            f'{type(self.optim_wrapper).__name__}')
        return self.optim_wrapper.optimizer

    def _group_param_names(self) -> List[List[str]]:
        """The parameter names of each param group of the optimizer, in order."""
        return [[self._param_names[id(p)] for p in group['params']]
                for group in self._optimizer().param_groups]

    def model_state_dict(self) -> dict:
        """The full (unsharded) model state dict on CPU, on process 0 (empty on the
        others). Collective: every process must call it."""
        return get_model_state_dict(self.model, options=self._options(cpu_offload=True))

    def optim_state_dict(self) -> dict:
        """The full optimizer state dict in ``torch.optim``'s own layout (integer
        parameter ids in param-group order), on CPU, on process 0 (empty on the
        others), plus the optim wrapper's own entries (e.g. a loss scaler).
        Collective: every process must call it."""
        full = get_optimizer_state_dict(self.model, self._optimizer(),
                                        options=self._options(cpu_offload=True))
        if not is_main_process():
            return {}
        index: Dict[str, int] = {}
        groups = []
        for group in full['param_groups']:
            groups.append({**group, 'params': [index.setdefault(name, len(index))
                                               for name in group['params']]})
        state_dict = {'state': {index[name]: value for name, value in full['state'].items()},
                      'param_groups': groups}
        # entries an optim wrapper adds to the optimizer's (AmpOptimWrapper: loss_scaler)
        extra = {k: v for k, v in self.optim_wrapper.state_dict().items()
                 if k not in ('state', 'param_groups')}
        return {**state_dict, **extra}

    def load_model_state_dict(self,
                              state_dict: dict,
                              *,
                              strict: bool = False,
                              revise_keys: list = [(r'^module.', '')]) -> None:
        """Load a full model state dict (every process passes the whole of it; each
        keeps its shards).

        Args:
            state_dict (dict): A full state dict, e.g. ``model.state_dict()`` of a
                single-process model or a checkpoint's ``state_dict``.
            strict (bool): Whether keys must match exactly.
            revise_keys (list): ``(pattern, replacement)`` regexes applied to the keys
                (as in MMEngine's ``load_checkpoint``).
        """
        for pattern, replacement in revise_keys:
            state_dict = type(state_dict)(
                (re.sub(pattern, replacement, k), v) for k, v in state_dict.items())
        result = set_model_state_dict(self.model, state_dict,
                                      options=self._options(strict=strict))
        if result.missing_keys or result.unexpected_keys:
            self.logger.warning(f'Loading the model state dict: missing keys '
                                f'{result.missing_keys}, unexpected keys {result.unexpected_keys}')

    def load_optim_state_dict(self, state_dict: dict) -> None:
        """Load a full optimizer state dict in ``torch.optim``'s layout (what
        :meth:`optim_state_dict` and ``Runner`` save) on every process.

        Raises:
            ValueError: Its param groups do not have the sizes of the optimizer's.
        """
        names = self._group_param_names()
        groups = state_dict['param_groups']
        if [len(g['params']) for g in groups] != [len(n) for n in names]:
            raise ValueError(
                'Loading the optimizer state dict: param groups of '
                f'{[len(g["params"]) for g in groups]} parameters, but the optimizer has '
                f'{[len(n) for n in names]}')
        index_to_name = {index: name for group, group_names in zip(groups, names)
                         for index, name in zip(group['params'], group_names)}
        named = {'state': {index_to_name[i]: v for i, v in state_dict['state'].items()},
                 'param_groups': [{**g, 'params': n} for g, n in zip(groups, names)]}
        set_optimizer_state_dict(self.model, self._optimizer(), named, options=self._options())
        # the optim wrapper's own entries, as its load_state_dict restores them
        if 'base_param_settings' in state_dict:  # the logged base LR (several groups)
            self.optim_wrapper.base_param_settings = state_dict['base_param_settings']
        if 'loss_scaler' in state_dict and hasattr(self.optim_wrapper, 'loss_scaler'):
            self.optim_wrapper.loss_scaler.load_state_dict(state_dict['loss_scaler'])

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self,
                        filename: str,
                        *,
                        save_optimizer: bool = True,
                        save_param_scheduler: bool = True,
                        extra_ckpt: Optional[dict] = None,
                        callback: Optional[Callable] = None) -> None:
        """Save a full checkpoint to ``filename`` (the layout of ``DDPStrategy``'s).

        Collective: all processes gather the shards; process 0 runs ``callback``
        (the ``before_save_checkpoint`` hooks, as with DDP) and writes the file.
        Arguments are those of MMEngine's ``BaseStrategy.save_checkpoint``.
        """
        from mmengine.runner.checkpoint import save_checkpoint

        checkpoint = {'state_dict': self.model_state_dict()}
        if save_optimizer and hasattr(self, 'optim_wrapper'):
            checkpoint['optimizer'] = self.optim_state_dict()
        if not is_main_process():
            return
        if save_param_scheduler and hasattr(self, 'param_schedulers'):
            checkpoint['param_schedulers'] = self.scheduler_state_dict()
        extra_ckpt = dict() if extra_ckpt is None else extra_ckpt
        extra_ckpt.setdefault('meta', dict()).update(
            seed=self.seed,
            time=time.strftime('%Y%m%d_%H%M%S', time.localtime()),
            mmengine=mmengine.__version__ + get_git_hash())
        checkpoint.update(extra_ckpt)
        if callback is not None:
            callback(checkpoint)
        save_checkpoint(checkpoint, filename)
