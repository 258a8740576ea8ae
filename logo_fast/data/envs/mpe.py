"""Multi-Agent Particle Environments (package ``mpe2``, PettingZoo parallel API) as batched adapters.

Scenarios (id ``mpe:<name>``), all with discrete actions (``continuous_actions=False``):

  simple_spread     N=3 agents cover 3 landmarks. Actions: 0 no-op, 1 -x, 2 +x, 3 -y, 4 +y.
                    Team reward: the mean of the agents' rewards (each is 0.5 * the shared
                    landmark-coverage reward + 0.5 * its own collision penalty, ``local_ratio=0.5``).
  simple_tag        the 3 adversaries (predators) are the team; they chase one prey that
                    moves uniformly at random (seeded by ``reset``; it is part of the
                    environment, not of the dataset). Team reward: the mean adversary reward
                    (+10 to every adversary when any of them touches the prey).
  simple_reference  N=2 agents, each must reach a landmark that only the other knows; an
                    action is move + 5 * word (5 moves x 10 words = 50). Team reward: the
                    mean of the agents' rewards (``local_ratio=0.5``).

Global state: ``env.state()`` (every agent's observation concatenated, prey included for
simple_tag). MPE never terminates; episodes are truncated after ``time_limit`` steps
(``max_cycles``, 25 by default). Every action is always available, so ``avail`` is all True
(given anyway so discrete consumers never special-case MPE). The B copies are independent
environments stepped in a Python loop.
"""

from __future__ import annotations

import importlib

import numpy as np

from ..schema import DatasetSpec
from .base import EnvAdapter, EnvInfo, StepOutput, episode_seeds

DEFAULT_TIME_LIMIT = 25
_MODULES = {
    "simple_spread": "simple_spread_v3",
    "simple_tag": "simple_tag_v3",
    "simple_reference": "simple_reference_v3",
}
_TEAM_REWARD = {
    "simple_spread": "mean of the 3 agents' rewards (local_ratio=0.5)",
    "simple_tag": "mean of the 3 adversaries' rewards (prey moves at random, outside the team)",
    "simple_reference": "mean of the 2 agents' rewards (local_ratio=0.5)",
}


class MPEAdapter(EnvAdapter):
    """B independent mpe2 parallel envs of one scenario, discrete actions.

    scenario:    "simple_spread", "simple_tag" or "simple_reference"
    batch_size:  number of parallel copies B
    time_limit:  steps per episode (MPE's ``max_cycles``); every episode ends truncated
    """

    def __init__(self, scenario: str, batch_size: int = 1, time_limit: int = DEFAULT_TIME_LIMIT):
        if scenario not in _MODULES:
            raise ValueError(f"unknown MPE scenario {scenario!r}; known: {sorted(_MODULES)}")
        if batch_size < 1 or time_limit < 1:
            raise ValueError(f"batch_size and time_limit must be >= 1, got {batch_size}, {time_limit}")
        module = importlib.import_module(f"mpe2.{_MODULES[scenario]}")
        kwargs = {"continuous_actions": False, "max_cycles": time_limit}
        if scenario == "simple_spread":
            kwargs["N"] = 3
        self.scenario = scenario
        self.batch_size = batch_size
        self.time_limit = time_limit
        self.envs = [module.parallel_env(**kwargs) for _ in range(batch_size)]
        env = self.envs[0]
        everyone = list(env.possible_agents)
        self.agents = [a for a in everyone if a.startswith("adversary")] if scenario == "simple_tag" else everyone
        self.others = [a for a in everyone if a not in self.agents]  # the random prey in simple_tag
        obs_dims = {int(env.observation_space(a).shape[0]) for a in self.agents}
        n_actions = {int(env.action_space(a).n) for a in self.agents}
        if len(obs_dims) != 1 or len(n_actions) != 1:
            raise ValueError(f"MPE {scenario}: expected a homogeneous team, got obs {obs_dims}, actions {n_actions}")
        env.reset(seed=0)
        state_dim = int(np.asarray(env.state()).shape[0])
        self.spec = DatasetSpec(
            n_agents=len(self.agents),
            obs_dim=obs_dims.pop(),
            state_dim=state_dim,
            action_type="discrete",
            n_actions=n_actions.pop(),
            env=f"mpe:{scenario}",
        )
        self.info = EnvInfo(
            env_id=self.spec.env,
            family="mpe",
            time_limit=time_limit,
            team_reward=_TEAM_REWARD[scenario],
            packages=("mpe2", "pettingzoo"),
        )
        self._t = np.zeros(batch_size, dtype=np.int64)
        self._seeds: np.random.Generator | None = None
        self._other_rng: np.random.Generator | None = None
        self._other_n = [int(env.action_space(a).n) for a in self.others]

    def _observe(self, b: int, obs_dict) -> tuple[np.ndarray, np.ndarray]:
        obs = np.stack([np.asarray(obs_dict[a], np.float32) for a in self.agents])
        return obs, np.asarray(self.envs[b].state(), np.float32)

    def _reset_one(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        obs_dict, _ = self.envs[b].reset(seed=int(self._seeds.integers(0, 2**31 - 1)))
        self._t[b] = 0
        return self._observe(b, obs_dict)

    def _all_avail(self) -> np.ndarray:
        return np.ones((self.batch_size, self.spec.n_agents, self.spec.n_actions), dtype=bool)

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._seeds = episode_seeds(seed)
        self._other_rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x0707]))
        pairs = [self._reset_one(b) for b in range(self.batch_size)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]), self._all_avail()

    def step(self, actions: np.ndarray) -> StepOutput:
        if self._seeds is None:
            raise ValueError(f"{self.info.env_id}: call reset(seed) before step")
        actions = self.check_actions(actions)
        B, N = self.batch_size, self.spec.n_agents
        obs = np.zeros((B, N, self.spec.obs_dim), np.float32)
        state = np.zeros((B, self.spec.state_dim), np.float32)
        final_obs, final_state = np.zeros_like(obs), np.zeros_like(state)
        agent_rewards = np.zeros((B, N), np.float32)
        truncated = np.zeros(B, bool)
        for b, env in enumerate(self.envs):
            act = {a: int(actions[b, i]) for i, a in enumerate(self.agents)}
            for a, n in zip(self.others, self._other_n, strict=True):
                act[a] = int(self._other_rng.integers(0, n))
            obs_dict, rew, _, trunc, _ = env.step(act)
            self._t[b] += 1
            agent_rewards[b] = [rew[a] for a in self.agents]
            truncated[b] = self._t[b] >= self.time_limit or any(trunc.values())
            o, s = self._observe(b, obs_dict)
            if truncated[b]:
                final_obs[b], final_state[b] = o, s
                o, s = self._reset_one(b)
            obs[b], state[b] = o, s
        terminal = np.zeros(B, bool)  # MPE has no terminal states
        info = {
            "done": truncated.copy(),
            "final_obs": final_obs,
            "final_state": final_state,
            "final_avail": self._all_avail(),
            "agent_rewards": agent_rewards,
        }
        return obs, state, self._all_avail(), agent_rewards.mean(axis=1), terminal, truncated, info

    def close(self) -> None:
        for env in self.envs:
            env.close()
