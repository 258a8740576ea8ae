"""Scripted MPE behaviour policies, with an epsilon-mixture of uniformly random actions.

simple_spread     Each agent rebuilds, from its own observation, the distances between every
                  agent and every landmark, assigns agents to landmarks greedily (closest
                  pair first; every agent computes the same assignment because the geometry
                  is the same from any viewpoint) and steers to its landmark.
simple_tag        Each predator steers to where the prey will be a few steps ahead.
simple_reference  Each agent names (word = landmark index) the goal colour it sees, which is
                  its partner's target, and steers to the landmark its partner named.

Steering: aim at ``target - damping * velocity`` and push along the dominant axis
(discrete moves 1 -x, 2 +x, 3 -y, 4 +y), no-op when already close and slow.
"""

from __future__ import annotations

import numpy as np

from .base import epsilon_mix

_MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.float64)


def steer(rel: np.ndarray, vel: np.ndarray, damping: float = 0.6, stop: float = 0.03) -> np.ndarray:
    """rel, vel: (..., 2) -> discrete move (...,) int64 towards ``rel`` with velocity damping."""
    aim = rel - damping * vel
    move = np.argmax(aim @ _MOVES.T, axis=-1)
    close = np.linalg.norm(aim, axis=-1) < stop
    return np.where(close, 0, move).astype(np.int64)


def spread_targets(obs: np.ndarray) -> np.ndarray:
    """simple_spread obs (B, N, 6 + 4N') -> each agent's assigned landmark offset (B, N, 2)."""
    B, N, _ = obs.shape
    L = N  # simple_spread has as many landmarks as agents
    out = np.zeros((B, N, 2))
    for i in range(N):
        lm = obs[:, i, 4 : 4 + 2 * L].reshape(B, L, 2).astype(np.float64)
        others = obs[:, i, 4 + 2 * L : 4 + 2 * L + 2 * (N - 1)].reshape(B, N - 1, 2).astype(np.float64)
        # Every agent's position relative to agent i, in the global agent order.
        agents = np.insert(others, i, 0.0, axis=1)  # (B, N, 2)
        dist = np.linalg.norm(agents[:, :, None, :] - lm[:, None, :, :], axis=-1)  # (B, N, L)
        target = np.zeros(B, dtype=np.int64)
        for b in range(B):
            d = dist[b].copy()
            for _ in range(N):
                a, l_ = np.unravel_index(np.argmin(d), d.shape)
                if a == i:
                    target[b] = l_
                    break
                d[a, :] = np.inf
                d[:, l_] = np.inf
        out[:, i] = lm[np.arange(B), target]
    return out


class MPEHeuristicPolicy:
    """Scripted policy for one MPE scenario; with probability ``epsilon`` an agent acts at random.

    scenario: "simple_spread", "simple_tag" or "simple_reference"
    epsilon:  scalar, or (B,) per parallel copy (the medium-replay sweep sets it per episode)
    """

    def __init__(self, scenario: str, epsilon: float | np.ndarray = 0.0):
        if scenario not in ("simple_spread", "simple_tag", "simple_reference"):
            raise ValueError(f"no MPE heuristic for {scenario!r}")
        self.scenario = scenario
        self.epsilon = epsilon

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        """obs (B, N, obs_dim) -> scripted actions (B, N) int64."""
        obs = np.asarray(obs, np.float64)
        vel = obs[..., 0:2]
        if self.scenario == "simple_spread":
            return steer(spread_targets(obs), vel)
        if self.scenario == "simple_tag":
            prey_rel, prey_vel = obs[..., 12:14], obs[..., 14:16]
            return steer(prey_rel + 0.3 * prey_vel, vel, damping=0.3, stop=0.0)
        # simple_reference: obs = vel (2), landmarks (6), goal colour (3), heard words (10)
        lm = obs[..., 2:8].reshape(*obs.shape[:2], 3, 2)
        word = np.argmax(obs[..., 8:11], axis=-1)
        heard = obs[..., 11:21]
        target = np.argmax(heard[..., :3], axis=-1)
        rel = np.take_along_axis(lm, target[..., None, None].repeat(2, -1), axis=-2)[..., 0, :]
        move = np.where(heard.any(-1), steer(rel, vel), 0)
        return (move + 5 * word).astype(np.int64)

    def act(self, obs, state, avail, rng):
        greedy = self.greedy(obs)
        if avail is None:
            avail = np.ones((*greedy.shape, int(greedy.max()) + 1), bool)
        eps = self.epsilon
        if np.ndim(eps) == 0 and float(eps) == 0.0:
            return greedy
        return epsilon_mix(greedy, avail, eps, rng)

    def on_episode_end(self, done):
        pass

    def describe(self):
        eps = self.epsilon
        return {
            "kind": f"mpe_heuristic:{self.scenario}",
            "epsilon": float(eps) if np.ndim(eps) == 0 else "per-episode sweep",
        }
