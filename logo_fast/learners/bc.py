"""Behaviour cloning, discrete and continuous: the floor every offline learner must clear.

    discrete     logits_i = f([o_i, one-hot(i)]) with unavailable actions masked out;
                 loss = cross-entropy with the data action (averaged over rows and agents)
    continuous   a_i = mid + half_range * tanh(f([o_i, one-hot(i)]));
                 loss = mean squared error to the data action over the real action dimensions

One network shared by every agent (plus its id), like the MACQL learners, so the comparison
isolates the learning rule.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.schema import DatasetSpec
from .base import GradHook, InputNormalizer, agent_inputs, check_batch, masked_argmax, mlp


@dataclass
class BCConfig:
    """Hyper-parameters of behaviour cloning (both action types)."""

    hidden: int = 256
    """width of the two hidden layers of the shared policy network"""
    lr: float = 1e-3
    """Adam learning rate"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    normalize_inputs: bool = True
    """standardise observations with the real data's statistics (the pipeline calls fit_normalizer)"""
    seed: int = 0
    """seeds the initial weights and action sampling"""
    device: str = "cpu"
    """torch device of the network"""

    def problems(self) -> list[str]:
        out = []
        if self.hidden < 1:
            out.append(f"hidden must be >= 1, got {self.hidden}")
        if self.lr <= 0:
            out.append(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            out.append(f"weight_decay must be >= 0, got {self.weight_decay}")
        return out


class _BCBase:
    kind = ""

    def __init__(self, spec: DatasetSpec, config: BCConfig | None, out_dim: int):
        config = config or BCConfig()
        problems = config.problems()
        if problems:
            raise ValueError(f"{type(self).__name__}: bad config:\n  - " + "\n  - ".join(problems))
        self.spec, self.config = spec, config
        self.device = torch.device(config.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.policy = mlp([spec.obs_dim + spec.n_agents, config.hidden, config.hidden, out_dim]).to(self.device)
        self.norm = InputNormalizer(spec.obs_dim, spec.state_dim).to(self.device)
        self.optimizer = torch.optim.AdamW(self.policy.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.generator = torch.Generator().manual_seed(config.seed + 1)
        self.n_updates = 0
        self.grad_hook: GradHook | None = None  # see learners.base.GradHook

    def fit_normalizer(self, obs: torch.Tensor, state: torch.Tensor) -> None:
        """Input statistics from the real data: obs (R, N, obs_dim), state (R, state_dim); no-op when disabled."""
        if self.config.normalize_inputs:
            self.norm.fit(obs.to(self.device), state.to(self.device))

    def _step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_hook is not None:
            self.grad_hook(list(self.policy.parameters()))
        self.optimizer.step()
        self.n_updates += 1

    def state_dict(self) -> dict[str, Any]:
        """A snapshot (deep copy): later updates do not change it."""
        return copy.deepcopy({
            "kind": self.kind, "policy": self.policy.state_dict(), "normalizer": self.norm.state_dict(),
            "optimizer": self.optimizer.state_dict(), "n_updates": self.n_updates,
            "generator": self.generator.get_state(),
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"{type(self).__name__}.load_state_dict: state is for {state.get('kind')!r}")
        self.policy.load_state_dict(state["policy"])
        self.norm.load_state_dict(state["normalizer"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.n_updates = int(state["n_updates"])
        self.generator.set_state(state["generator"])


class BCDiscrete(_BCBase):
    """Behaviour cloning for discrete actions (cross-entropy over available actions)."""

    kind = "bc_discrete"

    def __init__(self, spec: DatasetSpec, config: BCConfig | None = None):
        if not spec.discrete:
            raise ValueError(f"BCDiscrete needs a discrete task, got {spec.action_type} ({spec.env})")
        super().__init__(spec, config, spec.n_actions)

    def logits(self, obs: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
        """obs (B, N, obs_dim), avail (B, N, n_actions) -> masked logits (B, N, n_actions)."""
        logits = self.policy(agent_inputs(self.norm.obs(obs)))
        if avail is not None:
            logits = logits.masked_fill(~avail.to(torch.bool), -1e9)
        return logits

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        check_batch(batch, ("obs", "actions"), "BCDiscrete")
        logits = self.logits(batch["obs"], batch.get("avail_actions"))
        actions = batch["actions"].long()
        loss = F.cross_entropy(logits.flatten(0, 1), actions.flatten())
        self._step(loss)
        acc = (logits.argmax(-1) == actions).float().mean()
        return {"loss": float(loss.detach()), "accuracy": float(acc)}

    @torch.no_grad()
    def act(self, obs: torch.Tensor, avail: torch.Tensor | None = None, deterministic: bool = True) -> torch.Tensor:
        """(B, N, obs_dim) -> (B, N) int64: the most likely (or a sampled) available action."""
        obs = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        avail = None if avail is None else torch.as_tensor(avail, dtype=torch.bool, device=self.device)
        logits = self.logits(obs, avail)
        if deterministic:
            return masked_argmax(logits, avail)
        probs = logits.softmax(-1).flatten(0, 1).cpu()
        return torch.multinomial(probs, 1, generator=self.generator).view(obs.shape[:2]).to(self.device)


class BCContinuous(_BCBase):
    """Behaviour cloning for continuous actions (MSE in the action box, padding excluded)."""

    kind = "bc_continuous"

    def __init__(self, spec: DatasetSpec, config: BCConfig | None = None, action_low: Any = None,
                 action_high: Any = None):
        if spec.discrete:
            raise ValueError(f"BCContinuous needs a continuous task, got a discrete one ({spec.env})")
        super().__init__(spec, config, spec.act_dim)
        n, a = spec.n_agents, spec.act_dim
        mask = torch.as_tensor(spec.act_mask(), device=self.device)
        low = -np.ones((n, a), np.float32) if action_low is None else np.asarray(action_low, np.float32)
        high = np.ones((n, a), np.float32) if action_high is None else np.asarray(action_high, np.float32)
        self.act_mask = mask
        self.mid = torch.as_tensor((low + high) / 2, device=self.device) * mask
        self.half = torch.as_tensor((high - low) / 2, device=self.device) * mask

    def _mean_action(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mid + self.half * torch.tanh(self.policy(agent_inputs(self.norm.obs(obs)))) * self.act_mask

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        check_batch(batch, ("obs", "actions"), "BCContinuous")
        pred = self._mean_action(batch["obs"])
        err = (pred - batch["actions"].float()).pow(2) * self.act_mask
        loss = err.sum() / (self.act_mask.sum() * pred.shape[0])
        self._step(loss)
        return {"loss": float(loss.detach())}

    @torch.no_grad()
    def act(self, obs: torch.Tensor, avail: torch.Tensor | None = None, deterministic: bool = True) -> torch.Tensor:
        """(B, N, obs_dim) -> (B, N, act_dim): the cloned (deterministic) action, always inside the bounds."""
        return self._mean_action(torch.as_tensor(obs, dtype=torch.float32, device=self.device))
