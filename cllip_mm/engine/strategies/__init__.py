# Copyright (c) cllip_mm contributors. All rights reserved.
from .fully_shard import (
                          DEFAULT_SHARD_MODULES,
                          FullyShardStrategy,
                          build_mp_policy,
                          select_shard_modules,
)

__all__ = ['DEFAULT_SHARD_MODULES', 'FullyShardStrategy', 'build_mp_policy', 'select_shard_modules']
