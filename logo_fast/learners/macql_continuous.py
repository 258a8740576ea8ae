"""Multi-agent CQL for continuous actions (MaMuJoCo): per-agent actors, centralised twin critic, CQL on joint actions.

    actor pi(a_i | o_i)      a tanh-Gaussian MLP on [o_i, one-hot(i)], shared weights, decentralised:
                             each agent acts on its own observation (B, N, act_dim)
    critic Q_k(s, a)         k = 1, 2, an MLP on [s, a_1, ..., a_N] (centralised, twin for min-clipping)
    target                   y = r + gamma (1 - terminal) (min_k Q'_k(s', a') - alpha log pi(a' | o')), a' ~ pi(o')
    CQL                      cql_alpha * [ temp * logsumexp_j (Q_k(s, a_j) - log mu(a_j)) / temp - Q_k(s, a^data) ]
                             over n_action_samples joint actions from each of: uniform, pi(o), pi(o')
                             (CQL(H) with importance weights, Kumar et al. 2020)
    actor loss               alpha log pi(a | o) - min_k Q_k(s, a), a ~ pi(o);  alpha tuned to entropy -|A|

With synthetic rows in the batch (``source`` 1), ``cql_rows="combo"`` (default) pushes Q down at the
sampled actions of every row, synthetic states included, and up at the data actions of the real rows
only (COMBO's split): with ``"real"``, which applies the whole CQL gap to the real rows only, nothing
held Q down at synthetic states and on Hopper the critic overrated them until the policy fell. The
"all" choice lifts Q at the policy's own synthetic actions, which undoes the conservatism. The TD
loss uses every row.

Actions are handled in the normalised box [-1, 1]^act_dim per agent: a = mid + half_range * x.
Padding dimensions (heterogeneous agents, ``spec.act_mask()``) are held at 0 and excluded from
log-densities and entropies.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.schema import DatasetSpec
from .base import GradHook, InputNormalizer, agent_inputs, check_batch, mlp, soft_update
from .cql import CQLRows, cql_gap

_KEYS = ("obs", "state", "actions", "rewards", "terminals", "next_obs", "next_state")
_LOG_STD_MIN, _LOG_STD_MAX = -5.0, 2.0


@dataclass
class MACQLContinuousConfig:
    """Hyper-parameters of continuous multi-agent CQL (SAC-style actors, twin centralised critic)."""

    hidden: int = 256
    """width of the two hidden layers of the actor and of each critic"""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor"""
    critic_lr: float = 3e-4
    """Adam learning rate of the twin critic"""
    alpha_lr: float = 3e-4
    """Adam learning rate of the entropy temperature (log alpha)"""
    gamma: float = 0.99
    """discount factor"""
    tau: float = 0.005
    """Polyak rate of the target critics per update"""
    cql_alpha: float = 5.0
    """weight of the CQL regulariser"""
    cql_rows: CQLRows = "combo"
    """rows the CQL term averages over: "combo" (COMBO, Yu et al. 2021: the logsumexp push-down over every row,
    synthetic states included, the data-Q push-up over real rows only), real rows only (source 0), or every row.
    Measured on Hopper-3x1 medium with LOGO, 3 seeds: "real" 47.9 ± 6.3 (the critic overrates synthetic
    states and the policy falls), "combo" 246.6 ± 7.9 (MACQL alone 245.7 ± 11.1); docs/results.md"""
    cql_temp: float = 1.0
    """temperature of the CQL logsumexp"""
    n_action_samples: int = 10
    """joint actions sampled per row from each of: uniform, pi(o), pi(o')"""
    init_alpha: float = 1.0
    """initial entropy temperature"""
    auto_alpha: bool = True
    """tune alpha towards the target entropy -|A| (else keep init_alpha)"""
    backup_entropy: bool = False
    """subtract alpha * log pi in the TD target (CQL's default: no)"""
    grad_clip: float = 0.0
    """global gradient-norm clip of each network (0: off)"""
    reward_scale: float = 1.0
    """rewards are multiplied by this before the TD target"""
    normalize_inputs: bool = True
    """standardise observations and states with the real data's statistics (the pipeline calls fit_normalizer)"""
    seed: int = 0
    """seeds the initial weights and every action sample"""
    device: str = "cpu"
    """torch device of the networks"""

    def problems(self) -> list[str]:
        out = [f"{k} must be >= 1, got {getattr(self, k)}" for k in ("hidden", "n_action_samples")
               if getattr(self, k) < 1]
        for k in ("actor_lr", "critic_lr", "alpha_lr", "cql_temp", "init_alpha"):
            if getattr(self, k) <= 0:
                out.append(f"{k} must be > 0, got {getattr(self, k)}")
        if not 0.0 <= self.gamma <= 1.0:
            out.append(f"gamma must be in [0, 1], got {self.gamma}")
        if not 0.0 < self.tau <= 1.0:
            out.append(f"tau must be in (0, 1], got {self.tau}")
        for k in ("cql_alpha", "grad_clip"):
            if getattr(self, k) < 0:
                out.append(f"{k} must be >= 0, got {getattr(self, k)}")
        if self.cql_rows not in ("real", "all", "combo"):
            out.append(f"cql_rows must be 'real', 'all' or 'combo', got {self.cql_rows!r}")
        return out


class TanhGaussianActor(nn.Module):
    """Shared per-agent actor: [o_i, one-hot(i)] -> tanh-squashed Gaussian over the normalised action box."""

    def __init__(self, obs_dim: int, n_agents: int, act_dim: int, hidden: int):
        super().__init__()
        self.body = mlp([obs_dim + n_agents, hidden, hidden], activation=nn.ReLU)
        self.body.append(nn.ReLU())
        self.mean = nn.Linear(hidden, act_dim)
        self.log_std = nn.Linear(hidden, act_dim)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """obs (B, N, obs_dim) -> mean, std of the pre-tanh Gaussian, each (B, N, act_dim)."""
        h = self.body(agent_inputs(obs))
        return self.mean(h), self.log_std(h).clamp(_LOG_STD_MIN, _LOG_STD_MAX).exp()


class TwinCritic(nn.Module):
    """Two centralised critics Q_k(s, a_joint)."""

    def __init__(self, state_dim: int, joint_act_dim: int, hidden: int):
        super().__init__()
        self.q1 = mlp([state_dim + joint_act_dim, hidden, hidden, 1])
        self.q2 = mlp([state_dim + joint_act_dim, hidden, hidden, 1])

    def forward(self, state: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """state (..., S), actions (..., N, act_dim) normalised -> Q1, Q2 each (...)."""
        x = torch.cat([state, actions.flatten(-2)], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


class MACQLContinuous:
    """Continuous MACQL learner; see the module docstring for the losses.

    action_low, action_high: (N, act_dim) bounds of the real actions (zero in padding), e.g. the
    dataset's ``action_low``/``action_high``; default [-1, 1] on every real dimension.
    """

    def __init__(self, spec: DatasetSpec, config: MACQLContinuousConfig | None = None,
                 action_low: Any = None, action_high: Any = None):
        config = config or MACQLContinuousConfig()
        problems = config.problems()
        if spec.discrete:
            problems.append(f"MACQLContinuous needs a continuous task, got a discrete one ({spec.env})")
        if problems:
            raise ValueError("MACQLContinuous: bad config:\n  - " + "\n  - ".join(problems))
        self.spec, self.config = spec, config
        self.device = dev = torch.device(config.device)
        n, d, a = spec.n_agents, spec.obs_dim, spec.act_dim
        self.act_mask = torch.as_tensor(spec.act_mask(), device=dev)  # (N, act_dim) bool
        low = -np.ones((n, a), np.float32) if action_low is None else np.asarray(action_low, np.float32)
        high = np.ones((n, a), np.float32) if action_high is None else np.asarray(action_high, np.float32)
        self.mid = torch.as_tensor((low + high) / 2, device=dev) * self.act_mask
        self.half = torch.as_tensor((high - low) / 2, device=dev) * self.act_mask
        self.joint_dim = int(self.act_mask.sum())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.actor = TanhGaussianActor(d, n, a, config.hidden).to(dev)
            self.critic = TwinCritic(spec.state_dim, n * a, config.hidden).to(dev)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.norm = InputNormalizer(d, spec.state_dim).to(dev)
        self.log_alpha = torch.tensor(math.log(config.init_alpha), device=dev, requires_grad=True)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=config.alpha_lr)
        self.generator = torch.Generator().manual_seed(config.seed + 1)
        self.n_updates = 0
        self.grad_hook: GradHook | None = None  # see learners.base.GradHook

    def fit_normalizer(self, obs: torch.Tensor, state: torch.Tensor) -> None:
        """Input statistics from the real data: obs (R, N, obs_dim), state (R, state_dim); no-op when disabled."""
        if self.config.normalize_inputs:
            self.norm.fit(obs.to(self.device), state.to(self.device))

    # ---- action spaces -------------------------------------------------------------------------
    def normalise(self, actions: torch.Tensor) -> torch.Tensor:
        """Real actions (..., N, act_dim) -> [-1, 1] box (padding 0)."""
        x = (actions.float() - self.mid) / self.half.clamp_min(1e-6)
        return (x * self.act_mask).clamp(-1.0, 1.0)

    def _sample(self, obs: torch.Tensor, n: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised actions (B, N, act_dim) (or (B, n, N, act_dim)) in the box and their joint log pi."""
        mean, std = self.actor(self.norm.obs(obs))
        if n:
            mean, std = mean.unsqueeze(1).expand(-1, n, -1, -1), std.unsqueeze(1).expand(-1, n, -1, -1)
        noise = torch.randn(mean.shape, generator=self.generator).to(self.device)
        pre = mean + std * noise
        x = torch.tanh(pre)
        logp = (-0.5 * noise.pow(2) - std.log() - 0.5 * math.log(2 * math.pi)
                - torch.log1p(-x.pow(2) + 1e-6))
        mask = self.act_mask
        return x * mask, (logp * mask).sum((-1, -2))

    # ---- loss pieces -----------------------------------------------------------------------------
    def _critic_loss(self, batch: dict[str, torch.Tensor], alpha: torch.Tensor):
        cfg = self.config
        state, next_state = self.norm.state(batch["state"]), self.norm.state(batch["next_state"])
        data_actions = self.normalise(batch["actions"])
        q1, q2 = self.critic(state, data_actions)
        with torch.no_grad():
            next_a, next_logp = self._sample(batch["next_obs"])
            tq1, tq2 = self.target_critic(next_state, next_a)
            next_v = torch.min(tq1, tq2) - (alpha * next_logp if cfg.backup_entropy else 0.0)
            target = cfg.reward_scale * batch["rewards"].float() + cfg.gamma * (1 - batch["terminals"].float()) * next_v
        td = F.mse_loss(q1, target) + F.mse_loss(q2, target)

        # CQL(H): logsumexp over sampled joint actions, each corrected by its sampling density.
        B, n = state.shape[0], cfg.n_action_samples
        rand = (torch.rand((B, n, *self.act_mask.shape), generator=self.generator).to(self.device) * 2 - 1)
        rand = rand * self.act_mask
        rand_logp = torch.full((B, n), self.joint_dim * math.log(0.5), device=self.device)
        with torch.no_grad():
            pi_a, pi_logp = self._sample(batch["obs"], n)
            npi_a, npi_logp = self._sample(batch["next_obs"], n)
        s_rep = state.unsqueeze(1).expand(-1, n, -1)
        # One critic pass over all 3n sampled joint actions gives both heads' values.
        acts = torch.cat([rand, pi_a, npi_a], dim=1)  # (B, 3n, N, act_dim)
        logp = torch.cat([rand_logp, pi_logp, npi_logp], dim=1)  # (B, 3n)
        q1_ood, q2_ood = self.critic(torch.cat([s_rep] * 3, dim=1), acts)
        gaps = []
        for q_ood, q_data in ((q1_ood, q1), (q2_ood, q2)):
            ood = torch.logsumexp((q_ood - logp) / cfg.cql_temp, dim=1) * cfg.cql_temp  # (B,)
            gaps.append(cql_gap(ood, q_data, batch.get("source"), cfg.cql_rows))
        cql = gaps[0] + gaps[1]
        return td + cfg.cql_alpha * cql, td, cql / 2, q1

    # ---- the update --------------------------------------------------------------------------------
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        check_batch(batch, _KEYS, "MACQLContinuous")
        cfg = self.config
        alpha = self.log_alpha.exp().detach()

        critic_loss, td, cql_gap, q1 = self._critic_loss(batch, alpha)
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        if self.grad_hook is not None:
            self.grad_hook(list(self.critic.parameters()))
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.grad_clip)
        self.critic_optimizer.step()

        pi_a, logp = self._sample(batch["obs"])
        pq1, pq2 = self.critic(self.norm.state(batch["state"]), pi_a)
        actor_loss = (alpha * logp - torch.min(pq1, pq2)).mean()
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        if self.grad_hook is not None:
            self.grad_hook(list(self.actor.parameters()))
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.grad_clip)
        self.actor_optimizer.step()

        alpha_loss = torch.zeros(())
        if cfg.auto_alpha:
            alpha_loss = -(self.log_alpha * (logp.detach() - self.joint_dim)).mean()
            self.alpha_optimizer.zero_grad(set_to_none=True)
            alpha_loss.backward()
            if self.grad_hook is not None:
                self.grad_hook([self.log_alpha])
            self.alpha_optimizer.step()

        soft_update(self.target_critic, self.critic, cfg.tau)
        self.n_updates += 1
        return {"critic_loss": float(critic_loss.detach()), "td_loss": float(td.detach()),
                "cql_loss": float(cql_gap.detach()),
                "actor_loss": float(actor_loss.detach()), "alpha": float(alpha), "q": float(q1.detach().mean()),
                "loss": float(critic_loss.detach())}

    # ---- acting ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, avail: torch.Tensor | None = None, deterministic: bool = True) -> torch.Tensor:
        """obs (B, N, obs_dim) -> actions (B, N, act_dim) inside [action_low, action_high] (padding 0)."""
        obs = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        if deterministic:
            x = torch.tanh(self.actor(self.norm.obs(obs))[0]) * self.act_mask
        else:
            x, _ = self._sample(obs)
        return self.mid + self.half * x

    # ---- checkpoints -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """A snapshot (deep copy): later updates do not change it."""
        return copy.deepcopy({
            "kind": "macql_continuous",
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "target_critic": self.target_critic.state_dict(),
            "normalizer": self.norm.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "alpha_optimizer": self.alpha_optimizer.state_dict(),
            "n_updates": self.n_updates,
            "generator": self.generator.get_state(),
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != "macql_continuous":
            raise ValueError(f"MACQLContinuous.load_state_dict: state is for {state.get('kind')!r}")
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.target_critic.load_state_dict(state["target_critic"])
        self.norm.load_state_dict(state["normalizer"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        self.n_updates = int(state["n_updates"])
        self.generator.set_state(state["generator"])
