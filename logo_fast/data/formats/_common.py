"""Small conversions the peer-format readers share (flags, per-agent rewards, padding, bounds)."""

from __future__ import annotations

import numpy as np


def as_flags(a: np.ndarray, name: str) -> np.ndarray:
    """bool copy of a 0/1 flag array stored as bool, integers or floats; ValueError on other values."""
    a = np.asarray(a)
    if a.dtype == np.bool_:
        return a.copy()
    if a.dtype.kind not in "iuf":
        raise ValueError(f"{name}: flags must be bool or numeric 0/1, got dtype {a.dtype}")
    ok = (a == 0) | (a == 1)
    if not ok.all():
        bad = np.unique(a[~ok])[:5]
        raise ValueError(f"{name}: flags must be 0 or 1, found values such as {bad.tolist()}")
    return a.astype(bool)


def squeeze_last(a: np.ndarray, ndim: int) -> np.ndarray:
    """Drop a trailing singleton axis when ``a`` has one more dimension than ``ndim``."""
    a = np.asarray(a)
    if a.ndim == ndim + 1 and a.shape[-1] == 1:
        return a[..., 0]
    return a


def agent_flags(a: np.ndarray, name: str, n_agents: int) -> np.ndarray:
    """(T,) bool from flags stored as (T,), (T, 1), (T, N) or (T, N, 1): a step counts when ALL agents flag it.

    All rather than any: the peer datasets broadcast the environment's done to every agent, and
    OG-MARL's own tools use ``all``; a single agent's flag (e.g. a dead unit) does not end the episode.
    """
    a = as_flags(a, name)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim == 2:
        if a.shape[1] != n_agents:
            raise ValueError(f"{name}: agent count {a.shape[1]} != {n_agents} (shape {a.shape})")
        return a.all(axis=1)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected (T,), (T, N) or (T, N, 1), got shape {a.shape}")
    return a


def split_rewards(r: np.ndarray, n_agents: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(team (T,), agent (T, N) or None) from rewards stored as (T,), (T, 1), (T, N) or (T, N, 1).

    Team reward of per-agent rewards is their mean: the same number when every agent gets the
    shared team reward (SMAC, MaMuJoCo, MPE spread), an average otherwise. Per-agent rewards
    are kept as ``agent_rewards`` unless they are identical across agents.
    """
    r = np.asarray(r)
    if r.ndim == 3 and r.shape[-1] == 1:
        r = r[..., 0]
    if r.ndim == 2 and r.shape[1] == 1 and n_agents != 1:
        r = r[:, 0]
    if r.ndim == 1:
        return r.astype(np.float32), None
    if r.ndim != 2 or r.shape[1] != n_agents:
        raise ValueError(f"rewards: expected (T,), (T, N) or (T, N, 1) with N={n_agents}, got shape {r.shape}")
    r = r.astype(np.float32)
    if (r == r[:, :1]).all():
        return r[:, 0].copy(), None
    return r.mean(axis=1, dtype=np.float64).astype(np.float32), r


def pad_agents(parts: list[np.ndarray]) -> tuple[np.ndarray, tuple[int, ...]]:
    """Stack per-agent (T, d_i) arrays into (T, N, max d_i) zero-padded float32, plus the true sizes."""
    dims = tuple(int(p.shape[1]) for p in parts)
    T = parts[0].shape[0]
    out = np.zeros((T, len(parts), max(dims)), dtype=np.float32)
    for i, p in enumerate(parts):
        out[:, i, : dims[i]] = p
    return out, dims


def action_bounds(n_agents: int, act_dim: int, low, high) -> tuple[np.ndarray, np.ndarray]:
    """(N, act_dim) float32 bounds from scalars or arrays (broadcast)."""
    lo = np.broadcast_to(np.asarray(low, dtype=np.float32), (n_agents, act_dim)).copy()
    hi = np.broadcast_to(np.asarray(high, dtype=np.float32), (n_agents, act_dim)).copy()
    return lo, hi


def close_last_episode(terminals: np.ndarray, truncations: np.ndarray) -> int:
    """Mark a dataset's unfinished last step truncated (the recording stopped there); returns 1 if it did."""
    if len(terminals) and not (terminals[-1] or truncations[-1]):
        truncations[-1] = True
        return 1
    return 0


def discrete_actions(a: np.ndarray, n_agents: int, name: str = "actions") -> np.ndarray:
    """(T, N) int64 from integer or integral-float actions stored as (T, N) or (T, N, 1)."""
    a = squeeze_last(np.asarray(a), 2)
    if a.ndim != 2 or a.shape[1] != n_agents:
        raise ValueError(f"{name}: expected discrete actions (T, N) or (T, N, 1) with N={n_agents}, got {a.shape}")
    if a.dtype.kind == "f":
        if not np.isfinite(a).all() or (a != np.round(a)).any():
            raise ValueError(f"{name}: float discrete actions must be whole numbers")
    elif a.dtype.kind not in "iu":
        raise ValueError(f"{name}: dtype {a.dtype} is not numeric")
    return a.astype(np.int64)


def every_n_steps(ends: np.ndarray, n: int) -> np.ndarray:
    """(T,) bool: steps where ``n`` steps have passed since the last episode end, counting the new cuts."""
    if n < 1:
        raise ValueError(f"episode_len must be >= 1, got {n}")
    out = np.zeros_like(ends)
    count = 0
    for t in range(len(ends)):
        count += 1
        if ends[t] or count == n:
            out[t] = count == n and not ends[t]
            count = 0
    return out
