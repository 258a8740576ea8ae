"""The one interface every environment adapter implements: batched, padded, auto-resetting.

An adapter runs ``B = batch_size`` independent copies of one scenario in lock-step and speaks
the dataset schema's language (``logo_fast.data.schema``):

    reset(seed)   -> obs (B, N, obs_dim) float32, state (B, state_dim) float32,
                     avail (B, N, n_actions) bool or None (continuous tasks)
    step(actions) -> obs, state, avail, team_reward (B,) float32, terminal (B,) bool,
                     truncated (B,) bool, info (dict)

``actions`` is (B, N) int64 for discrete tasks and (B, N, act_dim) float32 for continuous ones
(zero in the padding beyond each agent's real action size).

Observations are zero-padded to the largest agent (``spec.obs_mask()`` says which entries are
real). ``terminal`` means the environment ended the episode (no bootstrap: everybody died,
the hopper fell); ``truncated`` means the time limit cut it (bootstrap allowed); a step is never
both (terminal wins).

Auto-reset: when copy b's episode ends on a step, that copy is reset at once and the returned
``obs[b]/state[b]/avail[b]`` are the FIRST observation of its next episode. What the agents saw
after the last step is returned separately in ``info``:

    info["done"]          (B,) bool                 terminal | truncated
    info["final_obs"]     (B, N, obs_dim) float32   obs after the step, valid where done (zeros elsewhere)
    info["final_state"]   (B, state_dim) float32
    info["final_avail"]   (B, N, n_actions) bool    discrete tasks only
    info["agent_rewards"] (B, N) float32            each agent's own reward

The collector stores ``final_*`` per episode, so the schema's next-step derivation never
crosses an episode boundary. Every copy's episodes get seeds drawn from one generator seeded by
``reset(seed)``, so the same seed and the same actions give the same trajectories.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..schema import DatasetSpec

StepOutput = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]


@dataclass(frozen=True)
class EnvInfo:
    """Static facts about a scenario that the collector records in the manifest."""

    env_id: str
    """Registry id, e.g. "mpe:simple_spread"."""
    family: str
    """One of "mpe", "mamujoco" or "smax"."""
    time_limit: int
    """Steps after which an episode is truncated."""
    team_reward: str
    """How the team reward is formed from the agents' rewards (one sentence)."""
    packages: tuple[str, ...]
    """Distribution names whose versions matter for reproducing the data."""


class EnvAdapter(abc.ABC):
    """B parallel copies of one multi-agent scenario behind the schema's array layout.

    Subclasses set ``spec`` (DatasetSpec), ``info`` (EnvInfo), ``batch_size`` and, for
    continuous tasks, ``action_low``/``action_high`` of shape (N, act_dim) (zero in padding).
    """

    spec: DatasetSpec
    info: EnvInfo
    batch_size: int
    action_low: np.ndarray | None = None
    action_high: np.ndarray | None = None

    @abc.abstractmethod
    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Start a fresh episode in every copy. Returns obs (B, N, obs_dim), state (B, state_dim), avail."""

    @abc.abstractmethod
    def step(self, actions: np.ndarray) -> StepOutput:
        """Advance every copy by one step (auto-resetting finished ones; see the module docstring)."""

    def close(self) -> None:  # noqa: B027 - optional hook, most simulators need nothing
        """Release simulator resources."""

    # ---- helpers shared by the adapters ----------------------------------------------------
    def check_actions(self, actions: np.ndarray) -> np.ndarray:
        """Validate a batch of actions against the spec; return it with the schema dtype.

        Raises one ValueError listing every problem (shape, dtype, range, non-finite values).
        """
        spec = self.spec
        a = np.asarray(actions)
        problems = []
        if spec.discrete:
            want = (self.batch_size, spec.n_agents)
            if a.shape != want:
                problems.append(f"actions: expected shape {want} (B, N), got {a.shape}")
            elif a.dtype.kind not in "iu":
                problems.append(f"actions: expected an integer dtype for a discrete task, got {a.dtype}")
            elif ((a < 0) | (a >= spec.n_actions)).any():
                problems.append(f"actions: values outside [0, {spec.n_actions})")
            out = a.astype(np.int64, copy=False) if not problems else a
        else:
            want = (self.batch_size, spec.n_agents, spec.act_dim)
            if a.shape != want:
                problems.append(f"actions: expected shape {want} (B, N, act_dim), got {a.shape}")
            elif a.dtype.kind != "f":
                problems.append(f"actions: expected a floating dtype for a continuous task, got {a.dtype}")
            elif not np.isfinite(a).all():
                problems.append(f"actions: {int((~np.isfinite(a)).sum())} non-finite values")
            out = a.astype(np.float32, copy=False) if not problems else a
        if problems:
            raise ValueError(f"{self.info.env_id}.step: invalid actions:\n  - " + "\n  - ".join(problems))
        return out

    def __enter__(self) -> EnvAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def episode_seeds(seed: int) -> np.random.Generator:
    """The generator that hands out per-episode simulator seeds after ``reset(seed)``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EED]))


def pad_rows(rows: list[np.ndarray], width: int) -> np.ndarray:
    """Stack 1-d per-agent arrays of differing lengths into (N, width) float32, zero-padded."""
    out = np.zeros((len(rows), width), dtype=np.float32)
    for i, r in enumerate(rows):
        r = np.asarray(r, dtype=np.float32).reshape(-1)
        out[i, : r.shape[0]] = r
    return out
