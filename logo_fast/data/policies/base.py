"""Behaviour policies: what the collector runs in an environment to produce a dataset.

A behaviour policy maps a batch of observations to a batch of actions for every agent:

    act(obs (B, N, obs_dim), state (B, state_dim), avail (B, N, n_actions) | None, rng)
        -> actions (B, N) int64 (discrete) or (B, N, act_dim) float32 (continuous)

``rng`` is the collector's ``np.random.Generator``: every random choice a policy makes goes
through it (or through a key derived from it), so a seed fixes the data. Policies that carry
memory across steps (SMAX's heuristic remembers its targets) clear it for the copies whose
episodes ended via ``on_episode_end(done)``. ``describe()`` returns a JSON-able dict for the
dataset manifest.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class BehaviourPolicy(Protocol):
    def act(
        self, obs: np.ndarray, state: np.ndarray, avail: np.ndarray | None, rng: np.random.Generator
    ) -> np.ndarray: ...

    def on_episode_end(self, done: np.ndarray) -> None: ...

    def describe(self) -> dict[str, Any]: ...


def random_available(avail: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(B, N) int64: a uniformly random available action per agent. avail: (B, N, n_actions) bool."""
    scores = np.where(avail, rng.random(avail.shape), -1.0)
    return scores.argmax(-1).astype(np.int64)


def epsilon_mix(greedy: np.ndarray, avail: np.ndarray, epsilon: np.ndarray | float, rng: np.random.Generator):
    """Replace each agent's action by a random available one with probability ``epsilon``.

    greedy: (B, N) int64; avail: (B, N, n_actions) bool; epsilon: scalar or (B,) per copy.
    """
    eps = np.broadcast_to(
        np.asarray(epsilon, dtype=np.float64).reshape(-1, 1) if np.ndim(epsilon) else epsilon, greedy.shape
    )
    rand = random_available(avail, rng)
    mix = rng.random(greedy.shape) < eps
    return np.where(mix, rand, greedy).astype(np.int64)


class RandomPolicy:
    """Uniformly random (available) actions; continuous actions uniform in the bounds."""

    def __init__(self, action_low: np.ndarray | None = None, action_high: np.ndarray | None = None):
        self.low = action_low
        self.high = action_high

    def act(self, obs, state, avail, rng):
        if avail is not None:
            return random_available(avail, rng)
        B = obs.shape[0]
        return rng.uniform(self.low, self.high, size=(B, *self.low.shape)).astype(np.float32)

    def on_episode_end(self, done):
        pass

    def describe(self):
        return {"kind": "random"}
