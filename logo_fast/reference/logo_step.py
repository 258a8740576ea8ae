"""Reference of the LOGO step: the one definition of LOGO's forward pass (DESIGN.md §1-2).

Training (``LogoNet``), prediction (``LogoNet.predict``) and the fused kernels' tests all call
the functions here, so there is exactly one statement of the math. Every function is plain
PyTorch (autograd works through it; float64 inputs stay float64).

Shapes: B rows, N agents, D obs_dim, S state_dim, H hidden, L latent, E agent-embedding size,
A the joint-action input width (N * n_actions for discrete tasks, N * act_dim for continuous),
G weight groups (1 = shared across agents, N = per-agent weights).

The step's algebra (what makes it fast on every backend):

- The local encoder's first layer over x_i = [o_i, a, s, e_i] is split by its rows into
  W_o·o_i (per agent), W_c·[a, s] (once per row instead of N times; for discrete actions the
  joint-action part is a sum of N rows of the weight, a gather, not a one-hot matmul over
  N * n_actions columns) and W_e·e_i (a per-agent constant, a bias).
- The deductive model's first layer over concat_i(x_i) is sum_i W_i·x_i; here it runs as one
  matmul over the flattened agents (the fastest form for PyTorch), and the fused kernel
  accumulates it agent by agent so the concatenation never exists.
- The auxiliary-state head pools the agents' latents (mean or attention) the same way.

The deductive model sees only the local predictions by default (``context == "none"``): the
local model's normalised predicted deltas plus the normalised absolute predicted next obs
(absolute values for the heads that need them: reward, termination, next avail); it predicts
the next state as a normalised delta. ``"reward"`` and ``"all"`` add (state, joint action) to
the outcome heads / to every head: ablations, not defaults. ``state_target="absolute"`` makes the
deductive state head predict the normalised next state itself instead of its change.
``state_target="hybrid"`` has both heads (2S outputs: the delta's S columns, then the absolute
state's): a step from a real state adds the delta (the more accurate one-step form), a step from a
predicted state (every rollout step after the first) infers the state from the local predictions
alone, so a rollout's state error does not accumulate (``resolve_state_form``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

CONTEXTS = ("none", "reward", "all")
POOLS = ("mean", "attention")


class StepMeta(NamedTuple):
    """Static sizes and switches of one LOGO network (hashable: fixed per model)."""

    n_agents: int
    obs_dim: int
    state_dim: int
    n_actions: int  # discrete tasks: actions per agent; 0 = continuous
    act_dim: int  # continuous tasks: action size per agent (padded); discrete: 1
    predict_delta: bool  # the local obs head predicts a normalised change (else a normalised absolute)
    pool: str  # "mean" | "attention"
    context: str  # "none" | "reward" | "all"
    # the deductive state head predicts a normalised "delta", the "absolute" state or both ("hybrid")
    state_target: str = "delta"


class Layers(NamedTuple):
    """An MLP as lists of grouped weights (G, d_in, d_out) and biases (G, d_out); SiLU between layers."""

    weights: list[torch.Tensor]
    biases: list[torch.Tensor]


class StepWeights(NamedTuple):
    """Every tensor one LOGO step reads: normalisers (float32 buffers) and the network's weights.

    Empty tensors / empty ``Layers`` stand for parts a configuration does not have (no agent
    embedding, no attention query, a shared auxiliary encoder).
    """

    obs_mean: torch.Tensor  # (N, D)
    obs_std: torch.Tensor  # (N, D)
    obs_mask: torch.Tensor  # (N, D) 1.0 on real (unpadded) features
    dobs_mean: torch.Tensor  # (N, D) of next_obs - obs
    dobs_std: torch.Tensor  # (N, D)
    obs_target_mask: torch.Tensor  # (N, D) 1.0 on real features whose target varies
    state_mean: torch.Tensor  # (S,)
    state_std: torch.Tensor  # (S,)
    dstate_mean: torch.Tensor  # (S,) of next_state - state
    dstate_std: torch.Tensor  # (S,)
    u_scale: torch.Tensor  # (S,) 1 / state_std on the varying state features, 0 on constant ones
    reward_mean: torch.Tensor  # (1,)
    reward_std: torch.Tensor  # (1,)
    action_mean: torch.Tensor  # (N, act_dim) continuous; (0,) discrete
    action_std: torch.Tensor  # (N, act_dim) continuous; (0,) discrete
    act_mask: torch.Tensor  # (N, act_dim) 1.0 on real action entries (continuous); (0,) discrete
    embed: torch.Tensor  # (N, E) learned agent embedding (E may be 0)
    encoder: Layers  # local encoder: first weight (G, D + A + S + E, H), ..., last (G, H, L)
    obs_head: Layers  # (G, L, H), (G, H, D or 2D)
    aux_encoder: Layers  # empty: the auxiliary head pools the local encoder's latents
    pool_query: torch.Tensor  # (L,) attention pooling query; (0,) for mean pooling
    aux_head: Layers  # (1, L, H), (1, H, S)
    ded_trunk: Layers  # (1, N * 2D [+ S + A], H), ... (1, H, H); SiLU after the last too
    ded_state: Layers  # (1, H, S)
    ded_outcome: Layers  # (1, H [+ S + A], 2 + N * n_actions): reward, termination, avail logits


def mlp(layers: Layers, x: torch.Tensor, start: int = 0, final_activation: bool = False) -> torch.Tensor:
    """Apply ``layers`` from index ``start`` (SiLU between layers, and after the last if ``final_activation``).

    x: (..., d_in) for shared weights (G = 1), (B, G, d_in) for grouped ones.
    """
    n = len(layers.weights)
    for i in range(start, n):
        w, b = layers.weights[i], layers.biases[i]
        if w.shape[0] == 1:  # addmm fuses the bias add into the matmul (a separate add is ~20% of a CPU step)
            x = torch.addmm(b[0], x.reshape(-1, x.shape[-1]), w[0]).view(*x.shape[:-1], w.shape[-1])
        else:
            x = torch.einsum("bgi,gio->bgo", x, w) + b
        if i < n - 1 or final_activation:
            x = F.silu(x)
    return x


def normalise(meta: StepMeta, w: StepWeights, obs: torch.Tensor, state: torch.Tensor, actions: torch.Tensor):
    """Raw inputs -> obs_n (B, N, D), state_n (B, S), act.

    act: discrete (B, N) int64 action indices (used as a gather); continuous (B, A) the
    normalised joint action with padding zeroed.
    """
    obs_n = (obs - w.obs_mean) / w.obs_std * w.obs_mask
    state_n = (state - w.state_mean) / w.state_std
    if meta.n_actions:
        act = actions.long()
    else:
        act = ((actions - w.action_mean) / w.action_std * w.act_mask).flatten(1)
    return obs_n, state_n, act


def joint_action_onehot(meta: StepMeta, act: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The joint action as the flat input the ablation contexts see: (B, A)."""
    if meta.n_actions:
        return F.one_hot(act, meta.n_actions).to(dtype).flatten(1)
    return act


def encoder_first_layer(meta: StepMeta, layers: Layers, embed: torch.Tensor, obs_n: torch.Tensor,
                        state_n: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """Pre-activation of the local encoder's first layer, by the split algebra: (B, N, H).

    Equal (to round-off) to concat([obs_n_i, onehot(a) or a, state_n, e_i]) @ W + b per agent.
    """
    N, D, S = meta.n_agents, meta.obs_dim, meta.state_dim
    W, b = layers.weights[0], layers.biases[0]  # (G, D + A + S + E, H), (G, H)
    G = W.shape[0]
    A = N * (meta.n_actions or meta.act_dim)
    W_o, W_a, W_s, W_e = W[:, :D], W[:, D : D + A], W[:, D + A : D + A + S], W[:, D + A + S :]
    bias = b[0] if G == 1 else b  # (H,) | (N, H)
    if embed.shape[-1]:
        bias = bias + (embed @ W_e[0] if G == 1 else torch.einsum("ne,neh->nh", embed, W_e))  # (N, H)
    B, H = obs_n.shape[0], W.shape[-1]
    agents = torch.arange(N, device=obs_n.device)
    if G == 1:
        context = state_n @ W_s[0]  # (B, H): once per row, not once per agent
        if meta.n_actions:
            # Joint action: the sum over agents j of row (j, a_j) of W_a, a gather (embedding_bag), not a
            # one-hot matmul over N * n_actions columns.
            context = context + F.embedding_bag(act + agents * meta.n_actions, W_a[0], mode="sum")
        else:
            context = torch.addmm(context, act, W_a[0])
        out = (context[:, None] + bias).expand(B, N, H).reshape(B * N, H)  # bias is (H,) with no embedding
        return torch.addmm(out, obs_n.reshape(B * N, D), W_o[0]).view(B, N, H)
    context = torch.einsum("bs,nsh->bnh", state_n, W_s)  # per-agent weights: every agent its own W_c
    if meta.n_actions:
        table = W_a.reshape(G, N, meta.n_actions, H)
        context = context + table[:, agents, act].sum(2).transpose(0, 1)  # (G, B, N_j, H) -> (B, G, H)
    else:
        context = context + torch.einsum("ba,nah->bnh", act, W_a)
    return torch.einsum("bnd,ndh->bnh", obs_n, W_o) + context + bias


def local_encode(meta: StepMeta, layers: Layers, embed: torch.Tensor, obs_n: torch.Tensor, state_n: torch.Tensor,
                 act: torch.Tensor) -> torch.Tensor:
    """The local encoder: per-agent latents z (B, N, L)."""
    h = F.silu(encoder_first_layer(meta, layers, embed, obs_n, state_n, act))
    return mlp(layers, h, start=1)


def pool_latents(meta: StepMeta, z: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Pool the agents' latents: z (B, N, L) -> (B, L), mean or attention over agents."""
    if meta.pool == "mean":
        return z.mean(1)
    weights = torch.softmax(z @ query / z.shape[-1] ** 0.5, dim=1)  # (B, N)
    return (weights[..., None] * z).sum(1)


def obs_delta_input(meta: StepMeta, w: StepWeights, obs: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """The deductive model's delta input from raw obs: (next_obs - obs - dobs_mean) / dobs_std, padding 0."""
    return (next_obs - obs - w.dobs_mean) / w.dobs_std * w.obs_mask


def deduce(meta: StepMeta, w: StepWeights, delta_n: torch.Tensor, next_obs_n: torch.Tensor,
           state_n: torch.Tensor | None = None, act: torch.Tensor | None = None, outcome_dropout: float = 0.0):
    """The deductive (global) model on local next-step quantities.

    delta_n: (B, N, D) normalised next-obs deltas; next_obs_n: (B, N, D) normalised absolute next
    obs. state_n / act are read only by the ablation contexts ("reward", "all"). ``outcome_dropout``
    (training only) drops trunk features before the reward/termination/avail heads. Returns the
    next-state delta target (B, S), the reward target (B,), the termination logit (B,) and the
    avail logits (B, N, n_actions) or None.
    """
    B = delta_n.shape[0]
    x = torch.cat([delta_n, next_obs_n], -1).flatten(1)  # (B, N * 2D): agent i's block is [delta_i, obs_i]
    ctx = None
    if meta.context != "none":
        ctx = torch.cat([state_n, joint_action_onehot(meta, act, delta_n.dtype)], -1)
    if meta.context == "all":
        x = torch.cat([x, ctx], -1)
    h = mlp(w.ded_trunk, x, final_activation=True)
    state_out = mlp(w.ded_state, h)
    h_out = F.dropout(h, outcome_dropout, training=True) if outcome_dropout else h
    rest = mlp(w.ded_outcome, torch.cat([h_out, ctx], -1) if meta.context == "reward" else h_out)
    avail = rest[:, 2:].reshape(B, meta.n_agents, meta.n_actions) if meta.n_actions else None
    return state_out, rest[:, 0], rest[:, 1], avail


def local_predict(meta: StepMeta, w: StepWeights, obs_n: torch.Tensor, state_n: torch.Tensor, act: torch.Tensor):
    """The local (predictive) model: z (B, N, L), obs-head output (B, N, D or 2D), aux target (B, S).

    The first D columns of the obs-head output are the normalised next-obs target (masked to the
    varying real features by the caller); with obs_loss="nll" the next D are log-stds.
    """
    z = local_encode(meta, w.encoder, w.embed, obs_n, state_n, act)
    head = mlp(w.obs_head, z)
    z_aux = z if not w.aux_encoder.weights else local_encode(meta, w.aux_encoder, w.embed, obs_n, state_n, act)
    aux = mlp(w.aux_head, pool_latents(meta, z_aux, w.pool_query))
    return z, head, aux


def resolve_state_form(meta: StepMeta, w: StepWeights, state_is_prediction: bool) -> tuple[StepMeta, StepWeights]:
    """A hybrid model as the single-form model one step runs: (meta, weights) with ``state_target``
    "delta" (a real input state) or "absolute" (a predicted one) and the deductive state head cut to
    that form's S columns (views, no copy). Other models come back unchanged."""
    if meta.state_target != "hybrid":
        return meta, w
    S = meta.state_dim
    cols = slice(S, 2 * S) if state_is_prediction else slice(0, S)
    head = Layers([*w.ded_state.weights[:-1], w.ded_state.weights[-1][..., cols]],
                  [*w.ded_state.biases[:-1], w.ded_state.biases[-1][..., cols]])
    return meta._replace(state_target="absolute" if state_is_prediction else "delta"), w._replace(ded_state=head)


def logo_step(meta: StepMeta, w: StepWeights, obs: torch.Tensor, state: torch.Tensor,
              actions: torch.Tensor, state_is_prediction: bool = False) -> dict[str, torch.Tensor | None]:
    """One LOGO step on raw tensors: the reference every backend of ``logo_step`` is checked against.

    obs: (B, N, D), state: (B, S), actions: (B, N) int (discrete) or (B, N, act_dim) float.
    ``state_is_prediction``: ``state`` is itself a model prediction (read by hybrid models only).
    Returns raw next_obs (B, N, D) (padding exactly 0), next_state (B, S) from the deductive
    model, aux_state (B, S) from the auxiliary head, reward (B,), term_logit (B,), avail_logits
    (B, N, n_actions) or None, and u (B,) = ||(aux_state - next_state) * u_scale||_2, the two
    paths' disagreement in normalised state units over the varying state features.
    """
    meta, w = resolve_state_form(meta, w, state_is_prediction)
    D = meta.obs_dim
    obs_n, state_n, act = normalise(meta, w, obs, state, actions)
    _, head, aux = local_predict(meta, w, obs_n, state_n, act)
    mu = head[..., :D] * w.obs_target_mask
    if meta.predict_delta:
        next_obs = (obs + w.dobs_mean + w.dobs_std * mu) * w.obs_mask
        delta_n = mu  # already (next_obs - obs - dobs_mean) / dobs_std, with padding 0
    else:
        next_obs = (w.obs_mean + w.obs_std * mu) * w.obs_mask
        delta_n = obs_delta_input(meta, w, obs, next_obs)
    next_obs_n = (next_obs - w.obs_mean) / w.obs_std * w.obs_mask
    s, r, t, a = deduce(meta, w, delta_n, next_obs_n, state_n, act)
    if meta.state_target == "delta":
        next_state = state + w.dstate_mean + w.dstate_std * s
    else:  # inferred from the local predictions alone: its error does not accumulate over a rollout
        next_state = w.state_mean + w.state_std * s
    if meta.predict_delta:
        aux_state = state + w.dstate_mean + w.dstate_std * aux
    else:
        aux_state = w.state_mean + w.state_std * aux
    u = torch.linalg.vector_norm((aux_state - next_state) * w.u_scale, dim=-1)
    return {"next_obs": next_obs, "next_state": next_state, "aux_state": aux_state,
            "reward": w.reward_mean + w.reward_std * r, "term_logit": t, "avail_logits": a, "u": u}
