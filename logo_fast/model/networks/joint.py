"""``JointNet``: the centralised baseline, one MLP from (every obs, state, joint action) to every next-step quantity."""

from __future__ import annotations

import torch

from ...data.schema import DatasetSpec
from ..config import WorldModelConfig
from .layers import GroupMLP, soft_clamp
from .logo import LOGSTD_MAX, LOGSTD_MIN
from .losses import masked_mse, masked_nll
from .world import WorldNet


class JointNet(WorldNet):
    """One MLP of width ``hidden`` (MAMBA-style global modelling); no uncertainty (u = 0)."""

    def __init__(self, spec: DatasetSpec, cfg: WorldModelConfig, hidden: int):
        super().__init__(spec, cfg)
        N, D, S = spec.n_agents, spec.obs_dim, spec.state_dim
        n_avail = N * spec.n_actions if spec.discrete else 0
        self.obs_width = N * D * (2 if cfg.obs_loss == "nll" else 1)
        d_in = N * D + S + N * spec.action_size
        self.mlp = GroupMLP(1, d_in, hidden, self.obs_width + S + 2 + n_avail, cfg.layers)

    def forward_n(self, obs: torch.Tensor, state: torch.Tensor, actions: torch.Tensor):
        """-> obs_mu (B, N, D), obs_logstd or None, state_out (B, S), reward (B,), term_logit (B,), avail or None."""
        B, N, D = obs.shape
        S = state.shape[1]
        x = torch.cat([self.norm_obs(obs).flatten(1), self.norm_state(state), self.action_input(actions)], -1)
        out = self.mlp(x)
        mu = out[:, : N * D].reshape(B, N, D) * self.obs_target_mask()
        logstd = None
        if self.cfg.obs_loss == "nll":
            logstd = soft_clamp(out[:, N * D : 2 * N * D].reshape(B, N, D), LOGSTD_MIN, LOGSTD_MAX)
        o = self.obs_width
        avail = out[:, o + S + 2 :].reshape(B, N, self.spec.n_actions) if self.spec.discrete else None
        return mu, logstd, out[:, o : o + S], out[:, o + S], out[:, o + S + 1], avail

    def _parts(self, batch):
        mu, logstd, s, r, t, a = self.forward_n(batch["obs"], batch["state"], batch["actions"])
        target = self.obs_target(batch["obs"], batch["next_obs"])
        mse = masked_mse(mu, target, self.obs_mask)
        l_obs = mse if logstd is None else masked_nll(mu, logstd, target, self.obs_target_mask(), self.cfg.nll_beta)
        return l_obs, mse, self.outcome_losses(s, self.cfg.predict_delta, r, t, a, batch)

    def losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        l_obs, _, parts = self._parts(batch)
        total = self.cfg.w_obs * l_obs.mean() + self.weighted(parts).mean()
        return total, {"obs": float(l_obs.detach().mean()), **{k: float(v.detach().mean()) for k, v in parts.items()}}

    def holdout_error(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, 1): the selection score (see ``WorldNet.holdout_error``)."""
        if self.cfg.select_by == "state_obs":
            p = self.predict(batch["obs"], batch["state"], batch["actions"])
            return self.state_obs_error(batch, p["next_obs"], p["next_state"])[:, None]
        _, mse, parts = self._parts(batch)
        return (self.cfg.w_obs * mse + self.weighted(parts))[:, None]

    def predict(self, obs: torch.Tensor, state: torch.Tensor, actions: torch.Tensor,
                generator: torch.Generator | None = None, state_is_prediction: bool = False) -> dict[str, torch.Tensor]:
        """Same outputs as ``LogoNet.predict`` (actions raw); u is all zeros (the joint model has no uncertainty).
        ``state_is_prediction`` is read by LOGO's hybrid state form only (ignored here)."""
        mu, _, s, r, t, a = self.forward_n(obs, state, actions)
        return {"next_obs": self.obs_from_target(obs, mu),
                "next_state": self.state_from_target(state, s, self.cfg.predict_delta),
                "reward": self.reward_from_target(r), "term_logit": t, "avail_logits": a,
                "u": torch.zeros(obs.shape[0], dtype=obs.dtype, device=obs.device)}
