"""Multi-Agent MuJoCo (gymnasium-robotics ``mamujoco_v1``) behind the batched adapter interface.

Scenarios (id ``mamujoco:<Robot>-<conf>``): HalfCheetah-6x1, Hopper-3x1, Ant-2x4, Walker2d-2x3
(any robot/agent_conf pair that mamujoco_v1 accepts works too). Each agent controls a group of
joints and observes its joints plus one neighbour (``agent_obsk=1``), so observation sizes
differ per agent (Hopper 3x1: 8, 9, 8) and are zero-padded; ``spec.agent_obs_dims`` and
``spec.agent_act_dims`` hold the true sizes.

Global state: ``env.state()``, the single-agent MuJoCo observation of the whole robot.
Team reward: the robot's reward (forward progress + healthy bonus - control cost); mamujoco
gives every agent that same number, so team reward = agent_0's reward.
Terminal: the robot became unhealthy (Hopper/Walker2d/Ant fell; HalfCheetah never terminates).
Truncated: ``time_limit`` steps (1000, the standard MuJoCo limit, by default) without termination.
The B copies are independent simulator instances stepped in a Python loop.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..schema import DatasetSpec
from .base import EnvAdapter, EnvInfo, StepOutput, episode_seeds, pad_rows

SCENARIOS = ("HalfCheetah-6x1", "Hopper-3x1", "Ant-2x4", "Walker2d-2x3")
DEFAULT_TIME_LIMIT = 1000


def _parse(name: str) -> tuple[str, str]:
    robot, sep, conf = name.partition("-")
    if not sep or not robot or not conf:
        raise ValueError(f"mamujoco scenario must look like 'Hopper-3x1', got {name!r}")
    return robot, conf


def _make_env(robot: str, conf: str, time_limit: int):
    with warnings.catch_warnings():
        # gymnasium-robotics warns about unrelated Adroit envs and mujoco about deprecated XML attributes.
        warnings.simplefilter("ignore")
        from gymnasium_robotics import mamujoco_v1

        return mamujoco_v1.parallel_env(robot, conf, max_episode_steps=time_limit)


class MaMuJoCoAdapter(EnvAdapter):
    """B independent mamujoco parallel envs; continuous per-agent actions, padded obs and actions.

    scenario:    "Hopper-3x1" style name
    batch_size:  number of parallel copies B
    time_limit:  steps before truncation (default 1000; shorter limits make quick tests and demos)
    """

    def __init__(self, scenario: str, batch_size: int = 1, time_limit: int = DEFAULT_TIME_LIMIT):
        if batch_size < 1 or time_limit < 1:
            raise ValueError(f"batch_size and time_limit must be >= 1, got {batch_size}, {time_limit}")
        robot, conf = _parse(scenario)
        self.scenario = scenario
        self.batch_size = batch_size
        self.time_limit = time_limit
        self.envs = [_make_env(robot, conf, time_limit) for _ in range(batch_size)]
        env = self.envs[0]
        self.agents = list(env.possible_agents)
        obs_dims = tuple(int(env.observation_space(a).shape[0]) for a in self.agents)
        act_dims = tuple(int(env.action_space(a).shape[0]) for a in self.agents)
        state_dim = int(env.single_agent_env.observation_space.shape[0])
        self.spec = DatasetSpec(
            n_agents=len(self.agents),
            obs_dim=max(obs_dims),
            state_dim=state_dim,
            action_type="continuous",
            act_dim=max(act_dims),
            agent_obs_dims=obs_dims,
            agent_act_dims=act_dims,
            env=f"mamujoco:{scenario}",
        )
        self.action_low = pad_rows([env.action_space(a).low for a in self.agents], self.spec.act_dim)
        self.action_high = pad_rows([env.action_space(a).high for a in self.agents], self.spec.act_dim)
        self.info = EnvInfo(
            env_id=self.spec.env,
            family="mamujoco",
            time_limit=time_limit,
            team_reward="the robot's shared reward (identical for every agent; agent_0's value)",
            packages=("mujoco", "gymnasium", "gymnasium_robotics"),
        )
        self._t = np.zeros(batch_size, dtype=np.int64)
        self._seeds: np.random.Generator | None = None

    # ---- conversions -------------------------------------------------------------------------
    def _observe(self, b: int, obs_dict) -> tuple[np.ndarray, np.ndarray]:
        obs = pad_rows([obs_dict[a] for a in self.agents], self.spec.obs_dim)
        state = np.asarray(self.envs[b].state(), dtype=np.float32)
        return obs, state

    def _reset_one(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        seed = int(self._seeds.integers(0, 2**31 - 1))
        obs_dict, _ = self.envs[b].reset(seed=seed)
        self._t[b] = 0
        return self._observe(b, obs_dict)

    # ---- interface ---------------------------------------------------------------------------
    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray, None]:
        self._seeds = episode_seeds(seed)
        pairs = [self._reset_one(b) for b in range(self.batch_size)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]), None

    def step(self, actions: np.ndarray) -> StepOutput:
        if self._seeds is None:
            raise ValueError(f"{self.info.env_id}: call reset(seed) before step")
        actions = self.check_actions(actions)
        B, N = self.batch_size, self.spec.n_agents
        obs = np.zeros((B, N, self.spec.obs_dim), np.float32)
        state = np.zeros((B, self.spec.state_dim), np.float32)
        final_obs = np.zeros_like(obs)
        final_state = np.zeros_like(state)
        reward = np.zeros(B, np.float32)
        terminal = np.zeros(B, bool)
        truncated = np.zeros(B, bool)
        dims = self.spec.agent_act_dims
        for b, env in enumerate(self.envs):
            # Clip to the action space so behaviour noise can never push the simulator out of range.
            act = {
                a: np.clip(actions[b, i, : dims[i]], self.action_low[i, : dims[i]], self.action_high[i, : dims[i]])
                for i, a in enumerate(self.agents)
            }
            obs_dict, rew, term, trunc, _ = env.step(act)
            self._t[b] += 1
            reward[b] = rew[self.agents[0]]
            terminal[b] = bool(term[self.agents[0]])
            truncated[b] = (not terminal[b]) and (bool(trunc[self.agents[0]]) or self._t[b] >= self.time_limit)
            o, s = self._observe(b, obs_dict)
            if terminal[b] or truncated[b]:
                final_obs[b], final_state[b] = o, s
                o, s = self._reset_one(b)
            obs[b], state[b] = o, s
        done = terminal | truncated
        info = {
            "done": done,
            "final_obs": final_obs,
            "final_state": final_state,
            "agent_rewards": np.repeat(reward[:, None], N, axis=1),
        }
        return obs, state, None, reward, terminal, truncated, info

    def close(self) -> None:
        for env in self.envs:
            env.close()
