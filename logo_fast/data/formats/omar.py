"""OMAR-style datasets: one set of numpy arrays per agent in a directory.

Accepted layouts (agent index ``i`` = 0 .. N-1, consecutive, T steps each):

A. separate ``.npy`` files::

       obs_{i}.npy        (T, obs_dim_i)       required
       acs_{i}.npy        (T, act_dim_i) float continuous actions, or
                          (T,) / (T, 1) int    discrete actions, or
                          (T, n_actions) float one-hot discrete actions (with action_type="discrete")
       rews_{i}.npy       (T,) or (T, 1)       required
       dones_{i}.npy      (T,) or (T, 1)       required: environment termination
       next_obs_{i}.npy   (T, obs_dim_i)       optional: observation after each step
       avail_{i}.npy      (T, n_actions)       optional, discrete: available actions
       timeouts_{i}.npy   (T,) or (T, 1)       optional: time-limit truncation

B. one ``agent_{i}.npz`` per agent with the same arrays under the keys ``obs``, ``acs``,
   ``rews``, ``dones``, ``next_obs``, ``avail``, ``timeouts``.

Shared, optional in both: ``state.npy`` / ``next_state.npy`` (T, state_dim). Without them
the global state is the concatenation of every agent's (unpadded) observation, the usual
centralised-critic input of OMAR/MADDPG-style code.

Episode ends: a step is terminal when every agent's ``dones`` is set; truncated when a
``timeouts`` flag is set for every agent, when ``episode_len`` steps have passed, or when
(with ``next_obs`` present) the next row does not continue this one, i.e. ``next_obs[t] !=
obs[t+1]`` for some agent — which is how MPE's fixed-length, never-done episodes are found.
The last step is truncated when it is not done. With ``next_obs`` the observation after each
episode's last step becomes ``final_obs`` (and ``final_state`` from ``next_state.npy`` or the
concatenation of ``next_obs``).

Team reward: the mean of the agents' rewards (equal to it when rewards are shared); per-agent
rewards are kept as ``agent_rewards`` when they differ. Continuous bounds default to [-1, 1]
(MPE's continuous actions); pass ``action_low``/``action_high`` for others.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ...files import atomic_dir
from ..schema import DatasetSpec, OfflineDataset
from ._common import (
    action_bounds,
    as_flags,
    close_last_episode,
    every_n_steps,
    pad_agents,
    split_rewards,
    squeeze_last,
)

_NPY = re.compile(r"^obs_(\d+)\.npy$")
_NPZ = re.compile(r"^agent_(\d+)\.npz$")
KEYS = ("obs", "acs", "rews", "dones", "next_obs", "avail", "timeouts")


def _agent_indices(path: Path, pattern: re.Pattern) -> list[int]:
    return sorted(int(m.group(1)) for p in path.iterdir() if (m := pattern.match(p.name)))


def is_omar(path: str | os.PathLike) -> bool:
    """True when ``path`` is a directory holding ``obs_0.npy`` (layout A) or ``agent_0.npz`` (layout B)."""
    path = Path(path)
    return path.is_dir() and ((path / "obs_0.npy").exists() or (path / "agent_0.npz").exists())


def _load_agents(path: Path) -> list[dict[str, np.ndarray]]:
    npy = _agent_indices(path, _NPY)
    npz = _agent_indices(path, _NPZ)
    if npy and npz:
        raise ValueError(f"OMAR directory {path}: holds both obs_i.npy and agent_i.npz files; keep one layout")
    idx = npy or npz
    if not idx or idx != list(range(len(idx))):
        raise ValueError(f"OMAR directory {path}: agent files must be numbered 0..N-1, found {idx}")
    agents = []
    for i in idx:
        if npy:
            arrays = {
                k: np.load(path / f"{k}_{i}.npy", allow_pickle=False) for k in KEYS if (path / f"{k}_{i}.npy").exists()
            }
        else:
            with np.load(path / f"agent_{i}.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in KEYS if k in z.files}
        missing = [k for k in ("obs", "acs", "rews", "dones") if k not in arrays]
        if missing:
            raise ValueError(f"OMAR directory {path}: agent {i} lacks {missing}")
        agents.append(arrays)
    return agents


def read_omar(
    path: str | os.PathLike,
    *,
    env: str = "",
    episode_len: int | None = None,
    action_type: str | None = None,
    n_actions: int | None = None,
    action_low: float | np.ndarray = -1.0,
    action_high: float | np.ndarray = 1.0,
) -> OfflineDataset:
    """Read an OMAR-style directory into memory (see the module docstring for the layout and conventions).

    env:             scenario id stored in the spec
    episode_len:     also truncate episodes after this many steps
    action_type:     force "discrete" or "continuous" (default: integer actions or avail files mean discrete)
    n_actions:       discrete actions per agent without avail files (default: one-hot width or max + 1)
    action_low/high: continuous bounds, scalars or (N, act_dim)
    """
    path = Path(path)
    agents = _load_agents(path)
    N = len(agents)
    T = int(agents[0]["obs"].shape[0])
    problems = []
    for i, a in enumerate(agents):
        for k, v in a.items():
            if v.shape[0] != T:
                problems.append(f"agent {i} {k}: {v.shape[0]} rows, agent 0 obs has {T}")
        if a["obs"].ndim != 2:
            problems.append(f"agent {i} obs: expected (T, obs_dim), got {a['obs'].shape}")
    if problems:
        raise ValueError(f"OMAR directory {path}:\n  - " + "\n  - ".join(problems))

    obs, obs_dims = pad_agents([a["obs"] for a in agents])
    has_next = all("next_obs" in a for a in agents)
    next_obs = pad_agents([a["next_obs"] for a in agents])[0] if has_next else None

    dones = np.stack([as_flags(squeeze_last(a["dones"], 1), f"dones_{i}") for i, a in enumerate(agents)], 1)
    terminals = dones.all(axis=1)
    truncations = np.zeros(T, dtype=bool)
    if all("timeouts" in a for a in agents):
        timeouts = np.stack(
            [as_flags(squeeze_last(a["timeouts"], 1), f"timeouts_{i}") for i, a in enumerate(agents)], 1
        )
        truncations |= timeouts.all(axis=1)
    if next_obs is not None and T > 1:
        # An episode boundary is where the next row does not continue this one.
        truncations[:-1] |= (next_obs[:-1] != obs[1:]).reshape(T - 1, -1).any(axis=1)
    if episode_len is not None:
        truncations |= every_n_steps(terminals | truncations, episode_len)
    truncations &= ~terminals
    n_closed = close_last_episode(terminals, truncations)

    team, agent_rewards = split_rewards(np.stack([squeeze_last(a["rews"], 1) for a in agents], 1), N)

    state_file, next_state_file = path / "state.npy", path / "next_state.npy"
    state = np.load(state_file, allow_pickle=False).astype(np.float32) if state_file.exists() else None
    if state is None:
        state = np.concatenate([a["obs"] for a in agents], axis=1).astype(np.float32)
    ends = terminals | truncations
    final_obs = final_state = None
    if next_obs is not None:
        final_obs = next_obs[ends]
        if next_state_file.exists():
            final_state = np.load(next_state_file, allow_pickle=False).astype(np.float32)[ends]
        elif not state_file.exists():
            final_state = np.concatenate([a["next_obs"] for a in agents], axis=1).astype(np.float32)[ends]
        else:
            final_obs = None  # a given state has no recorded successor; keep final_* both-or-neither

    acs = [np.asarray(a["acs"]) for a in agents]
    if action_type is None:
        action_type = "discrete" if acs[0].dtype.kind in "iu" or all("avail" in a for a in agents) else "continuous"
    fields: dict[str, Any] = {}
    if action_type == "discrete":
        cols = []
        for i, a in enumerate(acs):
            a = squeeze_last(a, 1)
            if a.ndim == 2:  # one-hot
                width = a.shape[1]
                a = a.argmax(axis=1)
                n_actions = n_actions or width
            elif a.dtype.kind == "f" and (a != np.round(a)).any():
                raise ValueError(f"OMAR directory {path}: acs_{i} float discrete actions must be whole numbers")
            cols.append(a.astype(np.int64))
        actions = np.stack(cols, axis=1)
        if all("avail" in a for a in agents):
            avail = np.stack([as_flags(a["avail"], f"avail_{i}") for i, a in enumerate(agents)], axis=1)
            n_act = avail.shape[-1]
        else:
            avail = None
            n_act = int(n_actions or (int(actions.max()) + 1 if actions.size else 1))
        spec = DatasetSpec(
            n_agents=N,
            obs_dim=obs.shape[2],
            state_dim=state.shape[1],
            action_type="discrete",
            n_actions=n_act,
            agent_obs_dims=obs_dims,
            env=env,
        )
        fields["avail_actions"] = avail
    else:
        actions, act_dims = pad_agents([a.reshape(T, -1) for a in acs])
        spec = DatasetSpec(
            n_agents=N,
            obs_dim=obs.shape[2],
            state_dim=state.shape[1],
            action_type="continuous",
            act_dim=actions.shape[2],
            agent_obs_dims=obs_dims,
            agent_act_dims=act_dims,
            env=env,
        )
        fields["action_low"], fields["action_high"] = action_bounds(N, spec.act_dim, action_low, action_high)
    return OfflineDataset(
        spec=spec,
        obs=obs,
        state=state,
        actions=actions,
        rewards=team,
        terminals=terminals,
        truncations=truncations,
        agent_rewards=agent_rewards,
        final_obs=final_obs,
        final_state=final_state if final_obs is not None else None,
        metadata={"source_format": "omar", "source_path": str(path), "truncated_last_step": bool(n_closed)},
        **fields,
    )


def write_omar(ds: OfflineDataset, path: str | os.PathLike, layout: str = "npy") -> Path:
    """Write ``ds`` as an OMAR-style directory (layout "npy" = A or "npz" = B) for interchange and tests.

    Writes obs/acs/rews/dones/timeouts per agent (unpadded), ``next_obs`` when every step has a
    next observation, ``avail`` for discrete tasks and ``state.npy``/``next_state.npy``. The
    directory is built under a temp name and renamed into place (``path`` must not exist).
    """
    spec = ds.spec
    nxt = ds.next_fields()
    has_next = len(nxt["index"]) == len(ds)
    rewards = np.asarray(ds.rewards) if ds.agent_rewards is None else np.asarray(ds.agent_rewards)
    with atomic_dir(path) as tmp:
        for i in range(spec.n_agents):
            d_obs = spec.agent_obs_dims[i]
            arrays = {
                "obs": np.asarray(ds.obs)[:, i, :d_obs],
                "acs": np.asarray(ds.actions)[:, i]
                if spec.discrete
                else np.asarray(ds.actions)[:, i, : spec.agent_act_dims[i]],
                "rews": rewards if rewards.ndim == 1 else rewards[:, i],
                "dones": np.asarray(ds.terminals),
                "timeouts": np.asarray(ds.truncations),
            }
            if has_next:
                arrays["next_obs"] = nxt["next_obs"][:, i, :d_obs]
            if ds.avail_actions is not None:
                arrays["avail"] = np.asarray(ds.avail_actions)[:, i]
            if layout == "npz":
                np.savez(tmp / f"agent_{i}.npz", **arrays)
            elif layout == "npy":
                for k, v in arrays.items():
                    np.save(tmp / f"{k}_{i}.npy", v)
            else:
                raise ValueError(f"layout must be 'npy' or 'npz', got {layout!r}")
        np.save(tmp / "state.npy", np.asarray(ds.state))
        if has_next:
            np.save(tmp / "next_state.npy", nxt["next_state"])
    return Path(path)
