"""LOGO's mixed replay with the synthetic buffer sharded over the ranks: ``ShardedReplay``.

Every rank holds the real transitions and its own shard of synthetic rows (the rows it rolled
out). ``sample(B)``, called on every rank with the global batch size B, returns this rank's B / W
rows of one global batch that has the single-process distribution (W ranks):

- real part: n_real = round(B * real_ratio) rows (all B while no rank holds a synthetic row),
  n_real / W per rank, each drawn uniformly from the whole real data with this rank's generator
  (seeded by the seed and the rank): n_real independent uniform draws in all;
- synthetic part: n_syn = B - n_real draws by uncertainty weight across every shard
  (``ShardedWeightedSampler``: one all-gather of the shard totals, the split over the shards
  drawn alike on every rank, each shard's draws made locally). Rank s draws counts[s] rows; in
  rank order they make the global synthetic batch, and one all-to-all of the drawn rows hands
  rank r the r-th slice of n_syn / W rows.

So every rank trains on B / W rows with n_real / W real ones: the means its losses take over
its rows (and over its real rows, for CQL) average over the ranks to the means over the global
batch, which ``data_parallel``'s gradient average needs. B, n_real and n_syn must be divisible by
W (checked, the same error on every rank). Per step: one all-gather of 2 numbers per rank and one
all-to-all of n_syn rows at most, whatever the buffer size.
"""

from __future__ import annotations

from typing import Any

import torch

from ..replay import UncertaintyWeightedReplay
from .context import DistContext, current_context, rank_seed
from .sampler import ShardedWeightedSampler

__all__ = ["ShardedReplay"]


def _overlap(a0: int, a1: int, b0: int, b1: int) -> int:
    return max(0, min(a1, b1) - max(a0, b0))


class ShardedReplay(UncertaintyWeightedReplay):
    """``UncertaintyWeightedReplay`` whose synthetic buffer is this rank's shard (see the module doc).

    Arguments as for ``UncertaintyWeightedReplay`` (``capacity``: this shard's rows; ``seed``: the
    same on every rank), plus ``ctx`` (default: the running process group). ``add_synthetic`` is
    local; ``sample`` is a collective: every rank calls it the same number of times with the same B.
    """

    def __init__(self, real: Any, capacity: int, C: float, real_ratio: float = 0.5, seed: int = 0,
                 device: str | torch.device = "cpu", n_actions: int | None = None, ctx: DistContext | None = None):
        super().__init__(real, capacity, C, real_ratio=real_ratio, seed=seed, device=device, n_actions=n_actions)
        self.ctx = ctx if ctx is not None else current_context()
        self.sharded = ShardedWeightedSampler(capacity, seed=seed, device=self.device, ctx=self.ctx)
        # One weight table: what add_synthetic writes is what the sharded draws read.
        self._sampler = self.sharded.local
        self._generator = torch.Generator().manual_seed(rank_seed(seed + 1, self.ctx.rank))  # this rank's real draws

    def split(self, batch_size: int) -> tuple[int, int]:
        """(real rows, synthetic rows) of a global batch, given that some rank holds synthetic rows."""
        n_real = int(round(batch_size * self.real_ratio))
        return n_real, batch_size - n_real

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        """This rank's batch_size / W rows of a global batch of ``batch_size`` (real rows first).

        Fields as ``UncertaintyWeightedReplay.sample``; ``prob`` of a synthetic row is its global
        probability w_i / (sum over every shard).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise ValueError(f"ShardedReplay.sample: batch_size must be an int >= 0, got {batch_size!r}")
        W = self.ctx.world_size
        totals = self.sharded.gather_totals(batch_size)  # the same on every rank, so are the decisions below
        n_real, n_syn = self.split(batch_size) if sum(totals) > 0 else (batch_size, 0)
        if n_real % W or n_syn % W:
            raise ValueError(f"ShardedReplay.sample: a batch of {batch_size} has {n_real} real and {n_syn} synthetic "
                             f"rows; both must be divisible by the {W} processes (choose batch_size and "
                             "real_ratio accordingly)")
        real_idx = torch.randint(0, self.n_real, (n_real // W,), generator=self._generator).to(self.device)
        out = {k: self._real[k][real_idx] for k in self.fields}
        prob = torch.full((n_real // W,), 1.0 / self.n_real, dtype=torch.float32, device=self.device)
        source = torch.zeros(n_real // W, dtype=torch.int64, device=self.device)
        if n_syn:
            syn, syn_prob = self._synthetic_slice(n_syn, totals)
            out = {k: torch.cat([out[k], syn[k]]) for k in self.fields}
            prob = torch.cat([prob, syn_prob])
            source = torch.cat([source, torch.ones(n_syn // W, dtype=torch.int64, device=self.device)])
        out["source"] = source
        out["prob"] = prob
        return out

    def _synthetic_slice(self, n_syn: int, totals: list[float]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """This rank's n_syn / W rows of the global synthetic draw, and their probabilities (float32)."""
        ctx, W, r = self.ctx, self.ctx.world_size, self.ctx.rank
        d = self.sharded.draw(n_syn, totals)
        counts = d.counts.tolist()
        # The drawn rows of every field packed side by side as float64 (exact for float32, bool and
        # the small integers of discrete actions): one exchange instead of one per field.
        widths = [int(self._real[k][0].numel()) for k in self.fields]
        c = len(d.indices)
        rows = torch.cat([self._synthetic[k][d.indices].reshape(c, w).to(torch.float64)
                          for k, w in zip(self.fields, widths, strict=True)]
                         + [d.probabilities.reshape(c, 1).to(torch.float64)], dim=1)
        m = n_syn // W
        start = [sum(counts[:s]) for s in range(W)]  # shard s's rows are global rows [start[s], start[s] + counts[s])
        send = [_overlap(start[r], start[r] + counts[r], s * m, (s + 1) * m) for s in range(W)]
        receive = [_overlap(start[s], start[s] + counts[s], r * m, (r + 1) * m) for s in range(W)]
        got = ctx.all_to_all(rows, send, receive)
        out, col = {}, 0
        for k, w in zip(self.fields, widths, strict=True):
            like = self._real[k]
            part = got[:, col : col + w].reshape(m, *like.shape[1:])
            out[k] = part != 0 if like.dtype == torch.bool else part.to(like.dtype)
            col += w
        return out, got[:, col].to(torch.float32)

    # ---- checkpointing -------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """This rank's shard (``UncertaintyWeightedReplay.state_dict``) plus the sharded draws' generators."""
        state = super().state_dict()
        state["sharded"] = {"rank": self.ctx.rank, "world_size": self.ctx.world_size,
                            "split": self.sharded._split.get_state(), "own": self.sharded._own.get_state()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()`` written by the same rank of a job of the same size."""
        sharded = state.get("sharded")
        if not isinstance(sharded, dict) or (sharded.get("rank"), sharded.get("world_size")) != (
                self.ctx.rank, self.ctx.world_size):
            where = "a one-process replay" if not isinstance(sharded, dict) else (
                f"rank {sharded.get('rank')} of {sharded.get('world_size')}")
            raise ValueError(f"ShardedReplay.load_state_dict: bad input:\n  - written by {where}, loaded by rank "
                             f"{self.ctx.rank} of {self.ctx.world_size}")
        super().load_state_dict({k: v for k, v in state.items() if k != "sharded"})
        self.sharded._split.set_state(sharded["split"])
        self.sharded._own.set_state(sharded["own"])
