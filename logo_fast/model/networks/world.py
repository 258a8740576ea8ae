"""``WorldNet``: what every world-model network shares.

Normalisers and data bounds live in the network as buffers, so ``net.predict(obs, state,
actions)`` maps raw tensors to raw next-step predictions with nothing outside it. The shared
pieces: target conversion (normalised deltas <-> raw values), clipping to the data's bounds,
the outcome losses, and the holdout score that model selection follows (``select_by``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data.schema import DatasetSpec
from ..config import WorldModelConfig
from .layers import GroupLinear
from .losses import row_mse, scaled_error


def _stat_shapes(spec: DatasetSpec) -> dict[str, tuple[int, ...]]:
    N, D, S = spec.n_agents, spec.obs_dim, spec.state_dim
    shapes = {}
    for k in ("obs", "dobs"):
        shapes[f"{k}_mean"] = shapes[f"{k}_std"] = (N, D)
    shapes["obs_lo"] = shapes["obs_hi"] = shapes["obs_live"] = shapes["dobs_live"] = (N, D)
    for k in ("state", "dstate"):
        shapes[f"{k}_mean"] = shapes[f"{k}_std"] = (S,)
    shapes["state_lo"] = shapes["state_hi"] = shapes["state_live"] = shapes["dstate_live"] = (S,)
    for k in ("mean", "std", "lo", "hi"):
        shapes[f"reward_{k}"] = (1,)
    if not spec.discrete:
        shapes["action_mean"] = shapes["action_std"] = (N, spec.act_dim)
    return shapes


class WorldNet(nn.Module):
    """Shared parts: normalisers and bounds as buffers, action encoding, target conversion, selection.

    Subclasses implement ``losses(batch) -> (total, parts)``, ``predict(obs, state, actions,
    generator=None) -> dict`` (see ``LogoNet.predict``) and, for model selection,
    ``rollout_outputs(batch)`` (see ``holdout_error``).
    """

    n_scores = 1  # holdout error columns (ensemble: one per member)

    def __init__(self, spec: DatasetSpec, cfg: WorldModelConfig):
        super().__init__()
        self.spec, self.cfg = spec, cfg
        self.register_buffer("obs_mask", torch.as_tensor(spec.obs_mask()))
        am = spec.act_mask()
        self.register_buffer("act_mask", torch.as_tensor(am) if am is not None else torch.zeros(0, dtype=torch.bool))
        for name, shape in _stat_shapes(spec).items():
            fill = torch.ones if name.endswith(("std", "live")) else torch.zeros
            self.register_buffer(name, fill(shape))

    # ---- set-up ------------------------------------------------------------------------------
    def set_statistics(self, stats: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name in _stat_shapes(self.spec):
                getattr(self, name).copy_(stats[name])

    def statistics(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name).detach().cpu().clone() for name in _stat_shapes(self.spec)}

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Initialise every weight from ``generator`` (deterministic for a seed)."""
        for m in self.modules():
            if isinstance(m, GroupLinear):
                m.reset_parameters(generator)

    # ---- encoding ----------------------------------------------------------------------------
    def action_input(self, actions: torch.Tensor) -> torch.Tensor:
        """Joint action as a flat input: discrete (B, N) int -> one-hot (B, N * n_actions);
        continuous (B, N, act_dim) -> normalised, padding zeroed (B, N * act_dim)."""
        if self.spec.discrete:
            return F.one_hot(actions.long(), self.spec.n_actions).to(self.obs_mean.dtype).flatten(1)
        a = (actions - self.action_mean) / self.action_std
        return (a * self.act_mask).flatten(1)

    def obs_target_mask(self) -> torch.Tensor:
        """(N, D) 1.0 on the real, varying features of the next-obs target (delta or absolute)."""
        return (self.dobs_live if self.cfg.predict_delta else self.obs_live) * self.obs_mask

    def state_target_mask(self, delta: bool) -> torch.Tensor:
        """(S,) 1.0 on the varying features of the next-state target."""
        return self.dstate_live if delta else self.state_live

    def norm_obs(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.obs_mean) / self.obs_std * self.obs_mask

    def norm_state(self, state: torch.Tensor) -> torch.Tensor:
        return (state - self.state_mean) / self.state_std

    # ---- targets (normalised) <-> raw predictions ---------------------------------------------
    def obs_target(self, obs: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        if self.cfg.predict_delta:
            return (next_obs - obs - self.dobs_mean) / self.dobs_std * self.obs_mask
        return self.norm_obs(next_obs)

    def obs_from_target(self, obs: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if self.cfg.predict_delta:
            return (obs + self.dobs_mean + self.dobs_std * out) * self.obs_mask
        return (self.obs_mean + self.obs_std * out) * self.obs_mask

    def state_target(self, state: torch.Tensor, next_state: torch.Tensor, delta: bool) -> torch.Tensor:
        if delta:
            return (next_state - state - self.dstate_mean) / self.dstate_std
        return self.norm_state(next_state)

    def state_from_target(self, state: torch.Tensor, out: torch.Tensor, delta: bool) -> torch.Tensor:
        if delta:
            return state + self.dstate_mean + self.dstate_std * out
        return self.state_mean + self.state_std * out

    def reward_target(self, reward: torch.Tensor) -> torch.Tensor:
        return (reward - self.reward_mean) / self.reward_std

    def reward_from_target(self, out: torch.Tensor) -> torch.Tensor:
        return self.reward_mean + self.reward_std * out

    # ---- bounds ------------------------------------------------------------------------------
    def _clip(self, x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        m = self.cfg.clip_margin * (hi - lo) + 1e-6
        return torch.clamp(x, lo - m, hi + m)

    def clip_obs(self, obs: torch.Tensor) -> torch.Tensor:
        return self._clip(obs, self.obs_lo, self.obs_hi) * self.obs_mask

    def clip_state(self, state: torch.Tensor) -> torch.Tensor:
        return self._clip(state, self.state_lo, self.state_hi)

    def clip_reward(self, reward: torch.Tensor) -> torch.Tensor:
        return self._clip(reward, self.reward_lo[0], self.reward_hi[0])

    # ---- shared loss pieces ------------------------------------------------------------------
    def outcome_losses(
        self,
        state_out: torch.Tensor,
        state_delta: bool,
        reward_out: torch.Tensor,
        term_logit: torch.Tensor,
        avail_logits: torch.Tensor | None,
        batch: dict[str, torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """Per-row losses (B,) of next state (MSE), reward (MSE), termination and next avail (BCE)."""
        out = {
            "state": row_mse(state_out, self.state_target(batch["state"], batch["next_state"], state_delta)),
            "reward": (reward_out - self.reward_target(batch["reward"])).square(),
            "term": F.binary_cross_entropy_with_logits(term_logit, batch["terminal"].float(), reduction="none"),
        }
        if avail_logits is not None and "next_avail" in batch:
            bce = F.binary_cross_entropy_with_logits(avail_logits, batch["next_avail"].float(), reduction="none")
            out["avail"] = bce.flatten(1).mean(1)
        return out

    def weighted(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-row weighted sum (B,) of outcome parts with the config's w_state/w_reward/w_term/w_avail
        ("state_abs", a hybrid LOGO head's absolute-state loss, weighs like the state)."""
        cfg = self.cfg
        w = {"state": cfg.w_state, "state_abs": cfg.w_state, "reward": cfg.w_reward, "term": cfg.w_term,
             "avail": cfg.w_avail}
        return sum(w[k] * v for k, v in parts.items())

    # ---- model selection ---------------------------------------------------------------------
    def state_obs_error(self, batch: dict[str, torch.Tensor], next_obs: torch.Tensor,
                        next_state: torch.Tensor) -> torch.Tensor:
        """Per-row normalised error of raw next-obs/state predictions (B, ...) -> (B,).

        The mean squared error per feature divided by the training data's variance, over the
        features that vary: next state plus next obs, the quantities the accuracy reports measure.
        """
        s = scaled_error(next_state, batch["next_state"], 1.0 / self.state_std, self.state_live)
        o = scaled_error(next_obs, batch["next_obs"], 1.0 / self.obs_std, self.obs_live * self.obs_mask)
        return s + o

    def holdout_error(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, n_scores): the score early stopping and the kept weights follow (lower is better).

        ``config.select_by``: "state_obs" (default) = normalised next-state + next-obs error of
        the model's rollout-mode prediction; "weighted" = the weighted training objective in
        rollout mode (w_obs * obs + w_state * state + w_reward * reward + w_term * term +
        w_avail * avail, in normalised units).
        """
        raise NotImplementedError
