"""A tiny, exactly known multi-agent task for tests and examples (no simulator needed).

N agents move on a plane towards one shared landmark. Agent i observes its own position, its
velocity and the landmark offset; in the heterogeneous variant agent i also sees the offsets
to its ``i`` nearest-index teammates, so observation sizes differ per agent. The global state
is every position, every velocity and the landmark. Discrete actions: 0 stay, 1-4 push
±x/±y (a push that would leave the arena is unavailable). Continuous actions: a 2-d force in
[-1, 1]. Team reward: minus the mean distance to the landmark. The episode terminates when
every agent is within 0.1 of the landmark and is truncated after ``episode_len`` steps.
"""

from __future__ import annotations

import numpy as np

from .schema import DatasetSpec, OfflineDataset

ARENA = 1.0
_PUSH = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], dtype=np.float64)


class ToyTask:
    """Vectorised toy dynamics over B parallel episodes. Used by ``make_toy_dataset``."""

    def __init__(self, n_agents: int, action_type: str = "discrete", heterogeneous: bool = False):
        self.n_agents = n_agents
        self.action_type = action_type
        self.heterogeneous = heterogeneous
        base = 6  # own pos (2), own vel (2), landmark offset (2)
        self.agent_obs_dims = tuple(base + (2 * min(i, 2) if heterogeneous else 0) for i in range(n_agents))
        self.spec = DatasetSpec(
            n_agents=n_agents,
            obs_dim=max(self.agent_obs_dims),
            state_dim=4 * n_agents + 2,
            action_type=action_type,
            n_actions=5 if action_type == "discrete" else 0,
            act_dim=2 if action_type == "continuous" else 0,
            agent_obs_dims=self.agent_obs_dims,
            env="toy:landmark",
        )

    def reset(self, rng: np.random.Generator, batch: int):
        pos = rng.uniform(-0.8, 0.8, size=(batch, self.n_agents, 2))
        vel = np.zeros_like(pos)
        landmark = rng.uniform(-0.5, 0.5, size=(batch, 2))
        return pos, vel, landmark

    def observe(self, pos, vel, landmark):
        """-> obs (B, N, obs_dim) zero-padded, state (B, state_dim), avail (B, N, 5) or None."""
        B, N, _ = pos.shape
        obs = np.zeros((B, N, self.spec.obs_dim))
        obs[:, :, 0:2] = pos
        obs[:, :, 2:4] = vel
        obs[:, :, 4:6] = landmark[:, None, :] - pos
        for i in range(N):
            for k in range((self.agent_obs_dims[i] - 6) // 2):
                obs[:, i, 6 + 2 * k : 8 + 2 * k] = pos[:, (i + k + 1) % N] - pos[:, i]
        state = np.concatenate([pos.reshape(B, -1), vel.reshape(B, -1), landmark], axis=1)
        avail = None
        if self.action_type == "discrete":
            nxt = pos[:, :, None, :] + 0.1 * _PUSH[None, None]
            avail = np.all(np.abs(nxt) <= ARENA, axis=-1)
            avail[..., 0] = True
        return obs.astype(np.float32), state.astype(np.float32), avail

    def step(self, pos, vel, landmark, actions):
        force = _PUSH[actions] if self.action_type == "discrete" else np.clip(actions, -1.0, 1.0)
        vel = 0.5 * vel + 0.1 * force
        pos = np.clip(pos + vel, -ARENA, ARENA)
        dist = np.linalg.norm(pos - landmark[:, None, :], axis=-1)
        reward = -dist.mean(axis=1)
        done = np.all(dist < 0.1, axis=1)
        return pos, vel, reward.astype(np.float32), done

    def heuristic(self, rng, obs, avail, epsilon: float):
        """Greedy push towards the landmark, with probability epsilon a random (available) action."""
        offset = obs[:, :, 4:6].astype(np.float64)
        if self.action_type == "continuous":
            act = np.clip(3.0 * offset, -1, 1) - 0.5 * obs[:, :, 2:4]
            noise = rng.uniform(-1, 1, size=act.shape)
            mix = rng.random(act.shape[:2])[..., None] < epsilon
            return np.where(mix, noise, np.clip(act, -1, 1)).astype(np.float32)
        score = offset @ _PUSH.T
        score[..., 0] = 0.02
        score = np.where(avail, score, -np.inf)
        greedy = score.argmax(-1)
        rand_scores = np.where(avail, rng.random(avail.shape), -1.0)
        random_act = rand_scores.argmax(-1)
        mix = rng.random(greedy.shape) < epsilon
        return np.where(mix, random_act, greedy).astype(np.int64)


def make_toy_dataset(
    n_agents: int = 3,
    n_episodes: int = 8,
    episode_len: int = 25,
    action_type: str = "discrete",
    heterogeneous: bool = False,
    epsilon: float = 0.3,
    seed: int = 0,
) -> OfflineDataset:
    """Collect ``n_episodes`` toy episodes with an epsilon-greedy heuristic; same seed, same data."""
    if n_episodes < 1 or episode_len < 1 or n_agents < 1:
        raise ValueError("n_agents, n_episodes and episode_len must all be >= 1")
    task = ToyTask(n_agents, action_type, heterogeneous)
    rng = np.random.default_rng(seed)
    cols: dict[str, list] = {k: [] for k in ("obs", "state", "actions", "rewards", "term", "trunc", "avail")}
    finals: dict[str, list] = {"obs": [], "state": [], "avail": []}
    for _ in range(n_episodes):
        pos, vel, lm = task.reset(rng, 1)
        for t in range(episode_len):
            obs, state, avail = task.observe(pos, vel, lm)
            act = task.heuristic(rng, obs, avail, epsilon)
            pos, vel, rew, done = task.step(pos, vel, lm, act)
            trunc = (t == episode_len - 1) and not done[0]
            cols["obs"].append(obs[0])
            cols["state"].append(state[0])
            cols["actions"].append(act[0])
            cols["rewards"].append(rew[0])
            cols["term"].append(bool(done[0]))
            cols["trunc"].append(bool(trunc))
            if avail is not None:
                cols["avail"].append(avail[0])
            if done[0] or trunc:
                fo, fs, fa = task.observe(pos, vel, lm)
                finals["obs"].append(fo[0])
                finals["state"].append(fs[0])
                if fa is not None:
                    finals["avail"].append(fa[0])
                break
    discrete = action_type == "discrete"
    spec = task.spec
    return OfflineDataset(
        spec=spec,
        obs=np.stack(cols["obs"]),
        state=np.stack(cols["state"]),
        actions=np.stack(cols["actions"]),
        rewards=np.asarray(cols["rewards"], dtype=np.float32),
        terminals=np.asarray(cols["term"], dtype=bool),
        truncations=np.asarray(cols["trunc"], dtype=bool),
        avail_actions=np.stack(cols["avail"]) if discrete else None,
        action_low=None if discrete else -np.ones((n_agents, 2), dtype=np.float32),
        action_high=None if discrete else np.ones((n_agents, 2), dtype=np.float32),
        final_obs=np.stack(finals["obs"]),
        final_state=np.stack(finals["state"]),
        final_avail=np.stack(finals["avail"]) if discrete else None,
        metadata={"env": spec.env, "quality": "toy", "seed": seed, "epsilon": epsilon},
    )
