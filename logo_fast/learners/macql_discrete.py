"""Multi-agent CQL for discrete actions (SMAX, MPE): shared per-agent Q, QMIX mixer, CQL over available actions.

    Q_i(o_i, .)      one MLP shared by every agent, input [o_i, one-hot(i)]          (B, N, n_actions)
    Q_tot(s, a)      QMIX: monotone mix of the chosen Q_i with hypernetwork weights on s
    target           y = r + gamma * (1 - terminal) * Q_tot'(s', a*),  a*_i = argmax over next_avail of
                     the ONLINE Q_i(o'_i, .) (double Q), evaluated by the target networks
    CQL              alpha * mean_{b, i} [ logsumexp_{a in avail_i} Q_i(o_i, a) - Q_i(o_i, a_i^data) ]
    loss             mean (Q_tot(s, a^data) - y)^2 + CQL

With synthetic rows in the batch (``source`` 1), ``cql_rows="real"`` (default) takes the CQL mean
over the real rows only: a synthetic row's action is the learner's own choice, and raising its Q
as "data" would reward the policy for its own actions, the opposite of conservatism (COMBO,
Yu et al. 2021, likewise lifts Q only on real data). ``"combo"`` is COMBO's split: the push-down
at every row's state, synthetic ones too, the push-up at real rows only (measured worse here, see
the field's doc; it is the continuous learner's default). The TD loss uses every row either way.

The CQL term pushes down every available action the data did not take and up the one it did,
so the greedy policy stays on the data's support (Kumar et al. 2020; the per-agent form used by
the offline-MARL baselines of OMIGA and CFCQL). Unavailable actions are excluded from the
logsumexp and from every argmax: they can never be chosen, so their values are irrelevant.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.schema import DatasetSpec
from .base import GradHook, InputNormalizer, agent_inputs, check_batch, masked_argmax, mlp, soft_update
from .cql import CQLRows, cql_gap

_KEYS = ("obs", "state", "actions", "rewards", "terminals", "next_obs", "next_state")


@dataclass
class MACQLDiscreteConfig:
    """Hyper-parameters of discrete multi-agent CQL (QMIX mixing)."""

    hidden: int = 128
    """width of the two hidden layers of the shared per-agent Q network"""
    mixer_embed: int = 32
    """QMIX mixing embedding size (hypernetwork output per agent)"""
    lr: float = 5e-4
    """Adam learning rate of the Q network and the mixer"""
    gamma: float = 0.99
    """discount factor"""
    cql_alpha: float = 1.0
    """weight of the CQL regulariser (0 turns MACQL into offline QMIX)"""
    cql_rows: CQLRows = "real"
    """rows the CQL term averages over: real rows only (source 0), every row, or "combo" (COMBO, Yu et al.
    2021: the logsumexp push-down over every row, synthetic states included, the data-Q push-up over real rows only).
    "real" stays the default here: with LOGO, 3 seeds, "combo" did worse on MPE simple_spread (-25.4 vs -18.3)
    and SMAX 2s3z (return 1.03 vs 1.20); on continuous control it is the default (macql_continuous)"""
    tau: float = 0.005
    """Polyak rate of the target networks per update (used when target_update_every is 0)"""
    target_update_every: int = 0
    """copy the online networks into the targets every this many updates (0: Polyak with tau)"""
    grad_clip: float = 10.0
    """global gradient-norm clip (0: off)"""
    reward_scale: float = 1.0
    """rewards are multiplied by this before the TD target"""
    layer_norm: bool = True
    """layer norm in the Q network's hidden layers"""
    normalize_inputs: bool = True
    """standardise observations and states with the real data's statistics (the pipeline calls fit_normalizer)"""
    explore_epsilon: float = 0.1
    """probability of a random available action per agent when act(deterministic=False)"""
    seed: int = 0
    """seeds the initial weights and the exploration generator"""
    device: str = "cpu"
    """torch device of the networks"""

    def problems(self) -> list[str]:
        out = [f"{k} must be >= 1, got {getattr(self, k)}" for k in ("hidden", "mixer_embed") if getattr(self, k) < 1]
        if self.lr <= 0:
            out.append(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.gamma <= 1.0:
            out.append(f"gamma must be in [0, 1], got {self.gamma}")
        if not 0.0 < self.tau <= 1.0:
            out.append(f"tau must be in (0, 1], got {self.tau}")
        for k in ("cql_alpha", "grad_clip", "target_update_every"):
            if getattr(self, k) < 0:
                out.append(f"{k} must be >= 0, got {getattr(self, k)}")
        if self.cql_rows not in ("real", "all", "combo"):
            out.append(f"cql_rows must be 'real', 'all' or 'combo', got {self.cql_rows!r}")
        if not 0.0 <= self.explore_epsilon <= 1.0:
            out.append(f"explore_epsilon must be in [0, 1], got {self.explore_epsilon}")
        return out


class QMixer(nn.Module):
    """Q_tot = w2(s)^T elu(W1(s)^T q + b1(s)) + b2(s) with |W1|, |w2|: monotone in every agent's q."""

    def __init__(self, n_agents: int, state_dim: int, embed: int):
        super().__init__()
        self.n_agents, self.embed = n_agents, embed
        self.hyper_w1 = mlp([state_dim, embed, n_agents * embed])
        self.hyper_b1 = nn.Linear(state_dim, embed)
        self.hyper_w2 = mlp([state_dim, embed, embed])
        self.hyper_b2 = mlp([state_dim, embed, 1])

    def forward(self, q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """q (B, N) chosen per-agent values, state (B, state_dim) -> (B,) Q_tot."""
        B = q.shape[0]
        w1 = self.hyper_w1(state).abs().view(B, self.n_agents, self.embed)
        hidden = F.elu(torch.bmm(q.unsqueeze(1), w1).squeeze(1) + self.hyper_b1(state))
        w2 = self.hyper_w2(state).abs()
        return (hidden * w2).sum(-1) + self.hyper_b2(state).squeeze(-1)


class MACQLDiscrete:
    """Discrete MACQL learner; see the module docstring for the losses."""

    def __init__(self, spec: DatasetSpec, config: MACQLDiscreteConfig | None = None):
        config = config or MACQLDiscreteConfig()
        problems = config.problems()
        if not spec.discrete:
            problems.append(f"MACQLDiscrete needs a discrete task, got {spec.action_type} ({spec.env})")
        if problems:
            raise ValueError("MACQLDiscrete: bad config:\n  - " + "\n  - ".join(problems))
        self.spec, self.config = spec, config
        self.device = torch.device(config.device)
        n, d = spec.n_agents, spec.obs_dim
        # Weights come from the config's seed without touching the global torch RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.q_net = mlp([d + n, config.hidden, config.hidden, spec.n_actions], layer_norm=config.layer_norm)
            self.mixer = QMixer(n, spec.state_dim, config.mixer_embed)
        self.q_net.to(self.device)
        self.mixer.to(self.device)
        self.norm = InputNormalizer(d, spec.state_dim).to(self.device)
        self.target_q_net = copy.deepcopy(self.q_net).requires_grad_(False)
        self.target_mixer = copy.deepcopy(self.mixer).requires_grad_(False)
        self.optimizer = torch.optim.Adam([*self.q_net.parameters(), *self.mixer.parameters()], lr=config.lr)
        self.generator = torch.Generator().manual_seed(config.seed + 1)
        self.n_updates = 0
        self.grad_hook: GradHook | None = None  # see learners.base.GradHook

    def fit_normalizer(self, obs: torch.Tensor, state: torch.Tensor) -> None:
        """Input statistics from the real data: obs (R, N, obs_dim), state (R, state_dim); no-op when disabled."""
        if self.config.normalize_inputs:
            self.norm.fit(obs.to(self.device), state.to(self.device))

    # ---- loss pieces -----------------------------------------------------------------------
    def agent_q(self, obs: torch.Tensor, target: bool = False) -> torch.Tensor:
        """obs (B, N, obs_dim) -> per-agent Q values (B, N, n_actions)."""
        net = self.target_q_net if target else self.q_net
        return net(agent_inputs(self.norm.obs(obs)))

    def _td_target(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        next_avail = batch.get("next_avail")
        with torch.no_grad():
            next_best = masked_argmax(self.agent_q(batch["next_obs"]), next_avail)  # double Q: online picks
            next_q = self.agent_q(batch["next_obs"], target=True).gather(-1, next_best.unsqueeze(-1)).squeeze(-1)
            next_tot = self.target_mixer(next_q, self.norm.state(batch["next_state"]))
            not_done = 1.0 - batch["terminals"].float()
            return self.config.reward_scale * batch["rewards"].float() + self.config.gamma * not_done * next_tot

    def _cql_term(self, q_all: torch.Tensor, q_data: torch.Tensor, avail: torch.Tensor | None,
                  source: torch.Tensor | None) -> torch.Tensor:
        """logsumexp over AVAILABLE actions minus the data Q, averaged over agents and the rows ``cql_rows`` names.

        source: (B,) 0 real, 1 synthetic (None: every row is real).
        """
        if avail is not None:
            q_all = q_all.masked_fill(~avail.to(torch.bool), float("-inf"))
        return cql_gap(torch.logsumexp(q_all, dim=-1), q_data, source, self.config.cql_rows)  # (B, N) each

    # ---- the update --------------------------------------------------------------------------
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        check_batch(batch, _KEYS, "MACQLDiscrete")
        actions = batch["actions"].long()
        q_all = self.agent_q(batch["obs"])  # (B, N, A)
        q_data = q_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # (B, N)
        q_tot = self.mixer(q_data, self.norm.state(batch["state"]))
        target = self._td_target(batch)
        td_loss = F.mse_loss(q_tot, target)
        cql = self._cql_term(q_all, q_data, batch.get("avail_actions"), batch.get("source"))
        loss = td_loss + self.config.cql_alpha * cql

        params = [*self.q_net.parameters(), *self.mixer.parameters()]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_hook is not None:
            self.grad_hook(params)
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        self.optimizer.step()
        self.n_updates += 1
        if self.config.target_update_every > 0:
            if self.n_updates % self.config.target_update_every == 0:
                soft_update(self.target_q_net, self.q_net, 1.0)
                soft_update(self.target_mixer, self.mixer, 1.0)
        else:
            soft_update(self.target_q_net, self.q_net, self.config.tau)
            soft_update(self.target_mixer, self.mixer, self.config.tau)
        return {"loss": float(loss.detach()), "td_loss": float(td_loss.detach()), "cql_loss": float(cql.detach()),
                "q_tot": float(q_tot.detach().mean()), "target": float(target.mean())}

    # ---- acting --------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, avail: torch.Tensor | None = None, deterministic: bool = True) -> torch.Tensor:
        """obs (B, N, obs_dim), avail (B, N, n_actions) bool -> (B, N) int64, greedy among available actions."""
        obs = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        avail = None if avail is None else torch.as_tensor(avail, dtype=torch.bool, device=self.device)
        greedy = masked_argmax(self.agent_q(obs), avail)
        if deterministic or self.config.explore_epsilon == 0:
            return greedy
        mask = avail if avail is not None else torch.ones(*greedy.shape, self.spec.n_actions, dtype=torch.bool)
        scores = torch.rand(mask.shape, generator=self.generator).to(self.device)
        random = masked_argmax(scores, mask)
        explore = (torch.rand(greedy.shape, generator=self.generator) < self.config.explore_epsilon).to(self.device)
        return torch.where(explore, random, greedy)

    # ---- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """A snapshot (deep copy): later updates do not change it."""
        return copy.deepcopy({
            "kind": "macql_discrete",
            "q_net": self.q_net.state_dict(),
            "mixer": self.mixer.state_dict(),
            "target_q_net": self.target_q_net.state_dict(),
            "target_mixer": self.target_mixer.state_dict(),
            "normalizer": self.norm.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "n_updates": self.n_updates,
            "generator": self.generator.get_state(),
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != "macql_discrete":
            raise ValueError(f"MACQLDiscrete.load_state_dict: state is for {state.get('kind')!r}")
        self.q_net.load_state_dict(state["q_net"])
        self.mixer.load_state_dict(state["mixer"])
        self.target_q_net.load_state_dict(state["target_q_net"])
        self.target_mixer.load_state_dict(state["target_mixer"])
        self.norm.load_state_dict(state["normalizer"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.n_updates = int(state["n_updates"])
        self.generator.set_state(state["generator"])
