"""Every valid transition of an ``OfflineDataset`` as tensors, gathered one minibatch at a time.

Memory: the step arrays are held once (observations and the episodes' final observations
share one tensor, ``obs[T + e]`` being episode e's final observation), and a transition is two
row indices into them. Nothing per-transition is materialised beyond that: one-hot actions,
next observations and targets are built per minibatch, so a 1e6-step dataset costs about
the size of its arrays. Train and holdout tables over one dataset share the same tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data.schema import OfflineDataset


def _as_numpy(a: Any, dtype) -> np.ndarray:
    """Read an array-like (numpy or h5py dataset) into a contiguous numpy array of ``dtype``."""
    if hasattr(a, "id") and hasattr(a, "shape"):  # h5py dataset: read it in one go
        a = a[()]
    return np.ascontiguousarray(np.asarray(a), dtype=dtype)


def holdout_episodes(n_episodes: int, fraction: float, seed: int) -> np.ndarray:
    """Episode indices held out by ``OfflineDataset.split_episodes(fraction, seed)`` (same rule, same episodes)."""
    perm = np.random.default_rng(seed).permutation(n_episodes)
    n_hold = min(n_episodes - 1, max(1, int(round(n_episodes * fraction))))
    return np.sort(perm[:n_hold])


class TransitionStore:
    """The dataset's arrays as CPU tensors plus, per step, the row of its next observation.

    obs:        (T + E', N, obs_dim) float32   steps, then each episode's final obs (if recorded)
    state:      (T + E', state_dim) float32
    avail:      (T + E', N, n_actions) bool    discrete only
    actions:    (T, N) int64 or (T, N, act_dim) float32
    rewards:    (T,) float32;  terminals: (T,) bool
    next_row:   (T,) int64 row of step t's next observation (-1 where there is none)
    episode:    (T,) int64 episode index of every step
    """

    def __init__(self, ds: OfflineDataset):
        spec = ds.spec
        T = len(ds)
        valid, next_step, final_episode = ds.next_index()
        obs = _as_numpy(ds.obs, np.float32)
        state = _as_numpy(ds.state, np.float32)
        has_final = ds.final_obs is not None and ds.final_state is not None
        if has_final:
            obs = np.concatenate([obs, _as_numpy(ds.final_obs, np.float32)])
            state = np.concatenate([state, _as_numpy(ds.final_state, np.float32)])
        self.obs = torch.from_numpy(obs)
        self.state = torch.from_numpy(state)
        self.avail: torch.Tensor | None = None
        if spec.discrete:
            if ds.avail_actions is not None:
                avail = _as_numpy(ds.avail_actions, bool)
            else:
                avail = np.ones((T, spec.n_agents, spec.n_actions), dtype=bool)
            if has_final:
                fa = ds.final_avail
                final = _as_numpy(fa, bool) if fa is not None else np.ones((obs.shape[0] - T, *avail.shape[1:]), bool)
                avail = np.concatenate([avail, final])
            self.avail = torch.from_numpy(avail)
            self.actions = torch.from_numpy(_as_numpy(ds.actions, np.int64))
        else:
            self.actions = torch.from_numpy(_as_numpy(ds.actions, np.float32))
        self.rewards = torch.from_numpy(_as_numpy(ds.rewards, np.float32))
        self.terminals = torch.from_numpy(_as_numpy(ds.terminals, bool))
        next_row = np.where(next_step >= 0, next_step, np.where(final_episode >= 0, T + final_episode, -1))
        self.next_row = torch.from_numpy(np.where(valid, next_row, -1).astype(np.int64))
        self.episode = torch.from_numpy((np.cumsum(ds.episode_ends()) - ds.episode_ends()).astype(np.int64))
        self.n_episodes = ds.n_episodes
        self.spec = spec

    def rows_of_episodes(self, episodes: np.ndarray | None) -> torch.Tensor:
        """(K,) int64: the steps with a next observation that belong to ``episodes`` (all when None)."""
        ok = self.next_row >= 0
        if episodes is not None:
            member = torch.zeros(self.n_episodes, dtype=torch.bool)
            member[torch.as_tensor(np.asarray(episodes, dtype=np.int64))] = True
            ok &= member[self.episode]
        return torch.nonzero(ok).flatten()

    def gather(self, steps: torch.Tensor) -> dict[str, torch.Tensor]:
        """One minibatch of transitions for step indices ``steps`` (K,), all with a next obs.

        Returns obs (K, N, obs_dim), state (K, S), actions, reward (K,), terminal (K,) bool,
        next_obs, next_state and, for discrete tasks, avail and next_avail (K, N, n_actions).
        """
        nxt = self.next_row[steps]
        batch = {
            "obs": self.obs[steps],
            "state": self.state[steps],
            "actions": self.actions[steps],
            "reward": self.rewards[steps],
            "terminal": self.terminals[steps],
            "next_obs": self.obs[nxt],
            "next_state": self.state[nxt],
        }
        if self.avail is not None:
            batch["avail"] = self.avail[steps]
            batch["next_avail"] = self.avail[nxt]
        return batch


class TransitionTable:
    """A subset of a ``TransitionStore``'s transitions (e.g. the training episodes)."""

    def __init__(self, store: TransitionStore, episodes: np.ndarray | None = None):
        self.store = store
        self.rows = store.rows_of_episodes(episodes)

    def __len__(self) -> int:
        return int(self.rows.numel())

    def batch(self, positions: torch.Tensor, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Transitions at ``positions`` (indices into this table), moved to ``device``."""
        b = self.store.gather(self.rows[positions])
        return {k: v.to(device, non_blocking=True) for k, v in b.items()}

    def chunks(self, chunk: int, device: torch.device | str = "cpu", limit: torch.Tensor | None = None):
        """Iterate over the table (or the positions ``limit``) in minibatches of ``chunk`` rows."""
        positions = torch.arange(len(self)) if limit is None else limit
        for i in range(0, positions.numel(), chunk):
            yield self.batch(positions[i : i + chunk], device)
