"""OMIGA-style HDF5 datasets: flat, time-major arrays under short keys.

Accepted layout (one ``.h5``/``.hdf5`` file, T steps, N agents)::

    s                     (T, state_dim)             global state
    o                     (T, N, obs_dim)            per-agent observations
    a                     (T, N) int                 discrete actions, or
                          (T, N, 1) int/float        discrete actions with a trailing axis, or
                          (T, N, act_dim) float      continuous actions
    r                     (T,), (T, N) or (T, N, 1)  reward (per-agent rewards are averaged into
                                                     the team reward and kept as agent_rewards
                                                     when they differ between agents)
    d                     (T,), (T, N) or (T, N, 1)  done
    avail | available_actions  (T, N, n_actions)     optional, discrete: available actions
    timeouts | truncations     same shapes as d      optional: time-limit flags

Episode convention: OMIGA has no truncation flag, so ``done`` is read as *terminal*; a step
is *truncated* when a ``timeouts``/``truncations`` dataset marks it, when ``episode_len``
(a reader option) steps have passed since the episode began, or when it is the file's last
step and not done (the recording stopped there). A per-agent done counts only when every
agent is done. Steps with both done and timeout are terminal only. The file holds no
observation after an episode's last step, so ``final_*`` are absent (those steps have no
next step).

Action type: integer actions, or an ``avail`` dataset, mean discrete (float actions must then
be whole numbers); otherwise continuous, with bounds ``action_low``/``action_high`` (default
[-1, 1], the MaMuJoCo convention; validation rejects data outside them).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ...files import atomic_path
from ..schema import DatasetSpec, OfflineDataset
from ._common import (
    action_bounds,
    agent_flags,
    as_flags,
    close_last_episode,
    discrete_actions,
    every_n_steps,
    split_rewards,
)

REQUIRED_KEYS = ("s", "o", "a", "r", "d")
AVAIL_KEYS = ("avail", "available_actions")
TIMEOUT_KEYS = ("timeouts", "truncations")


def is_omiga(h5: Any) -> bool:
    """True when an open h5py File holds the OMIGA keys s, o, a, r, d."""
    return all(k in h5 for k in REQUIRED_KEYS)


def read_omiga(
    path: str | os.PathLike,
    *,
    env: str = "",
    episode_len: int | None = None,
    action_type: str | None = None,
    n_actions: int | None = None,
    action_low: float | np.ndarray = -1.0,
    action_high: float | np.ndarray = 1.0,
    agent_obs_dims: tuple[int, ...] = (),
) -> OfflineDataset:
    """Read an OMIGA-style HDF5 file into memory (see the module docstring for the layout).

    env:            scenario id stored in the spec (default: the file's ``env`` attribute, if any)
    episode_len:    truncate episodes after this many steps (for files without timeout flags)
    action_type:    force "discrete" or "continuous" instead of inferring it
    n_actions:      discrete actions per agent when there is no avail dataset (default: max + 1)
    action_low/high: continuous bounds, scalars or (N, act_dim)
    agent_obs_dims: true per-agent observation sizes when ``o`` is padded (default: all obs_dim)
    """
    path = Path(path)
    with h5py.File(path, "r") as h5:
        missing = [k for k in REQUIRED_KEYS if k not in h5]
        if missing:
            raise ValueError(f"OMIGA file {path}: missing datasets {missing} (has {sorted(h5.keys())})")
        state = np.asarray(h5["s"][()])
        obs = np.asarray(h5["o"][()])
        act = np.asarray(h5["a"][()])
        rew = np.asarray(h5["r"][()])
        done = np.asarray(h5["d"][()])
        avail_key = next((k for k in AVAIL_KEYS if k in h5), None)
        avail = None if avail_key is None else np.asarray(h5[avail_key][()])
        timeout_key = next((k for k in TIMEOUT_KEYS if k in h5), None)
        timeouts = None if timeout_key is None else np.asarray(h5[timeout_key][()])
        file_env = h5.attrs.get("env", "")
    if obs.ndim != 3:
        raise ValueError(f"OMIGA file {path}: o must be (T, N, obs_dim), got {obs.shape}")
    if state.ndim != 2:
        raise ValueError(f"OMIGA file {path}: s must be (T, state_dim), got {state.shape}")
    T, N, obs_dim = obs.shape
    if action_type is None:
        action_type = "discrete" if act.dtype.kind in "iu" or avail is not None else "continuous"
    if action_type not in ("discrete", "continuous"):
        raise ValueError(f"action_type must be 'discrete' or 'continuous', got {action_type!r}")

    terminals = agent_flags(done, "d", N)
    truncations = np.zeros(T, dtype=bool) if timeouts is None else agent_flags(timeouts, timeout_key, N) & ~terminals
    if episode_len is not None:
        truncations |= every_n_steps(terminals | truncations, episode_len) & ~terminals
    n_closed = close_last_episode(terminals, truncations)
    team, agent_rewards = split_rewards(rew, N)

    fields: dict[str, Any] = {}
    if action_type == "discrete":
        actions = discrete_actions(act, N, "a")
        if avail is not None:
            avail = as_flags(avail, avail_key)
            n_act = int(avail.shape[-1])
        else:
            n_act = int(n_actions or (int(actions.max()) + 1 if actions.size else 1))
        spec = DatasetSpec(
            n_agents=N,
            obs_dim=obs_dim,
            state_dim=state.shape[1],
            action_type="discrete",
            n_actions=n_act,
            agent_obs_dims=agent_obs_dims,
            env=env or str(file_env),
        )
        fields["avail_actions"] = avail
    else:
        actions = act.astype(np.float32)
        if actions.ndim != 3:
            raise ValueError(f"OMIGA file {path}: continuous a must be (T, N, act_dim), got {actions.shape}")
        spec = DatasetSpec(
            n_agents=N,
            obs_dim=obs_dim,
            state_dim=state.shape[1],
            action_type="continuous",
            act_dim=actions.shape[2],
            agent_obs_dims=agent_obs_dims,
            env=env or str(file_env),
        )
        fields["action_low"], fields["action_high"] = action_bounds(N, spec.act_dim, action_low, action_high)
    return OfflineDataset(
        spec=spec,
        obs=obs.astype(np.float32),
        state=state.astype(np.float32),
        actions=actions,
        rewards=team,
        terminals=terminals,
        truncations=truncations,
        agent_rewards=agent_rewards,
        metadata={
            "source_format": "omiga",
            "source_path": str(path),
            "truncated_last_step": bool(n_closed),
            "n_actions_inferred": action_type == "discrete" and avail is None and n_actions is None,
        },
        **fields,
    )


def write_omiga(ds: OfflineDataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` in the OMIGA layout (for interchange and tests); terminal → d, truncation → timeouts.

    Atomic like every writer here. Lossy by design: final_* and padding masks are not stored.
    """
    path = Path(path)
    with atomic_path(path, path.suffix) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("s", data=np.asarray(ds.state))
        h5.create_dataset("o", data=np.asarray(ds.obs))
        h5.create_dataset("a", data=np.asarray(ds.actions))
        h5.create_dataset("r", data=np.asarray(ds.rewards))
        h5.create_dataset("d", data=np.asarray(ds.terminals))
        h5.create_dataset("timeouts", data=np.asarray(ds.truncations))
        if ds.avail_actions is not None:
            h5.create_dataset("avail", data=np.asarray(ds.avail_actions))
        h5.attrs["env"] = ds.spec.env
    return path
