"""The networks of the three world models, as plain functions of tensors.

Every network holds its normalisers and data bounds as buffers, so ``net.predict(obs, state,
action_input)`` maps raw tensors to raw next-step predictions with nothing outside it: that
function is the reference the fused kernels are checked against.

- ``LogoNet``: LOGO's local (predictive) model per agent with shared weights and an agent
  embedding (or per-agent weights), its reconstruction decoder and auxiliary-state head, and
  the deductive (global) model over the concatenated local predictions.
- ``JointNet``: one centralised MLP from every observation, the state and the joint action.
- ``EnsembleNet``: a MOPO-style ensemble of Gaussian MLPs evaluated in one batched forward
  with stacked weights.

Shapes: B rows, N agents, D = obs_dim, S = state_dim, A = N * action_size (joint action input).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data.schema import DatasetSpec
from .config import WorldModelConfig

# Soft bounds on predicted log-stds (normalised units): wide enough for any data, tight
# enough that exp(-2 * logstd) in the NLL never overflows.
_LOGSTD_MIN, _LOGSTD_MAX = -5.0, 2.0


def _state_disagreement(aux: torch.Tensor, ded: torch.Tensor, inv_std: torch.Tensor) -> torch.Tensor:
    """LOGO uncertainty u = ||(aux - ded) * inv_std||_2 per row: aux, ded (B, S), inv_std (S,) -> (B,)."""
    from ..ops import state_disagreement

    return state_disagreement(aux, ded, inv_std)


def soft_clamp(x: torch.Tensor, lo: torch.Tensor | float, hi: torch.Tensor | float) -> torch.Tensor:
    """Smooth clamp to (lo, hi) that keeps gradients everywhere (MOPO's log-variance bounding)."""
    x = hi - F.softplus(hi - x)
    return lo + F.softplus(x - lo)


class GroupLinear(nn.Module):
    """y[..., g, :] = x[..., g, :] @ W[g] + b[g] for G weight groups; G = 1 shares one weight.

    x: (..., d_in) when groups == 1 (any leading dims), else (B, G, d_in) -> (B, G, d_out).
    Groups are the agents (per-agent weights) or the ensemble members (stacked weights), so
    every group runs in one batched matmul.
    """

    def __init__(self, groups: int, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(groups, d_in, d_out))
        self.bias = nn.Parameter(torch.empty(groups, d_out))

    def reset_parameters(self, generator: torch.Generator) -> None:
        bound = 1.0 / math.sqrt(max(1, self.weight.shape[1]))  # nn.Linear's default init
        with torch.no_grad():
            self.weight.uniform_(-bound, bound, generator=generator)
            self.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.shape[0] == 1:
            return x @ self.weight[0] + self.bias[0]
        return torch.einsum("bgi,gio->bgo", x, self.weight) + self.bias


class GroupMLP(nn.Module):
    """``layers`` hidden layers of width ``hidden`` with SiLU, then a linear output; see GroupLinear."""

    def __init__(self, groups: int, d_in: int, hidden: int, d_out: int, layers: int):
        super().__init__()
        dims = [d_in] + [hidden] * layers + [d_out]
        self.linears = nn.ModuleList(GroupLinear(groups, a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, lin in enumerate(self.linears):
            x = lin(x)
            if i < len(self.linears) - 1:
                x = F.silu(x)
        return x


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-row mean squared error over the real features: pred/target (B, N, D), mask (N, D) -> (B,)."""
    se = (pred - target).square() * mask
    return se.flatten(1).sum(1) / mask.sum().clamp_min(1)


def masked_nll(mu: torch.Tensor, logstd: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
               beta: float = 0.0) -> torch.Tensor:
    """Per-row Gaussian NLL (constant dropped) over the real features: (B, ..., D) with mask broadcast -> (B,).

    beta > 0 is beta-NLL (Seitzer et al., 2022): each feature's NLL is weighted by the detached
    variance**beta, so features given a large variance still get a gradient on their mean
    (beta = 0: plain NLL; beta = 1: the mean's gradient equals MSE's).
    """
    nll = 0.5 * (mu - target).square() * torch.exp(-2.0 * logstd) + logstd
    if beta:
        nll = nll * torch.exp(2.0 * beta * logstd).detach()
    mask = torch.broadcast_to(mask, nll.shape)
    return (nll * mask).flatten(1).sum(1) / mask[0].sum().clamp_min(1)


def row_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B,) mean squared error per row."""
    return (pred - target).square().flatten(1).mean(1)


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
    """Shared parts: normalisers and bounds as buffers, action encoding, target conversion.

    Subclasses implement ``losses(batch) -> (total, parts)``, ``holdout_error(batch) -> (B, M)``
    and ``predict(obs, state, act_in, generator=None) -> dict`` (see ``LogoNet``).
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
        """Per-row losses of next state (MSE), reward (MSE), termination and next avail (BCE)."""
        out = {
            "state": row_mse(state_out, self.state_target(batch["state"], batch["next_state"], state_delta)),
            "reward": (reward_out - self.reward_target(batch["reward"])).square(),
            "term": F.binary_cross_entropy_with_logits(term_logit, batch["terminal"].float(), reduction="none"),
        }
        if avail_logits is not None and "next_avail" in batch:
            bce = F.binary_cross_entropy_with_logits(avail_logits, batch["next_avail"].float(), reduction="none")
            out["avail"] = bce.flatten(1).mean(1)
        return out

    def _weighted(self, parts: dict[str, torch.Tensor], prefix: str = "") -> torch.Tensor:
        w = {"state": self.cfg.w_state, "reward": self.cfg.w_reward, "term": self.cfg.w_term, "avail": self.cfg.w_avail}
        return sum(w[k] * v.mean() for k, v in parts.items())

    @staticmethod
    def outcome_score(parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """The unweighted holdout score of the outcome parts, per row."""
        return sum(parts.values())


class LogoNet(WorldNet):
    """LOGO: per-agent local model + auxiliary-state head + deductive global model."""

    def __init__(self, spec: DatasetSpec, cfg: WorldModelConfig):
        super().__init__(spec, cfg)
        N, D, S = spec.n_agents, spec.obs_dim, spec.state_dim
        A = N * spec.action_size
        G = N if cfg.per_agent_weights else 1
        E = cfg.agent_embed
        self.agent_embedding = nn.Parameter(torch.zeros(N, E)) if E > 0 else None
        self.encoder = GroupMLP(G, D + A + S + E, cfg.hidden, cfg.latent, cfg.layers)
        self.obs_head = GroupMLP(G, cfg.latent, cfg.hidden, D * (2 if cfg.obs_loss == "nll" else 1), 1)
        self.recon_head = GroupMLP(G, cfg.latent, cfg.hidden, D, 1)
        self.pool_query = nn.Parameter(torch.zeros(cfg.latent)) if cfg.pool == "attention" else None
        self.aux_head = GroupMLP(1, cfg.latent, cfg.hidden, S, 1)
        ctx = S + A
        self.ded_encoder = GroupMLP(1, N * D + (ctx if cfg.deductive_context == "all" else 0), cfg.hidden,
                                    cfg.hidden, cfg.layers - 1)
        self.ded_state = GroupLinear(1, cfg.hidden, S)
        n_avail = N * spec.n_actions if spec.discrete else 0
        self.ded_outcome = GroupLinear(1, cfg.hidden + (ctx if cfg.deductive_context == "reward" else 0), 2 + n_avail)

    @property
    def ded_state_delta(self) -> bool:
        # Only a deductive model that sees the current state can predict a change from it.
        return self.cfg.predict_delta and self.cfg.deductive_context == "all"

    def reset_parameters(self, generator: torch.Generator) -> None:
        super().reset_parameters(generator)
        with torch.no_grad():
            if self.agent_embedding is not None:
                self.agent_embedding.normal_(0.0, 1.0, generator=generator)
            if self.pool_query is not None:
                self.pool_query.normal_(0.0, 1.0 / math.sqrt(self.pool_query.numel()), generator=generator)

    def local(self, obs_n: torch.Tensor, state_n: torch.Tensor, act_in: torch.Tensor):
        """The predictive (local) model on normalised inputs.

        obs_n: (B, N, D), state_n: (B, S), act_in: (B, A). Returns
        z (B, N, latent), obs_mu (B, N, D) normalised next-obs target, obs_logstd (B, N, D) or None,
        recon (B, N, D) the reconstructed obs_n, aux (B, S) the auxiliary head's next-state target.
        """
        B, N, D = obs_n.shape
        parts = [obs_n, act_in[:, None].expand(B, N, -1), state_n[:, None].expand(B, N, -1)]
        if self.agent_embedding is not None:
            parts.append(self.agent_embedding.expand(B, N, -1))
        z = self.encoder(torch.cat(parts, -1))
        head = self.obs_head(z)
        mu, logstd = head[..., :D] * self.obs_target_mask(), None
        if self.cfg.obs_loss == "nll":
            logstd = soft_clamp(head[..., D:], _LOGSTD_MIN, _LOGSTD_MAX)
        recon = self.recon_head(z) * self.obs_mask
        if self.pool_query is None:
            pooled = z.mean(1)
        else:
            weights = torch.softmax(z @ self.pool_query / math.sqrt(z.shape[-1]), dim=1)  # (B, N)
            pooled = (weights[..., None] * z).sum(1)
        return z, mu, logstd, recon, self.aux_head(pooled)

    def deduce(self, next_obs_n: torch.Tensor, state_n: torch.Tensor, act_in: torch.Tensor):
        """The deductive (global) model: next_obs_n (B, N, D) normalised local next obs ->
        state target (B, S), reward target (B,), termination logit (B,), avail logits (B, N, n_actions) or None."""
        B = next_obs_n.shape[0]
        x = next_obs_n.flatten(1)
        ctx = torch.cat([state_n, act_in], -1)
        if self.cfg.deductive_context == "all":
            x = torch.cat([x, ctx], -1)
        h = F.silu(self.ded_encoder(x))
        state_out = self.ded_state(h)
        rest = self.ded_outcome(torch.cat([h, ctx], -1) if self.cfg.deductive_context == "reward" else h)
        avail = rest[:, 2:].reshape(B, self.spec.n_agents, self.spec.n_actions) if self.spec.discrete else None
        return state_out, rest[:, 0], rest[:, 1], avail

    def _forward_train(self, batch: dict[str, torch.Tensor]):
        obs, state = batch["obs"], batch["state"]
        act_in = self.action_input(batch["actions"])
        obs_n, state_n = self.norm_obs(obs), self.norm_state(state)
        _, mu, logstd, recon, aux = self.local(obs_n, state_n, act_in)
        pred_next_n = self.norm_obs(self.obs_from_target(obs, mu))
        return obs_n, state_n, act_in, mu, logstd, recon, aux, pred_next_n

    def losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.cfg
        obs_n, state_n, act_in, mu, logstd, recon, aux, pred_next_n = self._forward_train(batch)
        target = self.obs_target(batch["obs"], batch["next_obs"])
        l_obs = (masked_mse(mu, target, self.obs_mask) if logstd is None
                 else masked_nll(mu, logstd, target, self.obs_target_mask(), cfg.nll_beta))
        l_recon = masked_mse(recon, obs_n, self.obs_mask)
        l_aux = row_mse(aux, self.state_target(batch["state"], batch["next_state"], cfg.predict_delta))
        # The deductive model learns from the true next observations and, through the
        # regulariser, from the local model's own predictions (detached: no gradient into the
        # local model), so it stays accurate on what it is fed at rollout time. Both passes run
        # as one batch of 2B rows.
        B = obs_n.shape[0]
        s, r, t, a = self.deduce(torch.cat([self.norm_obs(batch["next_obs"]), pred_next_n.detach()]),
                                 state_n.repeat(2, 1), act_in.repeat(2, 1))
        true_parts = self.outcome_losses(s[:B], self.ded_state_delta, r[:B], t[:B], None if a is None else a[:B],
                                         batch)
        reg_parts = self.outcome_losses(s[B:], self.ded_state_delta, r[B:], t[B:], None if a is None else a[B:],
                                        batch)
        total = (cfg.w_obs * l_obs.mean() + cfg.w_recon * l_recon.mean() + cfg.w_aux * l_aux.mean()
                 + self._weighted(true_parts) + cfg.w_reg * self._weighted(reg_parts))
        parts = {"obs": l_obs.mean(), "recon": l_recon.mean(), "aux": l_aux.mean(),
                 **{k: v.mean() for k, v in true_parts.items()}}
        return total, {k: float(v.detach()) for k, v in parts.items()}

    def holdout_error(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, 1): next-obs MSE + rollout-mode (deductive on predicted obs) outcome losses, normalised."""
        obs_n, state_n, act_in, mu, _, _, _, pred_next_n = self._forward_train(batch)
        l_obs = masked_mse(mu, self.obs_target(batch["obs"], batch["next_obs"]), self.obs_mask)
        s, r, t, a = self.deduce(pred_next_n, state_n, act_in)
        return (l_obs + self.outcome_score(self.outcome_losses(s, self.ded_state_delta, r, t, a, batch)))[:, None]

    def predict(self, obs: torch.Tensor, state: torch.Tensor, act_in: torch.Tensor,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """One LOGO step on raw tensors (the reference of the fused kernel).

        obs: (B, N, D), state: (B, S), act_in: (B, A) from ``action_input``. Returns raw
        next_obs (B, N, D) (padding exactly 0), next_state (B, S) from the deductive model,
        aux_state (B, S) from the auxiliary head, reward (B,), term_logit (B,),
        avail_logits (B, N, n_actions) or None, and u (B,) = ||aux - ded|| in normalised state units.
        """
        obs_n, state_n = self.norm_obs(obs), self.norm_state(state)
        _, mu, _, _, aux = self.local(obs_n, state_n, act_in)
        next_obs = self.obs_from_target(obs, mu)
        s, r, t, a = self.deduce(self.norm_obs(next_obs), state_n, act_in)
        next_state = self.state_from_target(state, s, self.ded_state_delta)
        aux_state = self.state_from_target(state, aux, self.cfg.predict_delta)
        u = _state_disagreement(aux_state, next_state, 1.0 / self.state_std)
        return {"next_obs": next_obs, "next_state": next_state, "aux_state": aux_state,
                "reward": self.reward_from_target(r), "term_logit": t, "avail_logits": a, "u": u}


class JointNet(WorldNet):
    """The joint baseline: one MLP from (every obs, state, joint action) to every next-step quantity."""

    def __init__(self, spec: DatasetSpec, cfg: WorldModelConfig, hidden: int):
        super().__init__(spec, cfg)
        N, D, S = spec.n_agents, spec.obs_dim, spec.state_dim
        n_avail = N * spec.n_actions if spec.discrete else 0
        self.obs_width = N * D * (2 if cfg.obs_loss == "nll" else 1)
        d_in = N * D + S + N * spec.action_size
        self.mlp = GroupMLP(1, d_in, hidden, self.obs_width + S + 2 + n_avail, cfg.layers)

    def forward_n(self, obs: torch.Tensor, state: torch.Tensor, act_in: torch.Tensor):
        """-> obs_mu (B, N, D), obs_logstd or None, state_out (B, S), reward (B,), term_logit (B,), avail or None."""
        B, N, D = obs.shape
        S = state.shape[1]
        out = self.mlp(torch.cat([self.norm_obs(obs).flatten(1), self.norm_state(state), act_in], -1))
        mu = out[:, : N * D].reshape(B, N, D) * self.obs_target_mask()
        logstd = None
        if self.cfg.obs_loss == "nll":
            logstd = soft_clamp(out[:, N * D : 2 * N * D].reshape(B, N, D), _LOGSTD_MIN, _LOGSTD_MAX)
        o = self.obs_width
        avail = out[:, o + S + 2 :].reshape(B, N, self.spec.n_actions) if self.spec.discrete else None
        return mu, logstd, out[:, o : o + S], out[:, o + S], out[:, o + S + 1], avail

    def _parts(self, batch):
        mu, logstd, s, r, t, a = self.forward_n(batch["obs"], batch["state"], self.action_input(batch["actions"]))
        target = self.obs_target(batch["obs"], batch["next_obs"])
        mse = masked_mse(mu, target, self.obs_mask)
        l_obs = mse if logstd is None else masked_nll(mu, logstd, target, self.obs_target_mask(), self.cfg.nll_beta)
        return l_obs, mse, self.outcome_losses(s, self.cfg.predict_delta, r, t, a, batch)

    def losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        l_obs, _, parts = self._parts(batch)
        total = self.cfg.w_obs * l_obs.mean() + self._weighted(parts)
        return total, {"obs": float(l_obs.detach().mean()), **{k: float(v.detach().mean()) for k, v in parts.items()}}

    def holdout_error(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        _, mse, parts = self._parts(batch)
        return (mse + self.outcome_score(parts))[:, None]

    def predict(self, obs: torch.Tensor, state: torch.Tensor, act_in: torch.Tensor,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Same outputs as ``LogoNet.predict``; u is all zeros (the joint model has no uncertainty)."""
        mu, _, s, r, t, a = self.forward_n(obs, state, act_in)
        return {"next_obs": self.obs_from_target(obs, mu),
                "next_state": self.state_from_target(state, s, self.cfg.predict_delta),
                "reward": self.reward_from_target(r), "term_logit": t, "avail_logits": a,
                "u": torch.zeros(obs.shape[0], dtype=obs.dtype, device=obs.device)}


class EnsembleNet(WorldNet):
    """MOPO-style ensemble: M Gaussian MLPs with stacked weights, run in one batched forward.

    Each member maps (every obs, state, joint action) to a Gaussian over the normalised
    [next-obs target, next-state target, reward] vector, plus termination and avail logits.
    ``elites`` (buffer) holds the members with the lowest holdout error after training.
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

    def forward_n(self, obs: torch.Tensor, state: torch.Tensor, act_in: torch.Tensor):
        """-> mean (B, M, G), logstd (B, M, G), term_logit (B, M), avail (B, M, N, n_actions) or None; G = N*D+S+1."""
        B = obs.shape[0]
        M, G = self.cfg.n_members, self.gauss_dim
        x = torch.cat([self.norm_obs(obs).flatten(1), self.norm_state(state), act_in], -1)
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

    def _squared_error(self, mean, target):
        """(B, M): obs MSE over real features + state MSE + reward squared error (the joint model's score)."""
        se = (mean - target).square()
        N, D, S = self.spec.n_agents, self.spec.obs_dim, self.spec.state_dim
        obs_mask = self.obs_mask.flatten().to(se.dtype)
        obs = (se[..., : N * D] * obs_mask).sum(-1) / obs_mask.sum().clamp_min(1)
        return obs + se[..., N * D : N * D + S].mean(-1) + se[..., -1]

    def losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        mean, logstd, term, avail = self.forward_n(batch["obs"], batch["state"], self.action_input(batch["actions"]))
        target = self._targets(batch)
        # masked_nll averages over (M, G): x M makes it a sum over members.
        nll = masked_nll(mean, logstd, target, self.gauss_mask, self.cfg.nll_beta)
        nll = nll * self.cfg.n_members
        outcome = self._outcome(term, avail, batch).sum(1)
        # MOPO's penalty keeps the learned log-std bounds tight.
        bound_reg = 0.01 * (self.max_logstd.sum() - self.min_logstd.sum()) / self.gauss_dim
        total = nll.mean() + self.cfg.w_term * outcome.mean() + bound_reg
        mse = self._squared_error(mean, target).mean()
        parts = {"nll": nll.mean(), "mse": mse, "term": outcome.mean()}
        return total, {k: float(v.detach()) for k, v in parts.items()}

    def holdout_error(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, M): per-member squared error of the mean + termination/avail BCE (elites are chosen by it)."""
        mean, _, term, avail = self.forward_n(batch["obs"], batch["state"], self.action_input(batch["actions"]))
        return self._squared_error(mean, self._targets(batch)) + self._outcome(term, avail, batch)

    def predict(self, obs: torch.Tensor, state: torch.Tensor, act_in: torch.Tensor,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Mean of the elites (``generator`` None) or, with a generator, MOPO sampling: a random elite per
        row and a Gaussian draw from it. u (B,) = max over elites of ||std|| (normalised units)."""
        B, N, D = obs.shape
        S = state.shape[1]
        mean, logstd, term, avail = self.forward_n(obs, state, act_in)
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


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def matched_hidden(spec: DatasetSpec, cfg: WorldModelConfig, kind: str = "joint") -> int:
    """The width whose parameter count is closest to LOGO's for ``spec`` and ``cfg``.

    kind: "joint" (the whole joint MLP) or "member" (one ensemble member, whose Gaussian head
    is wider). Networks are built on the meta device, so this costs no memory.
    """
    one_member = cfg.replace(n_members=1, n_elites=1)
    with torch.device("meta"):
        target = count_parameters(LogoNet(spec, cfg))

        def size(h: int) -> int:
            net = JointNet(spec, cfg, h) if kind == "joint" else EnsembleNet(spec, one_member, h)
            return count_parameters(net)

        lo, hi = 1, 8
        while size(hi) < target and hi < 1 << 16:
            lo, hi = hi, hi * 2
        while lo < hi:  # smallest width reaching the target
            mid = (lo + hi) // 2
            if size(mid) < target:
                lo = mid + 1
            else:
                hi = mid
        return min((lo, max(1, lo - 1)), key=lambda h: abs(size(h) - target))
