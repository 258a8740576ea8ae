"""Offline multi-agent learners: MACQL (discrete, continuous) and behaviour cloning, behind one protocol.

    MACQLDiscrete     per-agent Q (shared weights + agent id), QMIX mixer, CQL over available actions
    MACQLContinuous   per-agent tanh-Gaussian actors, centralised twin critic, CQL on sampled joint actions
    BCDiscrete        cross-entropy behaviour cloning over available actions
    BCContinuous      MSE behaviour cloning in the action box

The training pipeline (``logo_fast.pipeline.train``) drives any object that follows the
``Learner`` protocol: ``update(batch) -> dict of floats``, ``act(obs, avail, deterministic) ->
actions``, ``state_dict()`` / ``load_state_dict()`` (networks, optimisers, step count, RNG).
A batch is the dict ``UncertaintyWeightedReplay.sample`` returns (see ``learners.base``).
A custom learner, e.g. an independent-agent CQL-free Q-learner::

    import torch
    from logo_fast.learners.base import agent_inputs, masked_argmax, mlp

    class IndependentQ:
        def __init__(self, spec, gamma=0.99, lr=1e-3, seed=0):
            torch.manual_seed(seed)
            self.q = mlp([spec.obs_dim + spec.n_agents, 128, spec.n_actions])
            self.opt, self.gamma, self.n_updates = torch.optim.Adam(self.q.parameters(), lr), gamma, 0

        def update(self, batch):
            q = self.q(agent_inputs(batch["obs"])).gather(-1, batch["actions"].unsqueeze(-1)).squeeze(-1)
            with torch.no_grad():
                nq = self.q(agent_inputs(batch["next_obs"])).masked_fill(~batch["next_avail"], -1e9).amax(-1)
                y = batch["rewards"][:, None] + self.gamma * (~batch["terminals"])[:, None] * nq
            loss = ((q - y) ** 2).mean()
            self.opt.zero_grad(); loss.backward(); self.opt.step(); self.n_updates += 1
            return {"loss": loss.item()}

        def act(self, obs, avail=None, deterministic=True):
            return masked_argmax(self.q(agent_inputs(obs)), avail)

        def state_dict(self):
            return {"q": self.q.state_dict(), "opt": self.opt.state_dict(), "n_updates": self.n_updates}

        def load_state_dict(self, s):
            self.q.load_state_dict(s["q"]); self.opt.load_state_dict(s["opt"]); self.n_updates = s["n_updates"]

``tests/learners/test_protocol.py`` runs this example (register it with
``logo_fast.learners.LEARNERS`` to train it with ``logo-fast train``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import Learner
from .bc import BCConfig, BCContinuous, BCDiscrete
from .macql_continuous import MACQLContinuous, MACQLContinuousConfig
from .macql_discrete import MACQLDiscrete, MACQLDiscreteConfig


def _macql(spec, configs: dict[str, Any], action_low=None, action_high=None) -> Learner:
    if spec.discrete:
        return MACQLDiscrete(spec, configs.get("macql"))
    return MACQLContinuous(spec, configs.get("macql_continuous"), action_low, action_high)


def _bc(spec, configs: dict[str, Any], action_low=None, action_high=None) -> Learner:
    if spec.discrete:
        return BCDiscrete(spec, configs.get("bc"))
    return BCContinuous(spec, configs.get("bc"), action_low, action_high)


LEARNERS: dict[str, Callable[..., Learner]] = {"macql": _macql, "bc": _bc}
"""name -> factory ``(spec, configs, action_low, action_high) -> Learner``; configs maps a config
name ("macql", "macql_continuous", "bc") to its dataclass (missing: defaults)."""


def make_learner(name: str, spec, configs: dict[str, Any] | None = None, action_low=None, action_high=None) -> Learner:
    """The learner ``name`` ("macql" or "bc") for the task ``spec`` (discrete or continuous variant)."""
    if name not in LEARNERS:
        raise ValueError(f"unknown learner {name!r}; known: {sorted(LEARNERS)}")
    return LEARNERS[name](spec, configs or {}, action_low, action_high)


__all__ = [
    "BCConfig",
    "BCContinuous",
    "BCDiscrete",
    "LEARNERS",
    "Learner",
    "MACQLContinuous",
    "MACQLContinuousConfig",
    "MACQLDiscrete",
    "MACQLDiscreteConfig",
    "make_learner",
]
