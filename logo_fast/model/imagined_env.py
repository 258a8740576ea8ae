"""A world model as a batched PettingZoo Parallel environment ("imagined" environment).

Online MARL code that speaks the PettingZoo Parallel API can train inside a fitted world
model. The environment is batched: it runs B imagined episodes at once, and every value in
the per-agent dicts is an array whose first axis is the batch row.

    env = ImaginedParallelEnv(model, starts=256, horizon=15, dataset=ds)
    obs, infos = env.reset(seed=0)              # obs[agent]: (B, agent_obs_dim)
    while env.agents:
        actions = {a: my_policy(obs[a], infos[a]["action_mask"]) for a in env.agents}
        obs, rewards, terms, truncs, infos = env.step(actions)   # rewards[a]: (B,)

Rows end independently: a row whose episode terminated (or whose u passed ``u_threshold``)
keeps its last observation, gets reward 0 and ``terminations`` True from then on, and its
actions are ignored. When every row has ended, or after ``horizon`` steps (``truncations``
True), ``agents`` becomes empty, as PettingZoo prescribes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data.schema import OfflineDataset


class ImaginedParallelEnv:
    """PettingZoo ``ParallelEnv``-style wrapper over a fitted world model, B episodes at a time."""

    metadata = {"name": "logo_fast_imagined_v0", "is_parallelizable": True, "render_modes": []}
    render_mode = None

    def __init__(
        self,
        model,
        starts: Any,
        horizon: int = 15,
        u_threshold: float | None = None,
        dataset: OfflineDataset | None = None,
        agent_names: list[str] | None = None,
        seed: int = 0,
    ):
        """model: a fitted world model; starts: as in ``rollout`` (int K, step indices, or a dict of
        tensors); horizon: steps before truncation; u_threshold: end a row once its u exceeds this;
        dataset: where start indices point (default the model's fit dataset); agent_names: default
        ``dataset.metadata["agents"]`` or ``agent_0 ...``; seed: draws int-form starts on reset."""
        model._require_net()
        self.model = model
        self.spec = model.spec
        self.horizon = int(horizon)
        self.u_threshold = u_threshold
        self.dataset = dataset if dataset is not None else model.fit_dataset
        self._starts = starts
        self._seed = seed
        names = agent_names
        if names is None and self.dataset is not None:
            names = self.dataset.metadata.get("agents")
        if names is None or len(names) != self.spec.n_agents:
            names = [f"agent_{i}" for i in range(self.spec.n_agents)]
        self.possible_agents = list(names)
        self.agents: list[str] = []
        self._obs = self._state = self._avail = self._alive = None
        self._t = 0

    # ---- spaces -------------------------------------------------------------------------------
    def observation_space(self, agent: str):
        import gymnasium

        i = self._index(agent)
        return gymnasium.spaces.Box(-np.inf, np.inf, shape=(self.spec.agent_obs_dims[i],), dtype=np.float32)

    def action_space(self, agent: str):
        import gymnasium

        i = self._index(agent)
        if self.spec.discrete:
            return gymnasium.spaces.Discrete(self.spec.n_actions)
        d = self.spec.agent_act_dims[i]
        if self.model.action_low is not None:
            low = self.model.action_low[i, :d].numpy()
            high = self.model.action_high[i, :d].numpy()
        else:
            low, high = -np.ones(d, np.float32), np.ones(d, np.float32)
        return gymnasium.spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    @property
    def max_num_agents(self) -> int:
        return len(self.possible_agents)

    @property
    def num_envs(self) -> int:
        """B, the number of imagined episodes run side by side."""
        return 0 if self._obs is None else int(self._obs.shape[0])

    def _index(self, agent: str) -> int:
        try:
            return self.possible_agents.index(agent)
        except ValueError:
            raise ValueError(f"unknown agent {agent!r}; agents are {self.possible_agents}") from None

    # ---- API ----------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None):
        from .rollout import _gather_starts

        gen = torch.Generator().manual_seed(self._seed if seed is None else seed)
        obs, state, avail, _ = _gather_starts(self.model, self._starts, self.dataset, gen)
        spec = self.spec
        B = obs.shape[0]
        act = torch.zeros((B, spec.n_agents) if spec.discrete else (B, spec.n_agents, spec.act_dim),
                          dtype=torch.int64 if spec.discrete else torch.float32)
        if spec.discrete and avail is not None:
            act = torch.as_tensor(np.asarray(avail)).long().argmax(-1)
        elif self.model.action_low is not None:
            act = torch.clamp(act, self.model.action_low, self.model.action_high)
        obs, state, _, avail = self.model._check(obs, state, act, avail, "ImaginedParallelEnv.reset")
        self._obs, self._state = obs.clone(), state.clone()
        self._avail = None if avail is None else avail.clone()
        self._alive = torch.ones(B, dtype=torch.bool, device=obs.device)
        self._u = torch.zeros(B, device=obs.device)
        self._t = 0
        self.agents = list(self.possible_agents)
        return self._observations(), self._infos()

    def _observations(self) -> dict[str, np.ndarray]:
        obs = self._obs.cpu().numpy()
        return {a: obs[:, i, : self.spec.agent_obs_dims[i]] for i, a in enumerate(self.possible_agents)}

    def _infos(self) -> dict[str, dict[str, np.ndarray]]:
        alive = self._alive.cpu().numpy()
        u = self._u.cpu().numpy()
        out = {}
        for i, a in enumerate(self.possible_agents):
            info: dict[str, np.ndarray] = {"alive": alive, "u": u}
            if self._avail is not None:
                info["action_mask"] = self._avail[:, i].cpu().numpy()
            out[a] = info
        return out

    def state(self) -> np.ndarray:
        """(B, state_dim) the current global state of every imagined episode."""
        if self._state is None:
            raise RuntimeError("ImaginedParallelEnv.state(): call reset() first")
        return self._state.cpu().numpy()

    def _joint_action(self, actions: dict[str, Any]) -> torch.Tensor:
        spec = self.spec
        B = self.num_envs
        problems = [f"missing action for {a!r}" for a in self.possible_agents if a not in actions]
        problems += [f"unknown agent {a!r}" for a in actions if a not in self.possible_agents]
        if problems:
            raise ValueError("ImaginedParallelEnv.step: " + "; ".join(problems))
        if spec.discrete:
            joint = torch.zeros(B, spec.n_agents, dtype=torch.int64)
        else:
            joint = torch.zeros(B, spec.n_agents, spec.act_dim)
        for i, a in enumerate(self.possible_agents):
            x = torch.as_tensor(np.asarray(actions[a]))
            want = (B,) if spec.discrete else (B, spec.agent_act_dims[i])
            if tuple(x.shape) != want:
                problems.append(f"{a}: action shape {tuple(x.shape)}, expected {want}")
                continue
            if spec.discrete:
                if x.is_floating_point():
                    problems.append(f"{a}: discrete actions must be integers, got {x.dtype}")
                    continue
                joint[:, i] = x.long()
            else:
                joint[:, i, : spec.agent_act_dims[i]] = x.float()
        if problems:
            raise ValueError("ImaginedParallelEnv.step: bad actions:\n  - " + "\n  - ".join(problems))
        return joint

    def step(self, actions: dict[str, Any]):
        """actions[agent]: (B,) int or (B, agent_act_dim) float. Returns (obs, rewards, terminations,
        truncations, infos), each a dict keyed by agent; rewards/terminations/truncations values are (B,)."""
        if not self.agents:
            raise RuntimeError("ImaginedParallelEnv.step: every episode has ended; call reset()")
        joint = self._joint_action(actions).to(self._obs.device)
        live = torch.nonzero(self._alive).flatten()
        reward = torch.zeros(self.num_envs, device=self._obs.device)
        av = None if self._avail is None else self._avail[live]
        o, s, a, av = self.model._check(self._obs[live], self._state[live], joint[live], av,
                                        "ImaginedParallelEnv.step")
        res = self.model._predict(o, s, a)
        self._obs[live] = res.next_obs
        self._state[live] = res.next_state
        if self._avail is not None:
            self._avail[live] = res.next_avail
        reward[live] = res.reward
        self._u[live] = res.u
        ended = res.terminal.clone()
        if self.u_threshold is not None:
            ended |= res.u > self.u_threshold
        self._alive[live[ended]] = False
        self._t += 1
        term = (~self._alive).cpu().numpy()
        trunc = np.full(self.num_envs, self._t >= self.horizon) & ~term
        rew = reward.cpu().numpy()
        obs, infos = self._observations(), self._infos()
        names = self.possible_agents
        if self._t >= self.horizon or not bool(self._alive.any()):
            self.agents = []
        return (obs, {a: rew for a in names}, {a: term for a in names}, {a: trunc for a in names}, infos)

    def close(self) -> None:
        self._obs = self._state = self._avail = self._alive = None
        self.agents = []
