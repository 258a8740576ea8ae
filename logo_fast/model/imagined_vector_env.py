"""A world model as a *vector* of imagined episodes with PettingZoo-Parallel-style dicts.

``ImaginedVectorEnv`` runs B imagined episodes side by side, one per start state, in one
model call per step. Every value in its per-agent dicts carries the batch axis first, and so
do its spaces (gymnasium's vector convention: ``observation_space(agent)`` is the batched
space, ``single_observation_space(agent)`` one episode's):

    env = ImaginedVectorEnv(model, starts=256, horizon=15, dataset=ds)
    obs, infos = env.reset(seed=0)              # obs[agent]: (B, agent_obs_dim) float32
    while env.agents:
        actions = {a: my_policy(obs[a], infos[a]["action_mask"]) for a in env.agents}
        obs, rewards, terms, truncs, infos = env.step(actions)   # rewards[a]: (B,)

It is deliberately *not* a ``pettingzoo.ParallelEnv`` (that contract is one episode with
unbatched values: use ``ImaginedParallelEnv``) and not a gymnasium ``VectorEnv`` (rows do
not auto-reset). Rows end independently: a row whose episode terminated, or whose ``u``
passed ``u_threshold`` (a truncation: the episode did not end, the model stopped being
trusted), keeps its last observation, gets reward 0 and its flag from then on, and its
actions are ignored. When every row has ended, or after ``horizon`` steps (``truncations``
True for rows still running), ``agents`` becomes empty.

The helpers below (spaces from the model's bounds, start states, one model step) are shared
with ``ImaginedParallelEnv``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data.schema import OfflineDataset
from .rollout import gather_starts

_HUGE = 3.0e38  # fed through the model's clip functions to read the bounds they clip to


# ---- helpers shared with ImaginedParallelEnv ---------------------------------------------------
def default_agent_names(model, dataset: OfflineDataset | None, agent_names: list[str] | None) -> list[str]:
    """``agent_names``, else ``dataset.metadata["agents"]``, else ``agent_0 ... agent_{N-1}``."""
    n = model.spec.n_agents
    if agent_names is not None:
        names = [str(a) for a in agent_names]
        problems = []
        if len(names) != n:
            problems.append(f"agent_names has {len(names)} names for {n} agents")
        if len(set(names)) != len(names):
            problems.append(f"agent_names has duplicates: {names}")
        if problems:
            raise ValueError("imagined env: bad agent_names:\n  - " + "\n  - ".join(problems))
        return names
    names = dataset.metadata.get("agents") if dataset is not None else None
    if names is None or len(names) != n or len(set(names)) != n:
        names = [f"agent_{i}" for i in range(n)]
    return [str(a) for a in names]


def _clip_bounds(model, clip_name: str, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) float32 of ``shape``: what ``model.net.<clip_name>`` clips to (±inf without one)."""
    clip = getattr(model.net, clip_name, None)
    if clip is None:
        return np.full(shape, -np.inf, np.float32), np.full(shape, np.inf, np.float32)
    big = torch.full((1, *shape), _HUGE, device=model.device)
    with torch.no_grad():
        lo, hi = clip(-big)[0], clip(big)[0]
    return lo.float().cpu().numpy(), hi.float().cpu().numpy()


def single_spaces(model, names: list[str]) -> tuple[dict, dict, Any]:
    """({agent: obs Box (agent_obs_dim,)}, {agent: Discrete(n_actions) or Box (agent_act_dim,)}, state Box (S,)).

    Observation and state bounds are the ones every imagined value is clipped to (the data's
    bounds widened by ``config.clip_margin``), so each value lies inside its space.
    """
    import gymnasium

    spec = model.spec
    obs_lo, obs_hi = _clip_bounds(model, "clip_obs", (spec.n_agents, spec.obs_dim))
    st_lo, st_hi = _clip_bounds(model, "clip_state", (spec.state_dim,))
    obs_spaces, act_spaces = {}, {}
    for i, a in enumerate(names):
        d = spec.agent_obs_dims[i]
        obs_spaces[a] = gymnasium.spaces.Box(obs_lo[i, :d], obs_hi[i, :d], dtype=np.float32)
        if spec.discrete:
            act_spaces[a] = gymnasium.spaces.Discrete(spec.n_actions)
        else:
            k = spec.agent_act_dims[i]
            if model.action_low is not None:
                low = model.action_low[i, :k].cpu().numpy().astype(np.float32)
                high = model.action_high[i, :k].cpu().numpy().astype(np.float32)
            else:
                low, high = -np.ones(k, np.float32), np.ones(k, np.float32)
            act_spaces[a] = gymnasium.spaces.Box(low, high, dtype=np.float32)
    return obs_spaces, act_spaces, gymnasium.spaces.Box(st_lo, st_hi, dtype=np.float32)


def start_states(model, starts: Any, dataset: OfflineDataset | None, generator: torch.Generator | None, what: str):
    """Checked, clipped private copies of the start rows: obs (B, N, D), state (B, S), avail (B, N, A) or None.

    ``starts`` as in ``rollout``: an int K (drawn with ``generator``), 1-d dataset indices, or a
    dict of tensors ``{"obs", "state", "avail"}``.
    """
    spec = model.spec
    obs, state, avail, _ = gather_starts(model, starts, dataset, generator)
    B = int(obs.shape[0])
    # The first available action (discrete) or the clamped zero action lets step()'s checks
    # validate the start rows; the action itself is thrown away.
    if spec.discrete:
        av = torch.as_tensor(np.asarray(avail.cpu() if isinstance(avail, torch.Tensor) else avail))
        act = av.to(torch.bool).long().argmax(-1) if av.dim() == 3 else torch.zeros(B, spec.n_agents, dtype=torch.long)
    else:
        act = torch.zeros(B, spec.n_agents, spec.act_dim)
        if model.action_low is not None:
            act = torch.clamp(act, model.action_low.cpu(), model.action_high.cpu())
    obs, state, _, avail = model._check(obs, state, act, avail, what)
    obs, state = model.net.clip_obs(obs).clone(), model.net.clip_state(state).clone()
    return obs, state, None if avail is None else avail.clone()


def member_generator(model, generator: torch.Generator) -> torch.Generator | None:
    """For an ensemble that samples members (MOPO), a device generator seeded from ``generator``; else None."""
    if model.kind != "ensemble" or not getattr(model.config, "sample_members", False):
        return None
    seed = int(torch.randint(2**62, (1,), generator=generator))
    return torch.Generator(device=model.device).manual_seed(seed)


def batch_size_of(starts: Any) -> int:
    """B for ``starts`` in any of ``rollout``'s forms (checked again, fully, on reset)."""
    if isinstance(starts, dict):
        if "obs" not in starts:
            raise ValueError("imagined env: starts dict lacks 'obs' (needs obs, state and, for discrete tasks, avail)")
        return int(starts["obs"].shape[0])
    if isinstance(starts, int | np.integer):
        if starts < 1:
            raise ValueError(f"imagined env: number of starts must be >= 1, got {starts}")
        return int(starts)
    return int(np.shape(starts)[0]) if np.ndim(starts) >= 1 else 0


# ---- the vector env ---------------------------------------------------------------------------
class ImaginedVectorEnv:
    """B imagined episodes at once over a fitted world model; PettingZoo-Parallel-style dicts of (B, ...) arrays."""

    metadata = {"name": "logo_fast_imagined_vector_v0", "is_parallelizable": True, "render_modes": []}
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
        """model: a fitted world model; starts: as in ``rollout`` (int K: K dataset steps drawn on
        every reset; 1-d step indices; or a dict of tensors), B = the number of starts; horizon:
        steps before truncation; u_threshold: truncate a row once its u exceeds this; dataset:
        where start indices point (default the model's fit dataset); agent_names: default
        ``dataset.metadata["agents"]`` or ``agent_0 ...``; seed: draws int-form starts (and
        ensemble members) on a reset without a seed."""
        import gymnasium

        model._require_net()
        problems = []
        if not isinstance(horizon, int | np.integer) or horizon < 1:
            problems.append(f"horizon must be an int >= 1, got {horizon!r}")
        if u_threshold is not None and not np.isfinite(u_threshold):
            problems.append(f"u_threshold must be finite, got {u_threshold}")
        try:
            B = batch_size_of(starts)
        except ValueError as e:
            problems.append(str(e).removeprefix("imagined env: "))
            B = 0
        else:
            if B < 1:
                problems.append(f"starts must hold at least one start, got {starts!r}")
        if problems:
            raise ValueError("ImaginedVectorEnv: bad arguments:\n  - " + "\n  - ".join(problems))
        self.model = model
        self.spec = model.spec
        self.horizon = int(horizon)
        self.u_threshold = u_threshold
        self.dataset = dataset if dataset is not None else model.fit_dataset
        self._starts = starts
        self._seed = seed
        self.num_envs = B
        self.possible_agents = default_agent_names(model, self.dataset, agent_names)
        self.agents: list[str] = []
        obs_sp, act_sp, state_sp = single_spaces(model, self.possible_agents)
        batch = gymnasium.vector.utils.batch_space
        self._single_obs, self._single_act, self.single_state_space = obs_sp, act_sp, state_sp
        self._obs_spaces = {a: batch(s, B) for a, s in obs_sp.items()}
        self._act_spaces = {a: batch(s, B) for a, s in act_sp.items()}
        self.state_space = batch(state_sp, B)
        self._obs = self._state = self._avail = self._alive = self._ended_by = None
        self._t = 0

    # ---- spaces -------------------------------------------------------------------------------
    def observation_space(self, agent: str):
        """Box (B, agent_obs_dim): one row per imagined episode."""
        return self._obs_spaces[self._name(agent)]

    def action_space(self, agent: str):
        """MultiDiscrete([n_actions] * B) or Box (B, agent_act_dim)."""
        return self._act_spaces[self._name(agent)]

    def single_observation_space(self, agent: str):
        """Box (agent_obs_dim,): one episode's observation."""
        return self._single_obs[self._name(agent)]

    def single_action_space(self, agent: str):
        """Discrete(n_actions) or Box (agent_act_dim,): one episode's action."""
        return self._single_act[self._name(agent)]

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    @property
    def max_num_agents(self) -> int:
        return len(self.possible_agents)

    def _name(self, agent: str) -> str:
        if agent not in self._single_obs:
            raise ValueError(f"unknown agent {agent!r}; agents are {self.possible_agents}")
        return agent

    # ---- API ----------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None):
        """-> (obs {agent: (B, agent_obs_dim) float32}, infos {agent: {"alive", "u", "action_mask"}})."""
        gen = torch.Generator().manual_seed(self._seed if seed is None else seed)
        obs, state, avail = start_states(self.model, self._starts, self.dataset, gen, "ImaginedVectorEnv.reset")
        self._member_gen = member_generator(self.model, gen)
        self._obs, self._state, self._avail = obs, state, avail
        B = obs.shape[0]
        self._alive = torch.ones(B, dtype=torch.bool, device=obs.device)
        self._truncated = torch.zeros(B, dtype=torch.bool, device=obs.device)
        self._u = torch.zeros(B, device=obs.device)
        self._t = 0
        self.agents = list(self.possible_agents)
        return self._observations(), self._infos()

    def _observations(self) -> dict[str, np.ndarray]:
        obs = self._obs.cpu().numpy().astype(np.float32, copy=False)
        return {a: obs[:, i, : self.spec.agent_obs_dims[i]].copy() for i, a in enumerate(self.possible_agents)}

    def _infos(self) -> dict[str, dict[str, np.ndarray]]:
        alive = self._alive.cpu().numpy()
        u = self._u.cpu().numpy()
        out = {}
        for i, a in enumerate(self.possible_agents):
            info: dict[str, np.ndarray] = {"alive": alive.copy(), "u": u.copy()}
            if self._avail is not None:
                info["action_mask"] = self._avail[:, i].cpu().numpy()
            out[a] = info
        return out

    def state(self) -> np.ndarray:
        """(B, state_dim) float32: the current global state of every imagined episode."""
        if self._state is None:
            raise RuntimeError("ImaginedVectorEnv.state(): call reset() first")
        return self._state.cpu().numpy().astype(np.float32, copy=False)

    def _joint_action(self, actions: dict[str, Any]) -> torch.Tensor:
        spec = self.spec
        B = self.num_envs
        problems = [f"missing action for {a!r}" for a in self.possible_agents if a not in actions]
        problems += [f"unknown agent {a!r}" for a in actions if a not in self.possible_agents]
        if problems:
            raise ValueError("ImaginedVectorEnv.step: " + "; ".join(problems))
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
                if x.is_floating_point() or x.dtype == torch.bool:
                    problems.append(f"{a}: discrete actions must be integers, got {x.dtype}")
                    continue
                joint[:, i] = x.long()
            else:
                joint[:, i, : spec.agent_act_dims[i]] = x.float()
        if problems:
            raise ValueError("ImaginedVectorEnv.step: bad actions:\n  - " + "\n  - ".join(problems))
        return joint

    def step(self, actions: dict[str, Any]):
        """actions[agent]: (B,) int or (B, agent_act_dim) float (rows that ended are ignored but
        must be valid). Returns (obs, rewards, terminations, truncations, infos), dicts keyed by
        agent; rewards/terminations/truncations values are (B,)."""
        if not self.agents:
            raise RuntimeError("ImaginedVectorEnv.step: every episode has ended; call reset()")
        joint = self._joint_action(actions).to(self._obs.device)
        live = torch.nonzero(self._alive).flatten()
        reward = torch.zeros(self.num_envs, device=self._obs.device)
        av = None if self._avail is None else self._avail[live]
        o, s, a, av = self.model._check(self._obs[live], self._state[live], joint[live], av, "ImaginedVectorEnv.step")
        res = self.model._predict(o, s, a, self._member_gen, state_is_prediction=self._t > 0)
        self._obs[live] = res.next_obs
        self._state[live] = res.next_state
        if self._avail is not None:
            self._avail[live] = res.next_avail
        reward[live] = res.reward
        self._u[live] = res.u
        cut = torch.zeros_like(res.terminal) if self.u_threshold is None else (res.u > self.u_threshold) & ~res.terminal
        self._truncated[live[cut]] = True
        self._alive[live[res.terminal | cut]] = False
        self._t += 1
        trunc = self._truncated.clone()
        if self._t >= self.horizon:
            trunc |= self._alive
        term = (~self._alive & ~self._truncated).cpu().numpy()
        trunc = trunc.cpu().numpy()
        rew = reward.cpu().numpy().astype(np.float32, copy=False)
        obs, infos = self._observations(), self._infos()
        names = self.possible_agents
        if self._t >= self.horizon or not bool(self._alive.any()):
            self.agents = []
        return ({a: obs[a] for a in names}, {a: rew.copy() for a in names}, {a: term.copy() for a in names},
                {a: trunc.copy() for a in names}, infos)

    def close(self) -> None:
        self._obs = self._state = self._avail = self._alive = None
        self.agents = []
