"""The 2-process learner job (gloo, CPU): data-parallel learner steps and the sharded replay's draws.

Run as ``torchrun --standalone --nproc-per-node 2 tests/distributed/_learner_job.py OUT``; each
rank writes ``OUT/learner_rank{r}.pt``. The tests compare it with one process (the functions
below build the same learners and batches there).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

STEPS, BATCH = 4, 16  # global batch; each rank trains on 8 rows of it
# Synthetic shards of the replay test: rank 1 starts empty (its part of a batch then comes
# entirely from rank 0's shard through the exchange), then gets rows of its own.
SHARD_U = {0: [0.0, 0.5, 1.0, 3.0, 0.2], 1: [0.1, 2.5, 0.0, 0.7, 1.5, 0.05, 4.0]}
REPLAY_C, REPLAY_DRAWS, REPLAY_BATCH = 2.0, 300, 32


def spec_and_data(action_type: str):
    from logo_fast.data import make_toy_dataset

    ds = make_toy_dataset(n_agents=2, n_episodes=4, episode_len=6, action_type=action_type, seed=4)
    return ds


def make(kind: str, ds):
    """A tiny learner of ``kind`` (macql_discrete, bc_continuous, macql_continuous) with its normaliser fitted."""
    from logo_fast.learners import (
        BCConfig,
        BCContinuous,
        MACQLContinuous,
        MACQLContinuousConfig,
        MACQLDiscrete,
        MACQLDiscreteConfig,
    )

    if kind == "macql_discrete":
        # grad_clip small enough to act: the clip must see the averaged gradient, as one process does
        learner = MACQLDiscrete(ds.spec, MACQLDiscreteConfig(hidden=16, mixer_embed=4, grad_clip=0.5, seed=2))
    elif kind == "bc_continuous":
        learner = BCContinuous(ds.spec, BCConfig(hidden=16, seed=2), ds.action_low, ds.action_high)
    else:
        learner = MACQLContinuous(ds.spec, MACQLContinuousConfig(hidden=16, n_action_samples=3, seed=2),
                                  ds.action_low, ds.action_high)
    learner.fit_normalizer(torch.as_tensor(ds.obs), torch.as_tensor(ds.state))
    return learner


def rank_batches(ds, world_size: int) -> list[list[dict[str, torch.Tensor]]]:
    """STEPS global batches, each as ``world_size`` parts of BATCH / world_size rows with equal real counts.

    Half of every part is marked synthetic (``source`` 1), so CQL's mean over real rows is exercised;
    the single-process batch is the parts concatenated.
    """
    from logo_fast.replay import UncertaintyWeightedReplay

    replay = UncertaintyWeightedReplay(ds, capacity=4, C=1.0, real_ratio=1.0, seed=9)
    out = []
    for _ in range(STEPS):
        b = replay.sample(BATCH)
        b["source"] = (torch.arange(BATCH) % 2).long()
        m = BATCH // world_size
        out.append([{k: v[r * m : (r + 1) * m] for k, v in b.items()} for r in range(world_size)])
    return out


def train_steps(kind: str, world_size: int, rank: int, ctx=None) -> dict:
    """The learner's state after STEPS updates on this rank's parts (``world_size`` 1: the whole batches)."""
    from logo_fast.distributed import data_parallel

    ds = spec_and_data("discrete" if kind == "macql_discrete" else "continuous")
    learner = make(kind, ds)
    if ctx is not None:
        data_parallel(learner, ctx, seed=0)
    for parts in rank_batches(ds, 2):
        batch = parts[rank] if world_size == 2 else {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        learner.update(batch)
    return learner.state_dict()


def replay_draws(ctx) -> dict:
    """Batches of a 2-rank ShardedReplay whose synthetic rows carry their id (shard * 100 + slot) in ``rewards``."""
    from logo_fast.distributed import ShardedReplay
    from logo_fast.replay import UncertaintyWeightedReplay

    ds = spec_and_data("discrete")
    replay = ShardedReplay(ds, capacity=16, C=REPLAY_C, real_ratio=0.5, seed=5, ctx=ctx)
    template = UncertaintyWeightedReplay(ds, capacity=4, C=1.0, real_ratio=1.0, seed=ctx.rank)  # local draws
    empty = replay.sample(REPLAY_BATCH)  # no synthetic row anywhere yet: every row real

    def add(u):
        k = len(u)
        rows = {f: v for f, v in template.sample(k).items() if f in replay.fields}
        ids = ctx.rank * 100 + replay.n_synthetic + torch.arange(k)
        rows["rewards"] = ids.float()
        rows["obs"] = ids.float().view(k, 1, 1).expand_as(rows["obs"]).clone()  # the id in a second field
        rows["u"] = torch.tensor(u)
        replay.add_synthetic(rows)

    add(SHARD_U[0] if ctx.rank == 0 else [])
    one_sided = [replay.sample(REPLAY_BATCH) for _ in range(20)]
    if ctx.rank == 1:
        add(SHARD_U[1])
    else:
        add([])
    both = [replay.sample(REPLAY_BATCH) for _ in range(REPLAY_DRAWS)]
    state = replay.state_dict()
    again = replay.sample(REPLAY_BATCH)
    replay.load_state_dict(state)
    restored = replay.sample(REPLAY_BATCH)
    return {"empty": empty, "one_sided": one_sided, "both": both,
            "restored_equal": all(torch.equal(again[k], restored[k]) for k in again)}


def main(out: Path) -> None:
    torch.set_num_threads(1)
    from logo_fast.distributed import init_distributed

    ctx = init_distributed(backend="gloo", timeout_s=60)
    assert ctx.world_size == 2, ctx
    res = {kind: train_steps(kind, 2, ctx.rank, ctx) for kind in ("macql_discrete", "bc_continuous",
                                                                   "macql_continuous")}
    res["replay"] = replay_draws(ctx)
    torch.save(res, out / f"learner_rank{ctx.rank}.pt")
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
