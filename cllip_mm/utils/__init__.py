# Copyright (c) cllip_mm contributors. All rights reserved.
from .checkpoint import checkpoint_safe_globals, register_checkpoint_safe_globals
from .dist import (
                   dist_timeout,
                   exit_promptly_on_distributed_failure,
                   is_peer_failure,
                   setup_cpu_distributed,
                   teardown_distributed,
)
from .setup_env import (
                        add_runner_args,
                        build_runner,
                        load_runner_config,
                        parse_runner_args,
                        register_all_modules,
                        run_with_runner,
)

__all__ = [
    'add_runner_args', 'build_runner', 'checkpoint_safe_globals', 'dist_timeout',
    'exit_promptly_on_distributed_failure', 'is_peer_failure', 'load_runner_config',
    'parse_runner_args', 'register_all_modules', 'register_checkpoint_safe_globals',
    'run_with_runner', 'setup_cpu_distributed', 'teardown_distributed'
]
