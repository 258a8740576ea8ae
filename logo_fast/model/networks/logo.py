"""``LogoNet``: LOGO's local (predictive) model per agent, its auxiliary-state path and the deductive model.

The forward pass itself lives in ``logo_fast.reference.logo_step`` (one definition, used here
for training and prediction and by the fused kernels' tests); this module holds the parameters,
the losses and model selection. Which inputs each part sees (DESIGN.md §1):

- local encoder, per agent i: its observation o_i, the joint action a, the global state s and a
  learned agent embedding e_i -> latent z_i; heads on z_i: the next-obs target (a normalised
  delta, MSE or Gaussian NLL) and a reconstruction of o_i (the autoencoder loss);
- auxiliary-state path: the agents' latents (of the local encoder, or of a separate encoder
  with ``aux_encoder="separate"``, the paper's "additional encoder") pooled -> next state;
- deductive model: only the local predictions (normalised predicted deltas and normalised
  absolute predicted next obs) -> next-state delta (``deductive_state``: or the absolute next
  state, or both for "hybrid"), reward, termination, next avail logits;
  ``deductive_context`` "reward"/"all" add (s, a) to the outcome heads / every head (ablations).
- u = ||aux_state - ded_state|| in normalised state units over the varying state features.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...data.schema import DatasetSpec
from ...reference import logo_step as ref
from ..config import WorldModelConfig
from .layers import GroupLinear, GroupMLP, soft_clamp
from .losses import masked_mse, masked_nll, row_mse, scaled_error
from .world import WorldNet

# Soft bounds on predicted log-stds (normalised units): wide enough for any data, tight
# enough that exp(-2 * logstd) in the NLL never overflows.
LOGSTD_MIN, LOGSTD_MAX = -5.0, 2.0


def _layers(module: GroupMLP | GroupLinear | None) -> ref.Layers:
    if module is None:
        return ref.Layers([], [])
    linears = module.linears if isinstance(module, GroupMLP) else [module]
    return ref.Layers([lin.weight for lin in linears], [lin.bias for lin in linears])


class LogoNet(WorldNet):
    """LOGO: per-agent local model + auxiliary-state path + deductive global model (see the module docstring)."""

    def __init__(self, spec: DatasetSpec, cfg: WorldModelConfig):
        super().__init__(spec, cfg)
        N, D, S = spec.n_agents, spec.obs_dim, spec.state_dim
        A = N * spec.action_size
        G = N if cfg.per_agent_weights else 1
        E, H, L = cfg.agent_embed, cfg.hidden, cfg.latent
        self.meta = ref.StepMeta(n_agents=N, obs_dim=D, state_dim=S, n_actions=spec.n_actions if spec.discrete else 0,
                                 act_dim=1 if spec.discrete else spec.act_dim, predict_delta=cfg.predict_delta,
                                 pool=cfg.pool, context=cfg.deductive_context, state_target=cfg.deductive_state)
        self.agent_embedding = nn.Parameter(torch.zeros(N, E))
        # The encoder's first weight keeps the row order [o_i, a, s, e_i] so the split algebra
        # in the reference can slice it (and a concatenated input would give the same result).
        self.encoder = GroupMLP(G, D + A + S + E, H, L, cfg.layers)
        self.obs_head = GroupMLP(G, L, H, D * (2 if cfg.obs_loss == "nll" else 1), 1)
        self.recon_head = GroupMLP(G, L, H, D, 1)
        self.aux_encoder = GroupMLP(G, D + A + S + E, H, L, cfg.layers) if cfg.aux_encoder == "separate" else None
        self.pool_query = nn.Parameter(torch.zeros(L)) if cfg.pool == "attention" else None
        self.aux_head = GroupMLP(1, L, H, S, 1)
        ctx = S + A
        self.ded_trunk = GroupMLP(1, N * 2 * D + (ctx if cfg.deductive_context == "all" else 0), H, H,
                                  cfg.layers - 1)
        # hybrid: S delta columns, then S absolute-state columns (ref.resolve_state_form picks per step)
        self.ded_state = GroupLinear(1, H, S * (2 if cfg.deductive_state == "hybrid" else 1))
        n_avail = N * spec.n_actions if spec.discrete else 0
        self.ded_outcome = GroupLinear(1, H + (ctx if cfg.deductive_context == "reward" else 0), 2 + n_avail)

    def reset_parameters(self, generator: torch.Generator) -> None:
        super().reset_parameters(generator)
        with torch.no_grad():
            self.agent_embedding.normal_(0.0, 1.0, generator=generator)
            if self.pool_query is not None:
                self.pool_query.normal_(0.0, 1.0 / math.sqrt(self.pool_query.numel()), generator=generator)

    def step_weights(self) -> ref.StepWeights:
        """The tensors of one step (views of this network's parameters and buffers, autograd intact)."""
        empty = self.obs_mean.new_zeros(0)
        continuous = not self.spec.discrete
        return ref.StepWeights(
            obs_mean=self.obs_mean, obs_std=self.obs_std, obs_mask=self.obs_mask.to(self.obs_mean.dtype),
            dobs_mean=self.dobs_mean, dobs_std=self.dobs_std, obs_target_mask=self.obs_target_mask(),
            state_mean=self.state_mean, state_std=self.state_std, dstate_mean=self.dstate_mean,
            dstate_std=self.dstate_std, u_scale=self.state_live / self.state_std,
            reward_mean=self.reward_mean, reward_std=self.reward_std,
            action_mean=self.action_mean if continuous else empty, action_std=self.action_std if continuous else empty,
            act_mask=self.act_mask.to(self.obs_mean.dtype) if continuous else empty,
            embed=self.agent_embedding, encoder=_layers(self.encoder), obs_head=_layers(self.obs_head),
            aux_encoder=_layers(self.aux_encoder),
            pool_query=self.pool_query if self.pool_query is not None else empty,
            aux_head=_layers(self.aux_head), ded_trunk=_layers(self.ded_trunk), ded_state=_layers(self.ded_state),
            ded_outcome=_layers(self.ded_outcome),
        )

    # ---- training ------------------------------------------------------------------------------
    def losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        cfg, meta, D = self.cfg, self.meta, self.spec.obs_dim
        w = self.step_weights()
        obs, next_obs, state = batch["obs"], batch["next_obs"], batch["state"]
        obs_n, state_n, act = ref.normalise(meta, w, obs, state, batch["actions"])
        z, head, aux = ref.local_predict(meta, w, obs_n, state_n, act)
        mu = head[..., :D] * w.obs_target_mask
        target = self.obs_target(obs, next_obs)
        if cfg.obs_loss == "nll":
            logstd = soft_clamp(head[..., D:], LOGSTD_MIN, LOGSTD_MAX)
            l_obs = masked_nll(mu, logstd, target, w.obs_target_mask, cfg.nll_beta)
        else:
            l_obs = masked_mse(mu, target, self.obs_mask)
        l_recon = masked_mse(ref.mlp(_layers(self.recon_head), z) * self.obs_mask, obs_n, self.obs_mask)
        l_aux = row_mse(aux, self.state_target(state, batch["next_state"], cfg.predict_delta))
        # The deductive model learns from the true next observations and, through the
        # regulariser, from the local model's own predictions (detached: no gradient into the
        # local model), so it stays accurate on what it is fed at rollout time. Both passes run
        # as one batch of 2B rows.
        pred_next = self.obs_from_target(obs, mu).detach()
        pred_delta = mu.detach() if cfg.predict_delta else ref.obs_delta_input(meta, w, obs, pred_next)
        delta_in = torch.cat([ref.obs_delta_input(meta, w, obs, next_obs), pred_delta])
        obs_in = torch.cat([self.norm_obs(next_obs), self.norm_obs(pred_next)])
        s, r, t, a = ref.deduce(meta, w, delta_in, obs_in, state_n.repeat(2, 1), act.repeat(2, *[1] * (act.dim() - 1)),
                                outcome_dropout=cfg.outcome_dropout if self.training else 0.0)
        B = obs.shape[0]
        true_parts = self._outcome_parts(s[:B], r[:B], t[:B], None if a is None else a[:B], batch)
        reg_parts = self._outcome_parts(s[B:], r[B:], t[B:], None if a is None else a[B:], batch)
        total = (cfg.w_obs * l_obs.mean() + cfg.w_recon * l_recon.mean() + cfg.w_aux * l_aux.mean()
                 + self.weighted(true_parts).mean() + cfg.w_reg * self.weighted(reg_parts).mean())
        parts = {"obs": l_obs.mean(), "recon": l_recon.mean(), "aux": l_aux.mean(),
                 **{k: v.mean() for k, v in true_parts.items()}}
        return total, {k: float(v.detach()) for k, v in parts.items()}

    def _outcome_parts(self, state_out, reward_out, term_logit, avail_logits, batch) -> dict[str, torch.Tensor]:
        """Per-row outcome losses of the deductive heads; a hybrid model's state head has both forms'
        losses ("state" on the delta columns, "state_abs" on the absolute ones, each weighted w_state)."""
        form, S = self.cfg.deductive_state, self.spec.state_dim
        parts = self.outcome_losses(state_out[:, :S], form != "absolute", reward_out, term_logit, avail_logits, batch)
        if form == "hybrid":
            parts["state_abs"] = row_mse(state_out[:, S:],
                                         self.state_target(batch["state"], batch["next_state"], False))
        return parts

    def holdout_error(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, 1): the selection score (``WorldNet.holdout_error``) of the rollout-mode step.

        A hybrid model is scored on both state forms: the one-step score from the real state (delta)
        plus the absolute head's state error (its rollout form), so the kept weights serve both.
        """
        p = self.predict(batch["obs"], batch["state"], batch["actions"])
        hybrid = self.cfg.deductive_state == "hybrid"
        p_abs = None
        if hybrid:
            p_abs = self.predict(batch["obs"], batch["state"], batch["actions"], state_is_prediction=True)
        if self.cfg.select_by == "state_obs":
            score = self.state_obs_error(batch, p["next_obs"], p["next_state"])
            if hybrid:
                score = score + scaled_error(p_abs["next_state"], batch["next_state"], 1.0 / self.state_std,
                                             self.state_live)
            return score[:, None]
        obs_t = self.obs_target(batch["obs"], batch["next_obs"])
        l_obs = masked_mse(self.obs_target(batch["obs"], p["next_obs"]), obs_t, self.obs_mask)
        # the predictions back in the heads' target units (a hybrid model: [delta | absolute] columns)
        state_out = self.state_target(batch["state"], p["next_state"], self.cfg.deductive_state != "absolute")
        if hybrid:
            state_out = torch.cat([state_out, self.state_target(batch["state"], p_abs["next_state"], False)], -1)
        parts = self._outcome_parts(state_out, self.reward_target(p["reward"]), p["term_logit"], p["avail_logits"],
                                    batch)
        return (self.cfg.w_obs * l_obs + self.weighted(parts))[:, None]

    # ---- prediction ----------------------------------------------------------------------------
    def predict(self, obs: torch.Tensor, state: torch.Tensor, actions: torch.Tensor,
                generator: torch.Generator | None = None, state_is_prediction: bool = False) -> dict[str, torch.Tensor]:
        """One LOGO step on raw tensors; see ``logo_fast.reference.logo_step.logo_step`` for the outputs.

        obs: (B, N, D), state: (B, S), actions: (B, N) int or (B, N, act_dim) float (raw).
        ``state_is_prediction``: ``state`` came from the model (a hybrid model then uses its absolute head).
        """
        from ...ops.logo_step import logo_step

        return logo_step(self.meta, self.step_weights(), obs, state, actions, state_is_prediction)
