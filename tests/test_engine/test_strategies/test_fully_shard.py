"""FullyShardStrategy (torch's ``fully_shard`` under MMEngine's FlexibleRunner) on
2 gloo processes: the training of DDPStrategy, full checkpoints, exact resume.

One spawn (module fixture ``runs``) trains the tiny CLOC three times in the same 2
processes, from the same initial weights and on the same data:

- ``ddp``: FlexibleRunner + MMEngine's ``DDPStrategy`` (the reference), 4 iterations;
- ``fsdp``: FlexibleRunner + ``FullyShardStrategy``, 4 iterations, checkpoints at 2 and 4;
- ``resumed``: FullyShardStrategy resumed from the ``fsdp`` run's iteration-2 checkpoint.

The pipeline is deterministic (the val pipeline) and the LR changes at every
iteration, so that the optimizer and scheduler states matter after resume.
"""
import copy
import os
import os.path as osp
import traceback

import pytest
import torch
from dist_utils import run_in_processes
from mmengine.hooks import Hook
from mmengine.optim import build_optim_wrapper

from cllip_mm.engine.strategies import DEFAULT_SHARD_MODULES, build_mp_policy, select_shard_modules
from cllip_mm.registry import HOOKS, MODELS
from cllip_mm.utils import register_all_modules

MAX_ITERS, CHECKPOINT = 4, 2
MAX_NORM = 0.5


@HOOKS.register_module(force=True)
class RecordFullParamsHook(Hook):
    """Keeps each iteration's losses and, after training, the full parameters
    (gathered through the strategy: collective, so on every process)."""
    priority = 'LOWEST'

    def __init__(self):
        self.losses, self.params = {}, None

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses[runner.iter + 1] = {k: float(v.detach()) for k, v in outputs.items()
                                        if k.startswith('loss')}
        # the gradient norm before clipping (clip_grad is on)
        self.losses[runner.iter + 1]['grad_norm'] = float(
            runner.message_hub.get_scalar('train/grad_norm').current())
        # the LR of each param group and the logged base LR
        self.losses[runner.iter + 1].update(
            {f'{k}_{i}': lr for k, lrs in runner.optim_wrapper.get_lr().items()
             for i, lr in enumerate(lrs)})

    def after_train(self, runner):
        state = runner.strategy.model_state_dict()
        self.params = {k.replace('module.', '', 1): v.clone() for k, v in state.items()}


def train(cfg, work_dir, strategy, load_from=None):
    from mmengine.runner import FlexibleRunner
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = work_dir
    cfg.experiment_name = f'fully_shard_{osp.basename(work_dir)}'
    cfg.visualizer.name = cfg.experiment_name
    cfg.strategy = strategy
    cfg.launcher = 'pytorch'  # the process group exists already: not initialised again
    if load_from is not None:
        cfg.resume, cfg.load_from = True, load_from
    runner = FlexibleRunner.from_cfg(cfg)
    runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, RecordFullParamsHook))
    result = dict(losses=hook.losses, params=hook.params)
    if 'FullyShard' in strategy['type']:
        block = runner.model.image_encoder.transformer.resblocks[0]
        weight = block.mlp.c_fc.weight
        result.update(block_class=type(block).__name__, weight_type=type(weight).__name__,
                      local_rows=weight.to_local().shape[0], rows=weight.shape[0])
    return result


def worker(rank, world_size, cfg, out_dir):
    os.environ['LOCAL_RANK'] = str(rank)  # read by DDPStrategy
    register_all_modules(init_default_scope=False)
    ddp = dict(type='DDPStrategy', model_wrapper=dict(  # no CUDA: device_ids=None
        type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False))
    fsdp = dict(type='cllip_mm.FullyShardStrategy')
    runs = dict(ddp=(ddp, None), fsdp=(fsdp, None),
                resumed=(fsdp, osp.join(out_dir, 'fsdp', f'iter_{CHECKPOINT}.pth')))
    results = {}
    for name, (strategy, load_from) in runs.items():
        try:  # a run that raises fails the tests that need it, not the others
            results[name] = train(cfg, osp.join(out_dir, name), strategy, load_from)
        except Exception:
            results[name] = dict(error=traceback.format_exc())
    torch.save(results, osp.join(out_dir, f'results_rank{rank}.pth'))


@pytest.fixture(scope='module')
def runs(tiny_region_set, tiny_cloc_cfg_factory, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp('fully_shard')
    cfg = tiny_cloc_cfg_factory(tiny_region_set, str(out_dir / 'unused'), max_iters=MAX_ITERS)
    cfg.train_dataloader.dataset.pipeline = copy.deepcopy(cfg.val_dataloader.dataset.pipeline)
    cfg.train_dataloader.batch_size = 4  # 2 processes x 4
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
                                end=MAX_ITERS)]
    # the gradient norm clipping of the paper-scale schedules, low enough to clip here:
    # the total norm must sum the sharded gradients and the replicated scalars
    cfg.optim_wrapper.clip_grad = dict(max_norm=MAX_NORM)
    cfg.default_hooks.checkpoint.update(interval=CHECKPOINT, max_keep_ckpts=3)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [dict(type='RecordFullParamsHook')]
    run_in_processes(worker, args=(cfg, str(out_dir)), tmp_dir=out_dir, collective_timeout=120)
    results = [torch.load(str(out_dir / f'results_rank{r}.pth'), weights_only=False)
               for r in (0, 1)]
    return cfg, out_dir, results


def ok(result, name):
    """The result of run ``name`` on a process; fails the test if the run raised."""
    if 'error' in result[name]:
        pytest.fail(f'the {name} run raised:\n{result[name]["error"]}', pytrace=False)
    return result[name]


def assert_same_params(actual, expected, atol=1e-5):
    assert set(actual) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, rtol=0, atol=atol,
                                   msg=lambda m, n=name: f'{n}: {m}')


@pytest.mark.slow  # over ~30 s on 2 idle cores: out of the fast subset
def test_fully_shard_trains_like_ddp(runs):
    _, out_dir, (rank0, rank1) = runs
    ddp, fsdp = ok(rank0, 'ddp'), ok(rank0, 'fsdp')
    # every transformer block is its own fully_shard unit, its parameters DTensor shards
    assert fsdp['block_class'] == 'FSDPResidualAttentionBlock'
    assert fsdp['weight_type'] == 'DTensor'
    assert fsdp['local_rows'] * 2 == fsdp['rows']
    assert sorted(ddp['losses']) == sorted(fsdp['losses']) == list(range(1, MAX_ITERS + 1))
    assert {'loss', 'loss_clip', 'loss_region', 'loss_ground', 'lr_0', 'base_lr_0',
            'grad_norm'} <= set(ddp['losses'][1])
    assert all(losses['grad_norm'] > MAX_NORM for losses in ddp['losses'].values())  # clipped
    for result in (rank0, rank1):  # each process logs its own losses
        for i, losses in ok(result, 'ddp')['losses'].items():
            assert ok(result, 'fsdp')['losses'][i] == pytest.approx(losses, rel=1e-5, abs=1e-6), i
    # the full parameters (gathered on process 0) equal DDP's after 4 steps ...
    assert_same_params(fsdp['params'], ddp['params'])
    # ... and training moved them: the comparison is not vacuous
    start = torch.load(str(out_dir / 'fsdp' / f'iter_{CHECKPOINT}.pth'), weights_only=False)
    assert any(not torch.allclose(v, fsdp['params'][k]) for k, v in start['state_dict'].items()
               if v.is_floating_point())
    assert rank1['fsdp']['params'] == {}  # process 1 gathers but keeps nothing


@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
def test_checkpoint_is_a_full_single_process_state(runs):
    cfg, out_dir, (rank0, _) = runs
    register_all_modules()
    ok(rank0, 'ddp')
    checkpoint = torch.load(str(out_dir / 'fsdp' / f'iter_{MAX_ITERS}.pth'), weights_only=False)
    reference = torch.load(str(out_dir / 'ddp' / f'iter_{MAX_ITERS}.pth'), weights_only=False)
    assert checkpoint['meta']['iter'] == MAX_ITERS

    # the model: a plain single-process CLOC loads it strictly, with the final parameters
    model = MODELS.build(cfg.model)
    model.load_state_dict(checkpoint['state_dict'], strict=True)
    assert_same_params(dict(model.state_dict()), ok(rank0, 'fsdp')['params'], atol=0)
    # DDPStrategy saves the wrapper's keys ('module.' + name)
    assert_same_params(checkpoint['state_dict'], {k.replace('module.', '', 1): v
                                                  for k, v in reference['state_dict'].items()})

    # the optimizer: torch.optim's layout (integer ids), loadable by the optim wrapper
    # that Runner builds for a plain model, with DDP's moments
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    optim_wrapper.load_state_dict(checkpoint['optimizer'])
    state, ref_state = checkpoint['optimizer']['state'], reference['optimizer']['state']
    assert sorted(state) == sorted(ref_state) == list(range(len(list(model.parameters()))))
    params = [p for group in optim_wrapper.optimizer.param_groups for p in group['params']]
    for i, param in enumerate(params):
        assert state[i]['exp_avg'].shape == param.shape, i
        for key in ('exp_avg', 'exp_avg_sq'):
            torch.testing.assert_close(state[i][key], ref_state[i][key], rtol=1e-4, atol=1e-7)
    assert [g['lr'] for g in checkpoint['optimizer']['param_groups']] == pytest.approx(
        [g['lr'] for g in reference['optimizer']['param_groups']])


@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
def test_resume_continues_like_the_uninterrupted_run(runs):
    _, _, (rank0, rank1) = runs
    for result in (rank0, rank1):
        full, resumed = ok(result, 'fsdp'), ok(result, 'resumed')
        assert sorted(resumed['losses']) == list(range(CHECKPOINT + 1, MAX_ITERS + 1))
        for i, losses in resumed['losses'].items():
            assert losses == pytest.approx(full['losses'][i], rel=1e-5, abs=1e-6), i
    assert_same_params(rank0['resumed']['params'], rank0['fsdp']['params'])


# ---------------------------------------------------------------------- single process
def test_select_shard_modules_picks_the_blocks_of_both_towers(tiny_cloc_cfg_factory,
                                                               tiny_region_set, tmp_path):
    register_all_modules()
    cfg = tiny_cloc_cfg_factory(tiny_region_set, str(tmp_path))
    cfg.model.image_encoder.layers = cfg.model.text_encoder.layers = 2
    model = MODELS.build(cfg.model)
    names = select_shard_modules(model, DEFAULT_SHARD_MODULES)
    assert sorted(names) == [f'{tower}.transformer.resblocks.{i}'
                             for tower in ('image_encoder', 'text_encoder') for i in (0, 1)]
    # a callable selects too; children come before their ancestors
    nested = select_shard_modules(model, lambda m: type(m).__name__ in ('Transformer',
                                                                       'ResidualAttentionBlock'))
    assert nested.index('image_encoder.transformer.resblocks.1') < nested.index(
        'image_encoder.transformer')
    with pytest.raises(ValueError, match=r"\['ResidualAtentionBlock'\] matched no submodule"):
        select_shard_modules(model, ['ResidualAtentionBlock'])
    assert select_shard_modules(model, []) == []


def test_build_mp_policy_from_a_config_dict():
    policy = build_mp_policy(dict(param_dtype='bfloat16', reduce_dtype='torch.float32'))
    assert policy.param_dtype is torch.bfloat16 and policy.reduce_dtype is torch.float32
    assert build_mp_policy(None).param_dtype is None
    with pytest.raises(ValueError, match='mp_policy.param_dtype'):
        build_mp_policy(dict(param_dtype='bfloat17'))


def test_flexible_runner_finds_the_strategy_without_a_default_scope():
    # FlexibleRunner builds its strategy before it sets the default scope
    from mmengine.registry import STRATEGIES

    from cllip_mm.engine.strategies import FullyShardStrategy
    assert STRATEGIES.get('cllip_mm.FullyShardStrategy') is FullyShardStrategy
