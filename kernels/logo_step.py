"""Triton kernel for ``logo_step``: one fused LOGO step per tile of rows (DESIGN.md §2, "The step's algebra").

One program owns BLOCK_B rows. It computes the row context once,

    c = W_s·s_n + sum_j W_a[j, a_j]          (discrete: a gather of N weight rows)
    c = W_s·s_n + W_a·a_n                    (continuous)

then walks the agents i = 0..N-1, keeping three running quantities in registers:

    h_i   = silu(W_o·o_n,i + c + b_0 + W_e·e_i)        local encoder, first layer (split algebra)
    z_i   = W_2·silu(W_1·h_i + b_1) + b_2              the hidden->hidden->latent layers, streamed
    mu_i  = (W_h1·silu(W_h0·z_i + b_h0) + b_h1) * m_i  obs head -> next obs (written out)
    pool += z_i                                        mean-pooled latent
    ded  += W_d[i, delta]·delta_i + W_d[i, obs]·obs'_n,i   deductive first layer, agent by agent

so neither the per-agent latents nor the concatenated deductive input ever exist in memory. After
the loop: the auxiliary head on pool / N, the deductive trunk's second layer streamed into the state
head and the outcome head (reward, termination, avail logits, BLOCK_O columns at a time), and
u = ||(aux_state - next_state) * u_scale||_2.

"Streamed" means a hidden->hidden layer is computed BLOCK_C output columns at a time, each chunk
going straight into the next layer's K dimension, so no (BLOCK_B, H) x (H, H) tile is ever loaded
at once (it would not fit registers or shared memory at H = 256).

Supported by this kernel (``logo_fast.ops.logo_step.step_path`` checks and says why not): shared
weights (G = 1), the shared auxiliary encoder, mean pooling, deductive context "none", layers = 2
(encoder: 3 linears, deductive trunk: 2), discrete or continuous actions, padded heterogeneous
agents (masks), fp32 (IEEE or TF32 dots) and bf16 (bf16 dot operands, fp32 accumulation and
elementwise math), obs heads of width D or 2D (NLL; the log-std half is not read).

The reference is ``logo_fast.reference.logo_step.logo_step``; ``kernels/local_predict.py`` and
``kernels/global_aggregate.py`` split the same math in two kernels for sizes that do not fit one
(``logo_step_two_kernel`` in global_aggregate.py runs both; they import this module's helpers, never
the other way round).
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
import triton
import triton.language as tl

from ..reference.logo_step import StepMeta, StepWeights

# ---- small @triton.jit helpers shared with local_predict.py and global_aggregate.py ----------------


@triton.jit
def _silu(x):
    return x * tl.sigmoid(x)


@triton.jit
def _vec(ptr, c0, n, BLOCK: tl.constexpr, other: tl.constexpr):
    """ptr[c0 : c0 + BLOCK] as float32, ``other`` past n (1.0 for divisors)."""
    c = c0 + tl.arange(0, BLOCK)
    return tl.load(ptr + c, mask=c < n, other=other).to(tl.float32)


@triton.jit
def _tile(ptr, r0, c0, n_rows, n_cols, stride_row, BR: tl.constexpr, BC: tl.constexpr):
    """A (BR, BC) tile of a row-major matrix at (r0, c0); zeros past (n_rows, n_cols)."""
    r = r0 + tl.arange(0, BR)
    c = c0 + tl.arange(0, BC)
    m = (r < n_rows)[:, None] & (c < n_cols)[None, :]
    return tl.load(ptr + r[:, None] * stride_row + c[None, :], mask=m, other=0.0)


@triton.jit
def _mm(a, w, acc, DOT_BF16: tl.constexpr, ROUND_BF16: tl.constexpr, PRECISION: tl.constexpr):
    """acc + a @ w with float32 accumulation.

    DOT_BF16: bf16 operands (tensor cores). ROUND_BF16: round the operands to bf16 but multiply in
    fp32; the interpreter path of a bf16 model (bf16 tl.dot is wrong there), which reproduces the
    GPU's operand rounding.
    """
    if DOT_BF16:
        return tl.dot(a.to(tl.bfloat16), w.to(tl.bfloat16), acc)
    elif ROUND_BF16:
        return tl.dot(a.to(tl.bfloat16).to(tl.float32), w.to(tl.bfloat16).to(tl.float32), acc,
                      input_precision="ieee")
    else:
        return tl.dot(a.to(tl.float32), w.to(tl.float32), acc, input_precision=PRECISION)


@triton.jit
def _row_context(state_ptr, act_ptr, sstat_ptr, astat_ptr, w0_ptr, rows64, row_ok,
                 N, D, S, NA, AD, H, s_sb, s_ss, s_ab, s_an, s_ad,
                 BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, DISCRETE: tl.constexpr,
                 DOT_BF16: tl.constexpr, ROUND_BF16: tl.constexpr, PRECISION: tl.constexpr):
    """c = W_s·s_n + (joint-action part): (BLOCK_B, BLOCK_H), the row's share of the encoder's first layer."""
    ctx = tl.zeros((BLOCK_B, BLOCK_H), tl.float32)
    A = N * NA if DISCRETE else N * AD
    # state rows D + A .. D + A + S of the first weight, BLOCK_K at a time
    for k0 in range(0, S, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        km = k < S
        x = tl.load(state_ptr + rows64[:, None] * s_sb + k[None, :] * s_ss, mask=row_ok[:, None] & km[None, :],
                    other=0.0).to(tl.float32)
        mean = _vec(sstat_ptr, k0, S, BLOCK_K, 0.0)
        std = _vec(sstat_ptr + S, k0, S, BLOCK_K, 1.0)
        xn = tl.where(km[None, :], (x - mean[None, :]) / std[None, :], 0.0)
        w = _tile(w0_ptr + (D + A) * H, k0, 0, S, H, H, BLOCK_K, BLOCK_H)
        ctx = _mm(xn, w, ctx, DOT_BF16, ROUND_BF16, PRECISION)
    cols = tl.arange(0, BLOCK_H)
    cm = cols < H
    if DISCRETE:
        # sum over agents j of row D + j * NA + a_j: a gather, not a one-hot matmul
        for j in range(0, N):
            a = tl.load(act_ptr + rows64 * s_ab + j * s_an, mask=row_ok, other=0).to(tl.int32)
            ok = row_ok & (a >= 0) & (a < NA)  # out-of-range actions contribute nothing (the reference raises)
            r = D + j * NA + a
            g = tl.load(w0_ptr + r[:, None] * H + cols[None, :], mask=ok[:, None] & cm[None, :], other=0.0)
            ctx += g.to(tl.float32)
    else:
        # normalised joint action (flat index k = agent * AD + feature), padding zeroed
        for k0 in range(0, A, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            km = k < A
            agent = k // AD
            feat = k - agent * AD
            x = tl.load(act_ptr + rows64[:, None] * s_ab + agent[None, :] * s_an + feat[None, :] * s_ad,
                        mask=row_ok[:, None] & km[None, :], other=0.0).to(tl.float32)
            mean = _vec(astat_ptr, k0, A, BLOCK_K, 0.0)
            std = _vec(astat_ptr + A, k0, A, BLOCK_K, 1.0)
            msk = _vec(astat_ptr + 2 * A, k0, A, BLOCK_K, 0.0)
            xn = (x - mean[None, :]) / std[None, :] * msk[None, :]
            w = _tile(w0_ptr + D * H, k0, 0, A, H, H, BLOCK_K, BLOCK_H)
            ctx = _mm(xn, w, ctx, DOT_BF16, ROUND_BF16, PRECISION)
    return ctx


@triton.jit
def _agent_local(i, ctx, obs_ptr, ostat_ptr, abias_ptr, w0_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr,
                 wh0_ptr, bh0_ptr, wh1_ptr, bh1_ptr, next_obs_ptr, rows64, row_ok,
                 N, D, H, L, DO, s_ob, s_on, s_od,
                 BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_L: tl.constexpr,
                 BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr, PREDICT_DELTA: tl.constexpr,
                 DOT_BF16: tl.constexpr, ROUND_BF16: tl.constexpr, PRECISION: tl.constexpr):
    """Agent i's local model on one tile: writes next_obs[:, i]; returns z_i (BLOCK_B, BLOCK_L) and
    the deductive inputs delta_n, next_obs_n (BLOCK_B, BLOCK_D), padding 0."""
    dc = tl.arange(0, BLOCK_D)
    dm = dc < D
    m2 = row_ok[:, None] & dm[None, :]
    o = tl.load(obs_ptr + rows64[:, None] * s_ob + i * s_on + dc[None, :] * s_od, mask=m2, other=0.0).to(tl.float32)
    st = ostat_ptr + i * 6 * D  # packed rows: obs_mean, obs_std, obs_mask, dobs_mean, dobs_std, obs_target_mask
    o_mean = _vec(st, 0, D, BLOCK_D, 0.0)[None, :]
    o_std = _vec(st + D, 0, D, BLOCK_D, 1.0)[None, :]
    o_mask = _vec(st + 2 * D, 0, D, BLOCK_D, 0.0)[None, :]
    d_mean = _vec(st + 3 * D, 0, D, BLOCK_D, 0.0)[None, :]
    d_std = _vec(st + 4 * D, 0, D, BLOCK_D, 1.0)[None, :]
    t_mask = _vec(st + 5 * D, 0, D, BLOCK_D, 0.0)[None, :]
    # encoder layer 0: W_o·o_n + (row context) + (b_0 + W_e·e_i, precomputed per agent), BLOCK_K obs
    # features at a time (re-read from cache) so the weight tile stays (BLOCK_K, H) for any D
    h = ctx + _vec(abias_ptr + i * H, 0, H, BLOCK_H, 0.0)[None, :]
    for k0 in range(0, D, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        km = k < D
        x = tl.load(obs_ptr + rows64[:, None] * s_ob + i * s_on + k[None, :] * s_od,
                    mask=row_ok[:, None] & km[None, :], other=0.0).to(tl.float32)
        xn = (x - _vec(st, k0, D, BLOCK_K, 0.0)[None, :]) / _vec(st + D, k0, D, BLOCK_K, 1.0)[None, :] \
            * _vec(st + 2 * D, k0, D, BLOCK_K, 0.0)[None, :]
        h = _mm(xn, _tile(w0_ptr, k0, 0, D, H, H, BLOCK_K, BLOCK_H), h, DOT_BF16, ROUND_BF16, PRECISION)
    h = _silu(h)
    # encoder layers 1 (H -> H, SiLU) and 2 (H -> L), streamed BLOCK_C hidden units at a time
    z = tl.zeros((BLOCK_B, BLOCK_L), tl.float32)
    for c in range(0, H, BLOCK_C):
        g = _mm(h, _tile(w1_ptr, 0, c, H, H, H, BLOCK_H, BLOCK_C), tl.zeros((BLOCK_B, BLOCK_C), tl.float32),
                DOT_BF16, ROUND_BF16, PRECISION)
        g = _silu(g + _vec(b1_ptr, c, H, BLOCK_C, 0.0)[None, :])
        z = _mm(g, _tile(w2_ptr, c, 0, H, L, L, BLOCK_C, BLOCK_L), z, DOT_BF16, ROUND_BF16, PRECISION)
    z += _vec(b2_ptr, 0, L, BLOCK_L, 0.0)[None, :]
    # obs head L -> H (SiLU) -> first D of DO columns, streamed the same way
    mu = tl.zeros((BLOCK_B, BLOCK_D), tl.float32)
    for c in range(0, H, BLOCK_C):
        g = _mm(z, _tile(wh0_ptr, 0, c, L, H, H, BLOCK_L, BLOCK_C), tl.zeros((BLOCK_B, BLOCK_C), tl.float32),
                DOT_BF16, ROUND_BF16, PRECISION)
        g = _silu(g + _vec(bh0_ptr, c, H, BLOCK_C, 0.0)[None, :])
        mu = _mm(g, _tile(wh1_ptr, c, 0, H, D, DO, BLOCK_C, BLOCK_D), mu, DOT_BF16, ROUND_BF16, PRECISION)
    mu = (mu + _vec(bh1_ptr, 0, D, BLOCK_D, 0.0)[None, :]) * t_mask
    if PREDICT_DELTA:
        nxt = (o + d_mean + d_std * mu) * o_mask
        delta_n = mu
    else:
        nxt = (o_mean + o_std * mu) * o_mask
        delta_n = (nxt - o - d_mean) / d_std * o_mask
    nxt_n = (nxt - o_mean) / o_std * o_mask
    tl.store(next_obs_ptr + rows64[:, None] * (N * D) + i * D + dc[None, :],
             nxt.to(next_obs_ptr.dtype.element_ty), mask=m2)
    return z, delta_n, nxt_n


@triton.jit
def _global_heads(ded, pooled, state_ptr, sstat_ptr, rstat_ptr, bd0_ptr, wd1_ptr, bd1_ptr,
                  wa0_ptr, ba0_ptr, wa1_ptr, ba1_ptr, ws_ptr, bs_ptr, wo_ptr, bo_ptr,
                  next_state_ptr, aux_state_ptr, reward_ptr, term_ptr, avail_ptr, u_ptr, rows, rows64, row_ok,
                  S, H, L, NO, s_sb, s_ss,
                  BLOCK_B: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_H: tl.constexpr,
                  BLOCK_C: tl.constexpr, BLOCK_O: tl.constexpr, PREDICT_DELTA: tl.constexpr,
                  STATE_ABSOLUTE: tl.constexpr,
                  DOT_BF16: tl.constexpr, ROUND_BF16: tl.constexpr, PRECISION: tl.constexpr):
    """From the deductive first-layer pre-activation ``ded`` (BLOCK_B, BLOCK_H) and the pooled latent
    (BLOCK_B, BLOCK_L): the auxiliary head, the deductive heads and u, all written out.
    ``STATE_ABSOLUTE``: the state head predicts the normalised next state, not its change."""
    hd = _silu(ded + _vec(bd0_ptr, 0, H, BLOCK_H, 0.0)[None, :])
    # auxiliary head L -> H (SiLU) -> S
    aux = tl.zeros((BLOCK_B, BLOCK_S), tl.float32)
    for c in range(0, H, BLOCK_C):
        g = _mm(pooled, _tile(wa0_ptr, 0, c, L, H, H, BLOCK_L, BLOCK_C), tl.zeros((BLOCK_B, BLOCK_C), tl.float32),
                DOT_BF16, ROUND_BF16, PRECISION)
        g = _silu(g + _vec(ba0_ptr, c, H, BLOCK_C, 0.0)[None, :])
        aux = _mm(g, _tile(wa1_ptr, c, 0, H, S, S, BLOCK_C, BLOCK_S), aux, DOT_BF16, ROUND_BF16, PRECISION)
    aux += _vec(ba1_ptr, 0, S, BLOCK_S, 0.0)[None, :]
    # deductive trunk layer 1 (H -> H, SiLU) streamed into the state head and outcome columns 0..BLOCK_O
    s_acc = tl.zeros((BLOCK_B, BLOCK_S), tl.float32)
    o_acc = tl.zeros((BLOCK_B, BLOCK_O), tl.float32)
    for c in range(0, H, BLOCK_C):
        g = _mm(hd, _tile(wd1_ptr, 0, c, H, H, H, BLOCK_H, BLOCK_C), tl.zeros((BLOCK_B, BLOCK_C), tl.float32),
                DOT_BF16, ROUND_BF16, PRECISION)
        g = _silu(g + _vec(bd1_ptr, c, H, BLOCK_C, 0.0)[None, :])
        s_acc = _mm(g, _tile(ws_ptr, c, 0, H, S, S, BLOCK_C, BLOCK_S), s_acc, DOT_BF16, ROUND_BF16, PRECISION)
        o_acc = _mm(g, _tile(wo_ptr, c, 0, H, NO, NO, BLOCK_C, BLOCK_O), o_acc, DOT_BF16, ROUND_BF16, PRECISION)
    oc = tl.arange(0, BLOCK_O)
    o_acc += _vec(bo_ptr, 0, NO, BLOCK_O, 0.0)[None, :]
    r_std = tl.load(rstat_ptr + 1)
    reward = tl.load(rstat_ptr) + r_std * tl.sum(tl.where(oc[None, :] == 0, o_acc, 0.0), axis=1)
    term = tl.sum(tl.where(oc[None, :] == 1, o_acc, 0.0), axis=1)
    tl.store(reward_ptr + rows, reward.to(reward_ptr.dtype.element_ty), mask=row_ok)
    tl.store(term_ptr + rows, term.to(term_ptr.dtype.element_ty), mask=row_ok)
    am = row_ok[:, None] & (oc >= 2)[None, :] & (oc < NO)[None, :]
    tl.store(avail_ptr + rows64[:, None] * (NO - 2) + (oc - 2)[None, :], o_acc.to(avail_ptr.dtype.element_ty),
             mask=am)
    # wide outcome heads (many agents x actions): further BLOCK_O columns, recomputing the trunk's
    # second layer per chunk rather than holding (BLOCK_B, NO) accumulators
    for o0 in range(BLOCK_O, NO, BLOCK_O):
        acc = tl.zeros((BLOCK_B, BLOCK_O), tl.float32)
        for c in range(0, H, BLOCK_C):
            g = _mm(hd, _tile(wd1_ptr, 0, c, H, H, H, BLOCK_H, BLOCK_C), tl.zeros((BLOCK_B, BLOCK_C), tl.float32),
                    DOT_BF16, ROUND_BF16, PRECISION)
            g = _silu(g + _vec(bd1_ptr, c, H, BLOCK_C, 0.0)[None, :])
            acc = _mm(g, _tile(wo_ptr, c, o0, H, NO, NO, BLOCK_C, BLOCK_O), acc, DOT_BF16, ROUND_BF16, PRECISION)
        acc += _vec(bo_ptr, o0, NO, BLOCK_O, 0.0)[None, :]
        cols = o0 + oc
        tl.store(avail_ptr + rows64[:, None] * (NO - 2) + (cols - 2)[None, :], acc.to(avail_ptr.dtype.element_ty),
                 mask=row_ok[:, None] & (cols < NO)[None, :])
    # next state, auxiliary state, u
    sc = tl.arange(0, BLOCK_S)
    sm = sc < S
    m2 = row_ok[:, None] & sm[None, :]
    st = tl.load(state_ptr + rows64[:, None] * s_sb + sc[None, :] * s_ss, mask=m2, other=0.0).to(tl.float32)
    s_mean = _vec(sstat_ptr, 0, S, BLOCK_S, 0.0)[None, :]
    s_std = _vec(sstat_ptr + S, 0, S, BLOCK_S, 0.0)[None, :]
    ds_mean = _vec(sstat_ptr + 2 * S, 0, S, BLOCK_S, 0.0)[None, :]
    ds_std = _vec(sstat_ptr + 3 * S, 0, S, BLOCK_S, 0.0)[None, :]
    u_scale = _vec(sstat_ptr + 4 * S, 0, S, BLOCK_S, 0.0)[None, :]
    s_out = s_acc + _vec(bs_ptr, 0, S, BLOCK_S, 0.0)[None, :]
    if STATE_ABSOLUTE:
        next_state = s_mean + s_std * s_out
    else:
        next_state = st + ds_mean + ds_std * s_out
    if PREDICT_DELTA:
        aux_state = st + ds_mean + ds_std * aux
    else:
        aux_state = s_mean + s_std * aux
    diff = (aux_state - next_state) * u_scale
    u = tl.sqrt(tl.sum(diff * diff, axis=1))
    out = rows64[:, None] * S + sc[None, :]
    tl.store(next_state_ptr + out, next_state.to(next_state_ptr.dtype.element_ty), mask=m2)
    tl.store(aux_state_ptr + out, aux_state.to(aux_state_ptr.dtype.element_ty), mask=m2)
    tl.store(u_ptr + rows, u.to(u_ptr.dtype.element_ty), mask=row_ok)


# ---- the fused kernel ----------------------------------------------------------------------------


@triton.jit
def _logo_step_fused_kernel(
    # inputs
    obs_ptr, state_ptr, act_ptr,
    # packed statistics (float32): per agent (N, 6, D), state (5, S), reward (2,), action (3, N * AD)
    ostat_ptr, sstat_ptr, rstat_ptr, astat_ptr,
    # weights: per-agent first-layer bias b_0 + W_e·e_i (N, H) float32, then the network's (row-major)
    abias_ptr, w0_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr,
    wh0_ptr, bh0_ptr, wh1_ptr, bh1_ptr,
    wa0_ptr, ba0_ptr, wa1_ptr, ba1_ptr,
    wd0_ptr, bd0_ptr, wd1_ptr, bd1_ptr, ws_ptr, bs_ptr, wo_ptr, bo_ptr,
    # outputs (contiguous)
    next_obs_ptr, next_state_ptr, aux_state_ptr, reward_ptr, term_ptr, avail_ptr, u_ptr,
    # sizes
    B, N, D, S, NA, AD, H, L, DO, NO,
    # strides of the inputs
    s_ob, s_on, s_od, s_sb, s_ss, s_ab, s_an, s_ad,
    # meta-parameters
    BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_H: tl.constexpr,
    BLOCK_L: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_O: tl.constexpr,
    DISCRETE: tl.constexpr, PREDICT_DELTA: tl.constexpr, STATE_ABSOLUTE: tl.constexpr,
    DOT_BF16: tl.constexpr, ROUND_BF16: tl.constexpr, PRECISION: tl.constexpr,
):
    tl.static_assert(BLOCK_B >= 16 and BLOCK_D >= 16 and BLOCK_C >= 16 and BLOCK_K >= 16 and BLOCK_O >= 16)
    tl.static_assert(BLOCK_C <= BLOCK_H)
    pid = tl.program_id(0)
    rows = pid * BLOCK_B + tl.arange(0, BLOCK_B)
    row_ok = rows < B
    rows64 = rows.to(tl.int64)  # B * N * D passes 2^31 at large batch
    ctx = _row_context(state_ptr, act_ptr, sstat_ptr, astat_ptr, w0_ptr, rows64, row_ok,
                       N, D, S, NA, AD, H, s_sb, s_ss, s_ab, s_an, s_ad,
                       BLOCK_B, BLOCK_H, BLOCK_K, DISCRETE, DOT_BF16, ROUND_BF16, PRECISION)
    pooled = tl.zeros((BLOCK_B, BLOCK_L), tl.float32)
    ded = tl.zeros((BLOCK_B, BLOCK_H), tl.float32)
    for i in range(0, N):
        z, delta_n, nxt_n = _agent_local(i, ctx, obs_ptr, ostat_ptr, abias_ptr, w0_ptr, w1_ptr, b1_ptr, w2_ptr,
                                         b2_ptr, wh0_ptr, bh0_ptr, wh1_ptr, bh1_ptr, next_obs_ptr, rows64, row_ok,
                                         N, D, H, L, DO, s_ob, s_on, s_od,
                                         BLOCK_B, BLOCK_D, BLOCK_H, BLOCK_L, BLOCK_C, BLOCK_K, PREDICT_DELTA,
                                         DOT_BF16, ROUND_BF16, PRECISION)
        pooled += z
        # agent i's block of the deductive first weight: rows [2iD, 2iD + D) see delta_i, [2iD + D, 2(i+1)D) obs'_i
        ded = _mm(delta_n, _tile(wd0_ptr + (2 * i * D) * H, 0, 0, D, H, H, BLOCK_D, BLOCK_H), ded,
                  DOT_BF16, ROUND_BF16, PRECISION)
        ded = _mm(nxt_n, _tile(wd0_ptr + (2 * i * D + D) * H, 0, 0, D, H, H, BLOCK_D, BLOCK_H), ded,
                  DOT_BF16, ROUND_BF16, PRECISION)
    pooled = pooled / N
    _global_heads(ded, pooled, state_ptr, sstat_ptr, rstat_ptr, bd0_ptr, wd1_ptr, bd1_ptr,
                  wa0_ptr, ba0_ptr, wa1_ptr, ba1_ptr, ws_ptr, bs_ptr, wo_ptr, bo_ptr,
                  next_state_ptr, aux_state_ptr, reward_ptr, term_ptr, avail_ptr, u_ptr, rows, rows64, row_ok,
                  S, H, L, NO, s_sb, s_ss,
                  BLOCK_B, BLOCK_S, BLOCK_L, BLOCK_H, BLOCK_C, BLOCK_O, PREDICT_DELTA, STATE_ABSOLUTE,
                  DOT_BF16, ROUND_BF16, PRECISION)


# ---- launcher --------------------------------------------------------------------------------------


# kernel name -> the CompiledKernel of its latest launch (registers, spills, shared memory as the
# GPU runs it; scripts/gpu_logo_step.py reports them). Empty under the interpreter.
LAST_COMPILED: dict = {}


class Prepared(NamedTuple):
    """The tensors a kernel reads, from one StepWeights (packed statistics, the per-agent bias)."""

    ostat: torch.Tensor  # (N, 6, D) float32
    sstat: torch.Tensor  # (5, S) float32
    rstat: torch.Tensor  # (2,) float32
    astat: torch.Tensor  # (3, N * act_dim) float32 (continuous) | (1,) dummy
    abias: torch.Tensor  # (N, H) float32: b_0 + W_e·e_i
    weights: tuple  # the network's weights/biases in kernel argument order (contiguous)


class Tiles(NamedTuple):
    """Block sizes and launch shape of one configuration."""

    block_b: int
    block_d: int
    block_s: int
    block_h: int
    block_l: int
    block_c: int
    block_k: int
    block_o: int
    num_warps: int


def _p2(x: int, lo: int = 16) -> int:
    return max(lo, triton.next_power_of_2(max(1, x)))


def tiles(meta: StepMeta, hidden: int, latent: int, dot_bf16: bool) -> Tiles:
    """Tile sizes for a model: full-width hidden/latent/obs/state tiles, BLOCK_C-wide streamed chunks.

    BLOCK_B shrinks as H grows so the live (BLOCK_B, H) float32 tiles (row context, deductive
    accumulator, first hidden layer) stay in registers; fp32 at H = 512 streams 16 columns at a
    time so its dot operands fit the H100's 227 KB of shared memory. ``python -m
    logo_fast.kernels.aot`` checks that no compiled configuration spills or exceeds shared memory.
    """
    block_h = _p2(hidden)
    block_b = 16 if block_h >= 256 else 32
    return Tiles(block_b=block_b, block_d=_p2(meta.obs_dim), block_s=_p2(meta.state_dim), block_h=block_h,
                 block_l=_p2(latent), block_c=min(16 if (block_h >= 512 and not dot_bf16) else 32, block_h),
                 block_k=32, block_o=64 if block_h >= 256 else 128,
                 num_warps=8 if block_h >= 256 else 4)


def prepare(meta: StepMeta, w: StepWeights) -> Prepared:
    """Pack the statistics and precompute the per-agent first-layer bias (a few tiny ops, no row work)."""
    f32 = torch.float32
    N, D = meta.n_agents, meta.obs_dim
    ostat = torch.stack([w.obs_mean, w.obs_std, w.obs_mask, w.dobs_mean, w.dobs_std, w.obs_target_mask], 1).to(f32)
    sstat = torch.stack([w.state_mean, w.state_std, w.dstate_mean, w.dstate_std, w.u_scale]).to(f32)
    rstat = torch.cat([w.reward_mean.reshape(1), w.reward_std.reshape(1)]).to(f32)
    if meta.n_actions:
        astat = ostat.new_zeros(1)
    else:
        astat = torch.stack([w.action_mean.reshape(-1), w.action_std.reshape(-1), w.act_mask.reshape(-1)]).to(f32)
    W0, b0 = w.encoder.weights[0][0], w.encoder.biases[0][0]
    A = N * (meta.n_actions or meta.act_dim)
    abias = b0.to(f32).expand(N, -1)
    if w.embed.shape[-1]:
        abias = abias + w.embed.to(f32) @ W0[D + A + meta.state_dim:].to(f32)
    abias = abias.contiguous()

    def c(t):
        return t[0].contiguous()

    enc, head, aux, trunk = w.encoder, w.obs_head, w.aux_head, w.ded_trunk
    weights = (c(enc.weights[0]), c(enc.weights[1]), c(enc.biases[1]), c(enc.weights[2]), c(enc.biases[2]),
               c(head.weights[0]), c(head.biases[0]), c(head.weights[1]), c(head.biases[1]),
               c(aux.weights[0]), c(aux.biases[0]), c(aux.weights[1]), c(aux.biases[1]),
               c(trunk.weights[0]), c(trunk.biases[0]), c(trunk.weights[1]), c(trunk.biases[1]),
               c(w.ded_state.weights[0]), c(w.ded_state.biases[0]), c(w.ded_outcome.weights[0]),
               c(w.ded_outcome.biases[0]))
    return Prepared(ostat.contiguous(), sstat.contiguous(), rstat, astat.contiguous(), abias, weights)


def dot_mode(dtype: torch.dtype, device: torch.device) -> tuple[bool, bool, str]:
    """(DOT_BF16, ROUND_BF16, PRECISION) for a weight dtype on a device (interpreter: CPU tensors)."""
    interpret = device.type != "cuda"
    bf16 = dtype == torch.bfloat16
    precision = "tf32" if (not interpret and torch.backends.cuda.matmul.allow_tf32) else "ieee"
    return bf16 and not interpret, bf16 and interpret, precision


def allocate_outputs(meta: StepMeta, obs: torch.Tensor) -> dict[str, torch.Tensor]:
    B, N, D, S = obs.shape[0], meta.n_agents, meta.obs_dim, meta.state_dim
    dt, dev = obs.dtype, obs.device
    return {"next_obs": torch.empty(B, N, D, dtype=dt, device=dev),
            "next_state": torch.empty(B, S, dtype=dt, device=dev),
            "aux_state": torch.empty(B, S, dtype=dt, device=dev),
            "reward": torch.empty(B, dtype=dt, device=dev), "term_logit": torch.empty(B, dtype=dt, device=dev),
            "avail_logits": torch.empty(B, N, meta.n_actions, dtype=dt, device=dev),
            "u": torch.empty(B, dtype=dt, device=dev)}


def logo_step_fused(meta: StepMeta, w: StepWeights, obs: torch.Tensor, state: torch.Tensor,
                    actions: torch.Tensor) -> dict[str, torch.Tensor]:
    """The fused step: obs (B, N, D), state (B, S), actions (B, N) int | (B, N, act_dim); any strides.

    Returns the reference's dict (``avail_logits`` (B, N, 0) for continuous tasks). The caller
    (``logo_fast.ops.logo_step``) has checked the inputs and that this configuration is supported.
    """
    if meta.state_target not in ("delta", "absolute"):
        raise ValueError(f"state_target={meta.state_target!r}: resolve a hybrid model per step first "
                         "(logo_fast.reference.logo_step.resolve_state_form)")
    B = obs.shape[0]
    out = allocate_outputs(meta, obs)
    if B == 0:
        return out
    p = prepare(meta, w)
    H, L = w.encoder.weights[1].shape[-1], w.encoder.weights[2].shape[-1]
    DO, NO = w.obs_head.weights[1].shape[-1], w.ded_outcome.weights[0].shape[-1]
    dot_bf16, round_bf16, precision = dot_mode(w.encoder.weights[1].dtype, obs.device)
    t = tiles(meta, H, L, dot_bf16)
    act = actions
    s_ab, s_an = act.stride(0), act.stride(1)
    s_ad = act.stride(2) if act.dim() == 3 else 0
    grid = (triton.cdiv(B, t.block_b),)
    with torch.cuda.device(obs.device) if obs.device.type == "cuda" else contextlib.nullcontext():
        LAST_COMPILED["fused"] = _logo_step_fused_kernel[grid](
            obs, state, act, p.ostat, p.sstat, p.rstat, p.astat, p.abias, *p.weights,
            out["next_obs"], out["next_state"], out["aux_state"], out["reward"], out["term_logit"],
            out["avail_logits"], out["u"],
            B, meta.n_agents, meta.obs_dim, meta.state_dim, meta.n_actions, meta.act_dim, H, L, DO, NO,
            obs.stride(0), obs.stride(1), obs.stride(2), state.stride(0), state.stride(1), s_ab, s_an, s_ad,
            BLOCK_B=t.block_b, BLOCK_D=t.block_d, BLOCK_S=t.block_s, BLOCK_H=t.block_h, BLOCK_L=t.block_l,
            BLOCK_C=t.block_c, BLOCK_K=t.block_k, BLOCK_O=t.block_o, DISCRETE=bool(meta.n_actions),
            PREDICT_DELTA=meta.predict_delta, STATE_ABSOLUTE=meta.state_target == "absolute",
            DOT_BF16=dot_bf16, ROUND_BF16=round_bf16, PRECISION=precision,
            num_warps=t.num_warps,
        )
    return out


# ---- ahead-of-time configurations ------------------------------------------------------------------

# (n_agents, obs_dim, state_dim, n_actions, act_dim, hidden, latent): the benchmark grid's shapes
# (N in {3, 6, 27}, hidden in {128, 256}, discrete and continuous) and the largest sizes
# ``logo_fast.ops.logo_step.step_path`` sends to each path (FUSED_LIMITS, TWO_KERNEL_LIMITS).
FUSED_AOT_SHAPES = [
    (27, 60, 216, 30, 1, 128, 64), (27, 60, 216, 30, 1, 256, 64), (6, 17, 40, 0, 3, 256, 64),
    (3, 64, 256, 0, 8, 256, 128),
]
TWO_KERNEL_AOT_SHAPES = [(27, 60, 216, 30, 1, 256, 64), (6, 128, 256, 0, 8, 512, 128)]
_CONSTEXPRS = ("BLOCK_B", "BLOCK_D", "BLOCK_S", "BLOCK_H", "BLOCK_L", "BLOCK_C", "BLOCK_K", "BLOCK_O", "DISCRETE",
               "PREDICT_DELTA", "STATE_ABSOLUTE", "DOT_BF16", "ROUND_BF16", "PRECISION")
_F32_ARGS = {"ostat_ptr", "sstat_ptr", "rstat_ptr", "astat_ptr", "abias_ptr"}


def _specs(fn, shapes) -> list[dict]:
    names = list(fn.arg_names)
    specs = []
    for shape in shapes:
        n, d, s, na, ad, hidden, latent = shape
        meta = StepMeta(n_agents=n, obs_dim=d, state_dim=s, n_actions=na, act_dim=ad, predict_delta=True,
                        pool="mean", context="none")
        for dtype in ("fp32", "bf16"):
            t = tiles(meta, hidden, latent, dtype == "bf16")
            values = dict(BLOCK_B=t.block_b, BLOCK_D=t.block_d, BLOCK_S=t.block_s, BLOCK_H=t.block_h,
                          BLOCK_L=t.block_l, BLOCK_C=t.block_c, BLOCK_K=t.block_k, BLOCK_O=t.block_o,
                          DISCRETE=bool(na), PREDICT_DELTA=True, STATE_ABSOLUTE=False, DOT_BF16=dtype == "bf16",
                          ROUND_BF16=False,
                          PRECISION="tf32")
            sig, constexprs = {}, {}
            for name in names:
                if name in _CONSTEXPRS:
                    sig[name] = "constexpr"
                    constexprs[name] = values[name]
                elif name.endswith("_ptr"):
                    sig[name] = "*fp32" if name in _F32_ARGS else f"*{dtype}"
                else:
                    sig[name] = "i32"
            if "act_ptr" in sig:
                sig["act_ptr"] = "*i64" if na else f"*{dtype}"
            specs.append({"fn": fn, "signature": sig, "constexprs": constexprs, "num_warps": t.num_warps,
                          "shape": dict(zip(("N", "D", "S", "n_actions", "act_dim", "H", "L"), shape, strict=True))})
    return specs


def two_kernel_aot_specs(fn) -> list[dict]:
    """The two-kernel path's configurations of kernel ``fn`` (local_predict or global_aggregate)."""
    return _specs(fn, TWO_KERNEL_AOT_SHAPES)


def aot_specs() -> list[dict]:
    """Configurations to compile for a GPU target: each fused AOT shape x {fp32, bf16}, with the launcher's tiles."""
    return _specs(_logo_step_fused_kernel, FUSED_AOT_SHAPES)
