"""A weighted sampler whose weights are sharded over the ranks, with the single-process distribution.

Rank r holds weights w_r (its shard of, e.g., the synthetic buffer) in a local
``logo_fast.WeightedSampler``. A global batch of n draws, each item i of shard r drawn with
probability ``w_r[i] / sum over all shards``, is made in three moves:

1. one all-gather of every shard's total ``T_r`` (and n, to check that every rank asks for the same);
2. the split ``c = Multinomial(n, T / sum(T))``, drawn on every rank from a generator seeded alike
   on every rank (so every rank gets the same counts with no further message);
3. each rank draws its ``c_r`` locally with ``WeightedSampler.sample`` (its own generator).

Step 2 then 3 is exactly n independent draws from the global distribution, grouped by shard:
P(item i of shard r) = T_r / T * w_r[i] / T_r. The extra cost per batch is one all-gather of
two numbers per rank and a W-category multinomial: independent of the buffer size.

    >>> s = ShardedWeightedSampler(capacity=100_000, seed=0)   # on every rank
    >>> s.extend(local_weights)                                # this rank's rows
    >>> d = s.sample(256)                                      # the same call on every rank
    >>> rows = local_rows[d.indices]                           # d.counts[rank] rows, here
    >>> loss = (per_row_loss(rows) * d.loss_weight).mean()     # DDP's average = the global batch mean
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import torch

from ..sampler import WeightedSampler
from .context import DistContext, current_context, rank_seed

__all__ = ["ShardedSample", "ShardedWeightedSampler"]


@dataclass
class ShardedSample:
    """This rank's part of a global batch drawn by ``ShardedWeightedSampler.sample``."""

    indices: torch.Tensor
    """(counts[rank],) int64 slots of this rank's local sampler."""
    counts: torch.Tensor
    """(world_size,) int64 draws that fell on each rank's shard (the same on every rank; sums to n)."""
    probabilities: torch.Tensor
    """(counts[rank],) float64 global probability of each drawn slot: w[i] / (sum of every shard's total)."""
    loss_weight: float
    """world_size * counts[rank] / n: multiply this rank's mean loss by it so that DDP's average over
    the ranks is the mean over the n rows of the global batch (0 when this rank drew nothing)."""


def _count(n: Any) -> int:
    try:
        if isinstance(n, bool):
            raise TypeError
        n = operator.index(n)
    except TypeError:
        raise ValueError(f"ShardedWeightedSampler.sample: n must be an int >= 0, got {n!r}") from None
    if n < 0:
        raise ValueError(f"ShardedWeightedSampler.sample: n must be an int >= 0, got {n}")
    return n


class ShardedWeightedSampler:
    """This rank's shard of a weighted sampler; ``sample`` draws a global batch across every shard.

    capacity: slots of this rank's ring (``WeightedSampler``); device: where they live.
    seed: the same on every rank; it seeds the shared split generator and (mixed with the rank)
    this rank's own draws. Every rank must call ``sample`` the same number of times with the
    same ``n`` (it is a collective); ``extend``/``update`` are local.
    """

    def __init__(self, capacity: int, seed: int = 0, device: str | torch.device = "cpu",
                 ctx: DistContext | None = None):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"ShardedWeightedSampler: seed must be an int >= 0, got {seed!r}")
        self.local = WeightedSampler(capacity, device=device)
        self.ctx = ctx if ctx is not None else current_context()
        self.seed = seed
        self._split = torch.Generator().manual_seed(seed)  # identical on every rank
        self._own = torch.Generator(device=self.local.device).manual_seed(rank_seed(seed, self.ctx.rank))

    # ---- local writes and sizes ----------------------------------------------------------------
    def extend(self, weights: Any) -> torch.Tensor:
        """Append weights to this rank's shard (see ``WeightedSampler.extend``)."""
        return self.local.extend(weights)

    def update(self, indices: Any, weights: Any) -> None:
        """Change weights of this rank's shard (see ``WeightedSampler.update``)."""
        self.local.update(indices, weights)

    def __len__(self) -> int:
        """Filled slots of this rank's shard."""
        return len(self.local)

    def total(self) -> float:
        """This rank's shard total."""
        return self.local.total()

    # ---- the collective draw -------------------------------------------------------------------
    def sample(self, n: int) -> ShardedSample:
        """Draw a global batch of ``n`` (with replacement); returns this rank's part (see ``ShardedSample``)."""
        return self.draw(n, self.gather_totals(n))

    def gather_totals(self, n: int) -> list[float]:
        """(world_size,) every shard's total weight, in rank order: the one collective of a draw.

        A caller that needs the totals before it draws (e.g. to skip an empty buffer) calls this,
        then ``draw(n, totals)``; ``sample(n)`` is the two in a row. Raises the same ValueError on
        every rank when the ranks ask for different ``n``.
        """
        n = _count(n)
        mine = torch.tensor([self.local.total(), float(n)], dtype=torch.float64)
        gathered = self.ctx.all_gather(mine).tolist()  # (W, 2): the rest is arithmetic on W numbers
        asked = [g[1] for g in gathered]
        if any(a != asked[0] for a in asked):  # computed from the gathered values: every rank raises it
            raise ValueError("ShardedWeightedSampler.sample: bad input:\n  - every rank must ask for the same n; "
                             f"got {[int(a) for a in asked]}")
        return [g[0] for g in gathered]

    def draw(self, n: int, totals: list[float]) -> ShardedSample:
        """This rank's part of a global batch of ``n``, given every shard's total from ``gather_totals(n)``."""
        n = _count(n)
        ctx = self.ctx
        grand = sum(totals)
        if not grand > 0.0:
            raise ValueError("ShardedWeightedSampler.sample: bad input:\n  - every shard is empty or all its "
                             "weights are zero (nothing to sample)")
        W = ctx.world_size
        if n == 0:
            counts = torch.zeros(W, dtype=torch.int64)
        elif W == 1:
            counts = torch.tensor([n], dtype=torch.int64)
        else:
            share = torch.tensor(totals, dtype=torch.float64) / grand
            counts = torch.bincount(torch.multinomial(share, n, replacement=True, generator=self._split), minlength=W)
        c = int(counts[ctx.rank])
        if c == 0:
            idx = torch.empty(0, dtype=torch.int64, device=self.local.device)
            prob = torch.empty(0, dtype=torch.float64, device=self.local.device)
        else:
            idx = self.local.sample(c, replacement=True, generator=self._own)
            prob = self.local.probabilities(idx) * (totals[ctx.rank] / grand)
        return ShardedSample(indices=idx, counts=counts, probabilities=prob,
                             loss_weight=(W * c / n) if n else 0.0)

    # ---- checkpointing -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """This rank's shard and both generators (save one per rank)."""
        return {"version": 1, "rank": self.ctx.rank, "world_size": self.ctx.world_size, "seed": self.seed,
                "local": self.local.state_dict(), "split": self._split.get_state(), "own": self._own.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()`` written by the same rank of a job of the same size."""
        problems = []
        missing = {"version", "rank", "world_size", "seed", "local", "split", "own"} - set(state)
        if missing:
            raise ValueError(f"ShardedWeightedSampler.load_state_dict: bad input:\n  - missing keys {sorted(missing)}")
        if state["version"] != 1:
            problems.append(f"unknown state version {state['version']!r}")
        if (state["rank"], state["world_size"]) != (self.ctx.rank, self.ctx.world_size):
            problems.append(f"written by rank {state['rank']} of {state['world_size']}, loaded by rank "
                            f"{self.ctx.rank} of {self.ctx.world_size}")
        if problems:
            raise ValueError("ShardedWeightedSampler.load_state_dict: bad input:\n  - " + "\n  - ".join(problems))
        self.local.load_state_dict(state["local"])
        self._split.set_state(state["split"])
        self._own.set_state(state["own"])
        self.seed = state["seed"]
