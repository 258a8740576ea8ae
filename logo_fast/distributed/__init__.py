"""Scaling past one process with torch.distributed (launched by torchrun; NCCL on GPUs, gloo on CPU).

    init_distributed        join the process group torchrun set up (a no-op in a single process)
    fit_distributed         data-parallel world-model training (DDP) on episode shards
    ShardedWeightedSampler  a weighted sampler sharded over the ranks, with the one-process distribution
    read_episodes / shard_ranges   which contiguous episodes a rank reads, read by slices (HDF5 stays lazy)
    DistributedFitError     raised on every surviving rank when a peer dies or a collective times out

See docs/distributed.md for launching on one node with N GPUs and on several nodes.
"""

from __future__ import annotations

from .context import DistContext, DistributedFitError, current_context, init_distributed, rank_seed
from .fit import fit_distributed
from .sampler import ShardedSample, ShardedWeightedSampler
from .shard import read_episodes, shard_ranges

__all__ = [
    "DistContext",
    "DistributedFitError",
    "ShardedSample",
    "ShardedWeightedSampler",
    "current_context",
    "fit_distributed",
    "init_distributed",
    "rank_seed",
    "read_episodes",
    "shard_ranges",
]
