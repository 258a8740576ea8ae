"""Scaling past one process with torch.distributed (launched by torchrun; NCCL on GPUs, gloo on CPU).

    init_distributed        join the process group torchrun set up (a no-op in a single process)
    fit_distributed         data-parallel world-model training (DDP) on episode shards
    ShardedWeightedSampler  a weighted sampler sharded over the ranks, with the one-process distribution
    ShardedReplay           LOGO's mixed replay with the synthetic buffer sharded; each rank gets B / W rows
    data_parallel           a learner's gradient steps averaged over the ranks (its grad_hook)
    read_episodes / shard_ranges   which contiguous episodes a rank reads, read by slices (HDF5 stays lazy)
    DistributedFitError     raised on every surviving rank when a peer dies or a collective times out

``logo-fast train`` uses all of these when torchrun starts it. See docs/distributed.md for launching
on one node with N GPUs and on several nodes.
"""

from __future__ import annotations

from .context import DistContext, DistributedFitError, current_context, init_distributed, rank_seed
from .fit import fit_distributed
from .learner import GradientAverager, data_parallel, learner_rank_state, load_learner_rank_state
from .replay import ShardedReplay
from .sampler import ShardedSample, ShardedWeightedSampler
from .shard import read_episodes, shard_ranges

__all__ = [
    "DistContext",
    "DistributedFitError",
    "GradientAverager",
    "ShardedReplay",
    "ShardedSample",
    "ShardedWeightedSampler",
    "current_context",
    "data_parallel",
    "fit_distributed",
    "init_distributed",
    "learner_rank_state",
    "load_learner_rank_state",
    "rank_seed",
    "read_episodes",
    "shard_ranges",
]
