"""Input/target normalisation statistics and data bounds, computed from the training split.

Statistics are streamed over the transitions in chunks with float64 accumulators, so they
cost no memory beyond one chunk. Padded observation features (outside ``obs_mask``) get mean
0 and std 1, so padding stays exactly 0 after normalisation.
"""

from __future__ import annotations

import torch

from .transitions import TransitionTable

# Features whose std is below this are treated as constant (std 1) so they never blow up.
_MIN_STD = 1e-6


class _Moments:
    def __init__(self) -> None:
        self.n = 0
        self.sum: torch.Tensor | None = None
        self.sumsq: torch.Tensor | None = None
        self.lo: torch.Tensor | None = None
        self.hi: torch.Tensor | None = None

    def add(self, x: torch.Tensor) -> None:
        x = x.double()
        s, ss = x.sum(0), (x * x).sum(0)
        lo, hi = x.amin(0), x.amax(0)
        if self.sum is None:
            self.sum, self.sumsq, self.lo, self.hi = s, ss, lo, hi
        else:
            self.sum += s
            self.sumsq += ss
            self.lo = torch.minimum(self.lo, lo)
            self.hi = torch.maximum(self.hi, hi)
        self.n += x.shape[0]

    def reduce(self, all_reduce) -> None:
        """Distributed fit: combine every rank's moments (``all_reduce(t, op)``, op sum/min/max)."""
        if self.sum is None:  # never added to (continuous-only "action" on a discrete task): same on every rank
            return
        self.n = int(all_reduce(torch.tensor([self.n], dtype=torch.float64), "sum")[0])
        self.sum, self.sumsq = all_reduce(self.sum, "sum"), all_reduce(self.sumsq, "sum")
        self.lo, self.hi = all_reduce(self.lo, "min"), all_reduce(self.hi, "max")

    def raw_std(self) -> torch.Tensor:
        mean = self.sum / self.n
        return (self.sumsq / self.n - mean * mean).clamp_min(0.0).sqrt()

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.sum / self.n
        std = self.raw_std()
        std = torch.where(std < _MIN_STD * (1 + mean.abs()), torch.ones_like(std), std)
        return mean.float(), std.float()


def dataset_statistics(table: TransitionTable, obs_mask: torch.Tensor, chunk: int = 65_536,
                       all_reduce=None) -> dict[str, torch.Tensor]:
    """Normalisers and bounds over ``table``'s transitions.

    ``all_reduce`` (distributed fit, ``logo_fast.distributed``): ``all_reduce(t, op) -> t`` over the
    ranks (op "sum"/"min"/"max"); ``table`` is then this rank's shard and every rank gets the
    statistics of the union of the shards. None (the default) changes nothing.

    obs_mask: (N, obs_dim) bool. Returns float32 tensors:
      obs_mean, obs_std, obs_lo, obs_hi           (N, obs_dim)  over obs and next_obs
      dobs_mean, dobs_std                         (N, obs_dim)  of next_obs - obs
      state_mean, state_std, state_lo, state_hi   (S,)          over state and next_state
      dstate_mean, dstate_std                     (S,)          of next_state - state
      reward_mean, reward_std, reward_lo, reward_hi  (1,)
      action_mean, action_std                     continuous only: (N, act_dim)
      obs_live, dobs_live                         (N, obs_dim)  1.0 where obs / its change varies, else 0.0
      state_live, dstate_live                     (S,)          the same for the state
    A feature that never varies is predicted exactly (its mean) and kept out of Gaussian
    likelihoods, where its vanishing variance would otherwise swamp every other feature.
    """
    if len(table) == 0:
        raise ValueError("dataset_statistics: the table has no transitions")
    m = {k: _Moments() for k in ("obs", "dobs", "state", "dstate", "reward", "action")}
    continuous = not table.store.spec.discrete
    for b in table.chunks(chunk):
        m["obs"].add(torch.cat([b["obs"], b["next_obs"]]))
        m["dobs"].add(b["next_obs"] - b["obs"])
        m["state"].add(torch.cat([b["state"], b["next_state"]]))
        m["dstate"].add(b["next_state"] - b["state"])
        m["reward"].add(b["reward"][:, None])
        if continuous:
            m["action"].add(b["actions"])
    if all_reduce is not None:
        for moments in m.values():
            moments.reduce(all_reduce)
    out: dict[str, torch.Tensor] = {}
    keep = obs_mask.float()
    for name in ("obs", "dobs", "state", "dstate", "reward") + (("action",) if continuous else ()):
        mean, std = m[name].mean_std()
        if name in ("obs", "dobs"):
            mean = mean * keep
            std = torch.where(obs_mask, std, torch.ones_like(std))
        if name == "action":
            am = table.store.spec.act_mask()
            if am is not None:
                am = torch.as_tensor(am)
                mean = mean * am
                std = torch.where(am, std, torch.ones_like(std))
        key = "reward" if name == "reward" else name
        out[f"{key}_mean"], out[f"{key}_std"] = mean, std
        if name in ("obs", "state", "reward"):
            out[f"{key}_lo"], out[f"{key}_hi"] = m[name].lo.float(), m[name].hi.float()
        if name in ("obs", "dobs", "state", "dstate"):
            mean = m[name].sum / m[name].n
            live = (m[name].raw_std() >= _MIN_STD * (1 + mean.abs())).float()
            out[f"{name}_live"] = live * keep if name in ("obs", "dobs") else live
    return out
