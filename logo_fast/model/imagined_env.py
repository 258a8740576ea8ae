"""A world model as a PettingZoo ``ParallelEnv``: one imagined episode at a time ("imagined" environment).

Online MARL code that speaks the PettingZoo Parallel API (SuperSuit, TorchRL's
``PettingZooWrapper``, BenchMARL, PettingZoo's own tests) can train or evaluate inside a
fitted world model. ``ImaginedParallelEnv`` follows the unbatched contract exactly:

    env = ImaginedParallelEnv(model, horizon=15, dataset=ds)
    obs, infos = env.reset(seed=0)        # obs[agent]: (agent_obs_dim,) float32 inside observation_space(agent)
    while env.agents:
        actions = {a: env.action_space(a).sample(infos[a].get("action_mask")) for a in env.agents}
        obs, rewards, terms, truncs, infos = env.step(actions)   # rewards[a]: float (the team reward)

- each ``reset`` branches from one start state, drawn (with the env's generator, seeded by
  ``reset(seed=...)``) from ``starts``: every step of the dataset by default, a pool of step
  indices, or a pool of given states;
- actions: an int in ``Discrete(n_actions)`` or a float32 array in the agent's ``Box`` (the
  dataset's action bounds; heterogeneous agents have their own sizes);
- discrete tasks with masks put ``action_mask`` ((n_actions,) int8, PettingZoo's convention,
  usable as ``action_space(a).sample(mask)``) in ``infos``; an action the mask forbids is
  replaced by the agent's first available action (``info["action_replaced"]`` says so), or
  raises with ``unavailable_action="raise"``. The action space allows every action, so
  PettingZoo's contract requires the env to accept it, and the model never saw such actions;
- ``state()`` / ``state_space``: the predicted global state (S,) float32;
- observations and states lie inside their spaces: the spaces' bounds are the data's bounds
  widened by the model's ``clip_margin``, which every prediction is clipped to;
- a predicted termination sets ``terminations`` for every agent; the horizon, or ``u`` passing
  ``u_threshold`` (the model stops being trusted, the episode did not end), set
  ``truncations``; then ``agents`` is empty. ``infos[a]["u"]`` is the step's uncertainty.

For B imagined episodes at once use ``ImaginedVectorEnv`` (batched values and spaces).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

try:
    import pettingzoo
except ImportError as e:  # an optional dependency: say which extra brings it
    raise ImportError("ImaginedParallelEnv needs pettingzoo: pip install 'logo_fast[mpe]' (or pettingzoo)") from e

from ..data.schema import OfflineDataset
from .imagined_vector_env import default_agent_names, member_generator, single_spaces, start_states

UNAVAILABLE_ACTION_CHOICES = ("first_available", "raise")


class ImaginedParallelEnv(pettingzoo.ParallelEnv):
    """PettingZoo ``ParallelEnv`` over a fitted world model: one imagined episode per reset, unbatched values."""

    metadata = {"name": "logo_fast_imagined_v0", "is_parallelizable": True, "render_modes": ["ansi"]}

    def __init__(
        self,
        model,
        starts: Any = None,
        horizon: int = 15,
        u_threshold: float | None = None,
        dataset: OfflineDataset | None = None,
        agent_names: list[str] | None = None,
        seed: int = 0,
        render_mode: str | None = None,
        unavailable_action: str = "first_available",
    ):
        """model: a fitted world model.
        starts: where episodes begin; each reset draws one uniformly: None or 1 (every step of
                ``dataset``), 1-d step indices into ``dataset``, or a dict of tensors ``{"obs"
                (K, N, D), "state" (K, S), "avail" (K, N, A) (discrete; default all available)}``.
        horizon: steps before truncation; u_threshold: truncate once u exceeds this;
        dataset: where indices point (default the model's fit dataset);
        agent_names: default ``dataset.metadata["agents"]`` or ``agent_0 ...``;
        seed: seeds the start draws (and an ensemble's member sampling) until ``reset(seed=...)``;
        render_mode: None or "ansi" (``render()`` returns a line of text);
        unavailable_action: "first_available" (replace a masked-out action) or "raise"."""
        model._require_net()
        problems = []
        if not isinstance(horizon, int | np.integer) or horizon < 1:
            problems.append(f"horizon must be an int >= 1, got {horizon!r}")
        if u_threshold is not None and not np.isfinite(u_threshold):
            problems.append(f"u_threshold must be finite, got {u_threshold}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            problems.append(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        if unavailable_action not in UNAVAILABLE_ACTION_CHOICES:
            problems.append(
                f"unavailable_action must be one of {UNAVAILABLE_ACTION_CHOICES}, got {unavailable_action!r}")
        dataset = dataset if dataset is not None else model.fit_dataset
        pool, pool_problems = self._start_pool(model, starts, dataset)
        problems += pool_problems
        if problems:
            raise ValueError("ImaginedParallelEnv: bad arguments:\n  - " + "\n  - ".join(problems))
        self.model = model
        self.spec = model.spec
        self.horizon = int(horizon)
        self.u_threshold = u_threshold
        self.dataset = dataset
        self.render_mode = render_mode
        self.unavailable_action = unavailable_action
        self._pool = pool
        self._generator = torch.Generator().manual_seed(int(seed))
        self.possible_agents = default_agent_names(model, dataset, agent_names)
        self.agents: list[str] = []
        self.observation_spaces, self.action_spaces, self.state_space = single_spaces(model, self.possible_agents)
        self._obs = self._state = self._avail = None
        self._u = 0.0
        self._reward = 0.0
        self._t = 0

    @staticmethod
    def _start_pool(model, starts: Any, dataset: OfflineDataset | None) -> tuple[Any, list[str]]:
        """-> (("dataset", T) | ("indices", (K,) int64) | ("states", dict), problems)."""
        if starts is None or (isinstance(starts, int | np.integer) and not isinstance(starts, bool) and starts == 1):
            if dataset is None:
                return None, ["starts index a dataset but no dataset is known; pass dataset= (or fit the model)"]
            return ("dataset", len(dataset)), []
        if isinstance(starts, int | np.integer):
            return None, [f"starts={starts}: ImaginedParallelEnv runs one episode at a time; for {starts} at once "
                          "use ImaginedVectorEnv(model, starts=...), or pass step indices to draw from"]
        if isinstance(starts, dict):
            missing = [k for k in ("obs", "state") if k not in starts]
            if missing:
                return None, [f"starts dict lacks {missing} (needs obs, state and, for discrete tasks, avail)"]
            K = int(starts["obs"].shape[0])
            return (("states", starts), []) if K >= 1 else (None, ["starts dict holds no rows"])
        idx = np.asarray(starts.cpu() if isinstance(starts, torch.Tensor) else starts)
        if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu":
            return None, [f"starts must be None, a non-empty 1-d integer array of step indices or a dict of "
                          f"tensors; got shape {idx.shape} dtype {idx.dtype}"]
        if dataset is None:
            return None, ["starts index a dataset but no dataset is known; pass dataset= (or fit the model)"]
        if int(idx.min()) < 0 or int(idx.max()) >= len(dataset):
            return None, [f"starts out of range [0, {len(dataset)}): min {int(idx.min())}, max {int(idx.max())}"]
        return ("indices", idx.astype(np.int64)), []

    # ---- spaces -------------------------------------------------------------------------------
    def observation_space(self, agent: str):
        """Box (agent_obs_dim,) float32 (the same object on every call, as PettingZoo asks)."""
        return self.observation_spaces[self._name(agent)]

    def action_space(self, agent: str):
        """Discrete(n_actions) or Box (agent_act_dim,) float32 within the dataset's action bounds."""
        return self.action_spaces[self._name(agent)]

    def _name(self, agent: str) -> str:
        if agent not in self.observation_spaces:
            raise ValueError(f"unknown agent {agent!r}; agents are {self.possible_agents}")
        return agent

    # ---- API ----------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None):
        """-> (obs {agent: (agent_obs_dim,) float32}, infos {agent: {"u": 0.0, "action_mask" (discrete)}}).

        ``seed`` re-seeds the env's generator (same seed, same start and same episode under the
        same actions); without it the generator continues. ``options`` is accepted and unused.
        """
        if seed is not None:
            self._generator.manual_seed(int(seed))
        kind, pool = self._pool
        if kind == "dataset":
            starts = torch.randint(pool, (1,), generator=self._generator)
        elif kind == "indices":
            starts = torch.as_tensor(pool[int(torch.randint(len(pool), (1,), generator=self._generator))])[None]
        else:
            k = int(torch.randint(int(pool["obs"].shape[0]), (1,), generator=self._generator))
            starts = {name: v[k : k + 1] for name, v in pool.items()}
        obs, state, avail = start_states(self.model, starts, self.dataset, None, "ImaginedParallelEnv.reset")
        self._member_gen = member_generator(self.model, self._generator)
        self._obs, self._state, self._avail = obs, state, avail
        self._u, self._reward, self._t = 0.0, 0.0, 0
        self.agents = list(self.possible_agents)
        return self._observations(), self._infos(dict.fromkeys(self.possible_agents, False))

    def _observations(self) -> dict[str, np.ndarray]:
        obs = self._obs[0].cpu().numpy().astype(np.float32, copy=False)
        return {a: obs[i, : self.spec.agent_obs_dims[i]].copy() for i, a in enumerate(self.possible_agents)}

    def _infos(self, replaced: dict[str, bool]) -> dict[str, dict[str, Any]]:
        out = {}
        masks = None if self._avail is None else self._avail[0].cpu().numpy().astype(np.int8)
        for i, a in enumerate(self.possible_agents):
            info: dict[str, Any] = {"u": self._u}
            if masks is not None:
                info["action_mask"] = masks[i].copy()
                info["action_replaced"] = replaced[a]
            out[a] = info
        return out

    def state(self) -> np.ndarray:
        """(state_dim,) float32: the current (predicted) global state, inside ``state_space``."""
        if self._state is None:
            raise RuntimeError("ImaginedParallelEnv.state(): call reset() first")
        return self._state[0].cpu().numpy().astype(np.float32, copy=True)

    def _joint_action(self, actions: dict[str, Any]) -> tuple[torch.Tensor, dict[str, bool]]:
        """-> joint action (1, N) int64 or (1, N, act_dim) float32, {agent: replaced by the mask}."""
        spec = self.spec
        problems = [f"missing action for {a!r}" for a in self.agents if a not in actions]
        problems += [f"unknown agent {a!r}" for a in actions if a not in self.possible_agents]
        if problems:
            raise ValueError("ImaginedParallelEnv.step: " + "; ".join(problems))
        replaced = dict.fromkeys(self.possible_agents, False)
        if spec.discrete:
            joint = torch.zeros(1, spec.n_agents, dtype=torch.int64)
        else:
            joint = torch.zeros(1, spec.n_agents, spec.act_dim)
        mask = None if self._avail is None else self._avail[0].cpu()
        for i, a in enumerate(self.possible_agents):
            x = np.asarray(actions[a])
            if spec.discrete:
                if x.shape not in ((), (1,)) or x.dtype.kind not in "iu":
                    problems.append(f"{a}: expected one integer action in Discrete({spec.n_actions}), "
                                    f"got shape {x.shape} dtype {x.dtype}")
                    continue
                act = int(x.reshape(()))
                if not 0 <= act < spec.n_actions:
                    problems.append(f"{a}: action {act} outside Discrete({spec.n_actions})")
                    continue
                if mask is not None and not bool(mask[i, act]):
                    if self.unavailable_action == "raise":
                        problems.append(f"{a}: action {act} is unavailable (action_mask {mask[i].int().tolist()})")
                        continue
                    act, replaced[a] = int(mask[i].long().argmax()), True
                joint[0, i] = act
            else:
                d = spec.agent_act_dims[i]
                if x.shape != (d,) or x.dtype.kind not in "fiu":
                    problems.append(f"{a}: expected a float array of shape ({d},), got shape {x.shape} dtype {x.dtype}")
                    continue
                joint[0, i, :d] = torch.as_tensor(x.astype(np.float32))
        if problems:
            raise ValueError("ImaginedParallelEnv.step: bad actions:\n  - " + "\n  - ".join(problems))
        return joint, replaced

    def step(self, actions: dict[str, Any]):
        """actions[agent]: an int (discrete) or an (agent_act_dim,) float array (continuous).

        Returns (obs, rewards, terminations, truncations, infos), dicts keyed by agent: obs
        (agent_obs_dim,) float32, rewards float (the predicted team reward, the same for every
        agent), terminations/truncations bool, infos {"u", "action_mask", "action_replaced"}.
        """
        if not self.agents:
            raise RuntimeError("ImaginedParallelEnv.step: the episode has ended; call reset()")
        joint, replaced = self._joint_action(actions)
        o, s, a, av = self.model._check(self._obs, self._state, joint.to(self._obs.device), self._avail,
                                        "ImaginedParallelEnv.step")
        res = self.model._predict(o, s, a, self._member_gen, state_is_prediction=self._t > 0)
        self._obs, self._state = res.next_obs.clone(), res.next_state.clone()
        if self._avail is not None:
            self._avail = res.next_avail.clone()
        self._u, self._reward = float(res.u[0]), float(res.reward[0])
        self._t += 1
        terminated = bool(res.terminal[0])
        truncated = not terminated and (
            self._t >= self.horizon or (self.u_threshold is not None and self._u > self.u_threshold))
        names = self.possible_agents
        out = (self._observations(), dict.fromkeys(names, self._reward), dict.fromkeys(names, terminated),
               dict.fromkeys(names, truncated), self._infos(replaced))
        if terminated or truncated:
            self.agents = []
        return out

    def render(self) -> str | None:
        """"ansi": one line with the step, the last reward and u; None (with a warning) without a render_mode."""
        if self.render_mode is None:
            import gymnasium

            gymnasium.logger.warn("ImaginedParallelEnv.render() called without a render_mode; pass render_mode='ansi'")
            return None
        return f"t={self._t} reward={self._reward:.4f} u={self._u:.4f} agents={len(self.agents)}"

    def close(self) -> None:
        self._obs = self._state = self._avail = None
        self.agents = []
