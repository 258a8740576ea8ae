"""``EnsembleNet``: the MOPO-style ensemble of Gaussian MLPs, evaluated in one batched forward with stacked weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data.schema import DatasetSpec
from ..config import WorldModelConfig
from .layers import GroupMLP, soft_clamp
from .losses import masked_nll
from .world import WorldNet


class EnsembleNet(WorldNet):
    """M Gaussian MLPs with stacked weights; ``elites`` (buffer) holds the members kept after training.

    Each member maps (every obs, state, joint action) to a Gaussian over the normalised
    [next-obs target (N*D), next-state target (S), reward (1)] vector G, plus termination and
    avail logits. Its NLL weighs the three groups like the other models' losses (mean over the
    obs features x w_obs + mean over the state features x w_state + reward x w_reward), so the
    reward is not 1 of N*D+S+1 equal dimensions.
    """

    def __init__(self, spec: DatasetSpec, cfg: WorldModelConfig, hidden: int):
        super().__init__(spec, cfg)
        N, D, S = spec.n_agents, spec.obs_dim, spec.state_dim
        M = cfg.n_members
        self.n_scores = M
        self.gauss_dim = N * D + S + 1
        n_avail = N * spec.n_actions if spec.discrete else 0
        d_in = N * D + S + N * spec.action_size
        self.mlp = GroupMLP(M, d_in, hidden, 2 * self.gauss_dim + 1 + n_avail, cfg.layers)
        self.max_logstd = nn.Parameter(torch.full((M, self.gauss_dim), 0.25))
        self.min_logstd = nn.Parameter(torch.full((M, self.gauss_dim), -5.0))
        self.register_buffer("elites", torch.arange(cfg.n_elites))

    @property
    def gauss_mask(self) -> torch.Tensor:
        """(G,) 1.0 on the Gaussian outputs that are real and vary in the training data."""
        return torch.cat([self.obs_target_mask().flatten(), self.state_target_mask(self.cfg.predict_delta),
                          torch.ones_like(self.reward_mean)])

    def reset_parameters(self, generator: torch.Generator) -> None:
        super().reset_parameters(generator)
        with torch.no_grad():
            self.max_logstd.fill_(0.25)
            self.min_logstd.fill_(-5.0)

    def forward_n(self, obs: torch.Tensor, state: torch.Tensor, actions: torch.Tensor):
        """-> mean (B, M, G), logstd (B, M, G), term_logit (B, M), avail (B, M, N, n_actions) or None; G = N*D+S+1."""
        B = obs.shape[0]
        M, G = self.cfg.n_members, self.gauss_dim
        x = torch.cat([self.norm_obs(obs).flatten(1), self.norm_state(state), self.action_input(actions)], -1)
        out = self.mlp(x[:, None].expand(B, M, -1))
        mean = out[..., :G] * self.gauss_mask
        logstd = soft_clamp(out[..., G : 2 * G], self.min_logstd, self.max_logstd)
        avail = None
        if self.spec.discrete:
            avail = out[..., 2 * G + 1 :].reshape(B, M, self.spec.n_agents, self.spec.n_actions)
        return mean, logstd, out[..., 2 * G], avail

    def _targets(self, batch):
        obs_t = self.obs_target(batch["obs"], batch["next_obs"]).flatten(1)
        state_t = self.state_target(batch["state"], batch["next_state"], self.cfg.predict_delta)
        return torch.cat([obs_t, state_t, self.reward_target(batch["reward"])[:, None]], -1)[:, None]  # (B, 1, G)

    def _outcome(self, term, avail, batch):
        """Per-row, per-member termination and avail BCE: (B, M)."""
        out = F.binary_cross_entropy_with_logits(term, batch["terminal"].float()[:, None].expand_as(term),
                                                 reduction="none")
        if avail is not None and "next_avail" in batch:
            target = batch["next_avail"].float()[:, None].expand_as(avail)
            bce = F.binary_cross_entropy_with_logits(avail, target, reduction="none")
            out = out + self.cfg.w_avail * bce.flatten(2).mean(2)
        return out

    def _group_masks(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(G,) masks of the obs, state and reward entries of the Gaussian vector (varying features only)."""
        N, D = self.spec.n_agents, self.spec.obs_dim
        g = self.gauss_mask
        obs, state, reward = torch.zeros_like(g), torch.zeros_like(g), torch.zeros_like(g)
        obs[: N * D], state[N * D : -1], reward[-1] = g[: N * D], g[N * D : -1], g[-1]
        return obs, state, reward

    def losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.cfg
        mean, logstd, term, avail = self.forward_n(batch["obs"], batch["state"], batch["actions"])
        target = self._targets(batch)
        # masked_nll averages over (M, features): x M makes each a sum over members.
        m_obs, m_state, m_reward = self._group_masks()
        nll = {k: masked_nll(mean, logstd, target, m, cfg.nll_beta) * cfg.n_members
               for k, m in (("obs", m_obs), ("state", m_state), ("reward", m_reward))}
        nll_total = cfg.w_obs * nll["obs"] + cfg.w_state * nll["state"] + cfg.w_reward * nll["reward"]
        outcome = self._outcome(term, avail, batch).sum(1)
        # MOPO's penalty keeps the learned log-std bounds tight.
        bound_reg = 0.01 * (self.max_logstd.sum() - self.min_logstd.sum()) / self.gauss_dim
        total = nll_total.mean() + cfg.w_term * outcome.mean() + bound_reg
        parts = {"nll": nll_total.mean(), "nll_reward": nll["reward"].mean(), "term": outcome.mean(),
                 "mse": ((mean - target).square() * self.gauss_mask).sum(-1).mean() / self.gauss_mask.sum()}
        return total, {k: float(v.detach()) for k, v in parts.items()}

    def holdout_error(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, M): each member's selection score (see ``WorldNet.holdout_error``); the elites are chosen by it."""
        cfg = self.cfg
        mean, _, term, avail = self.forward_n(batch["obs"], batch["state"], batch["actions"])
        N, D, S = self.spec.n_agents, self.spec.obs_dim, self.spec.state_dim
        B, M = mean.shape[:2]
        if cfg.select_by == "state_obs":
            obs = batch["obs"][:, None]
            next_obs = self.obs_from_target(obs, mean[..., : N * D].reshape(B, M, N, D))
            next_state = self.state_from_target(batch["state"][:, None], mean[..., N * D : N * D + S],
                                                cfg.predict_delta)
            o_mask = self.obs_live * self.obs_mask
            o = (((next_obs - batch["next_obs"][:, None]) / self.obs_std).square() * o_mask).flatten(2).sum(2)
            s = (((next_state - batch["next_state"][:, None]) / self.state_std).square() * self.state_live).sum(2)
            return o / o_mask.sum().clamp_min(1) + s / self.state_live.sum().clamp_min(1)
        se = (mean - self._targets(batch)).square()
        m_obs, m_state, m_reward = self._group_masks()
        weighted = sum(w * (se * m).sum(-1) / m.sum().clamp_min(1)
                       for w, m in ((cfg.w_obs, m_obs), (cfg.w_state, m_state), (cfg.w_reward, m_reward)))
        return weighted + cfg.w_term * self._outcome(term, avail, batch)

    def predict(self, obs: torch.Tensor, state: torch.Tensor, actions: torch.Tensor,
                generator: torch.Generator | None = None, state_is_prediction: bool = False) -> dict[str, torch.Tensor]:
        """Mean of the elites (``generator`` None) or, with a generator, MOPO sampling: a random elite per
        row and a Gaussian draw from it. u (B,) = max over elites of ||std|| (normalised units).
        ``state_is_prediction`` is read by LOGO's hybrid state form only (ignored here)."""
        B, N, D = obs.shape
        S = state.shape[1]
        mean, logstd, term, avail = self.forward_n(obs, state, actions)
        elites = self.elites
        std = torch.exp(logstd[:, elites]) * self.gauss_mask
        u = torch.linalg.vector_norm(std, dim=-1).amax(1)
        if generator is None:
            g = mean[:, elites].mean(1)
            p_term = torch.sigmoid(term[:, elites]).mean(1)
            a = avail[:, elites].mean(1) if avail is not None else None
        else:
            pick = elites[torch.randint(len(elites), (B,), generator=generator, device=generator.device).to(obs.device)]
            rows = torch.arange(B, device=obs.device)
            noise = torch.randn(mean[:, 0].shape, generator=generator, device=generator.device).to(obs.device)
            g = mean[rows, pick] + torch.exp(logstd[rows, pick]) * noise * self.gauss_mask
            p_term = torch.sigmoid(term[rows, pick])
            a = avail[rows, pick] if avail is not None else None
        p_term = p_term.clamp(1e-6, 1 - 1e-6)
        return {"next_obs": self.obs_from_target(obs, g[:, : N * D].reshape(B, N, D)),
                "next_state": self.state_from_target(state, g[:, N * D : N * D + S], self.cfg.predict_delta),
                "reward": self.reward_from_target(g[:, -1]), "term_logit": torch.log(p_term) - torch.log1p(-p_term),
                "avail_logits": a, "u": u}
