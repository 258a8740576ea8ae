"""Triton kernel for ``local_predict``: the first half of the two-kernel LOGO step.

For each tile of BLOCK_B rows: the row context once, then per agent the local model (the same
``_agent_local`` as the fused kernel), writing

    next_obs (B, N, D)                      raw next observations (padding 0)
    ded_in   (B, N * 2D)                    agent i's block [delta_n,i, next_obs_n,i], the deductive input
    pooled   (B, L)                         mean of the agents' latents

``global_aggregate`` then reads ded_in and pooled. This split is for models too wide for the
fused kernel (``logo_fast.ops.logo_step.step_path``): each kernel keeps fewer (BLOCK_B, H) tiles
live, at the price of one round trip of ded_in (N * 2D values a row) through memory.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..reference.logo_step import StepMeta
from .logo_step import LAST_COMPILED, Prepared, Tiles, _agent_local, _row_context


@triton.jit
def _local_predict_kernel(
    # inputs
    obs_ptr, state_ptr, act_ptr,
    # packed statistics (float32) and the per-agent first-layer bias, as in the fused kernel
    ostat_ptr, sstat_ptr, astat_ptr, abias_ptr,
    # local encoder and obs head weights (row-major)
    w0_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, wh0_ptr, bh0_ptr, wh1_ptr, bh1_ptr,
    # outputs (contiguous)
    next_obs_ptr, ded_in_ptr, pooled_ptr,
    # sizes
    B, N, D, S, NA, AD, H, L, DO,
    # strides of the inputs
    s_ob, s_on, s_od, s_sb, s_ss, s_ab, s_an, s_ad,
    # meta-parameters
    BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_L: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr, DISCRETE: tl.constexpr, PREDICT_DELTA: tl.constexpr,
    DOT_BF16: tl.constexpr, ROUND_BF16: tl.constexpr, PRECISION: tl.constexpr,
):
    tl.static_assert(BLOCK_B >= 16 and BLOCK_D >= 16 and BLOCK_C >= 16 and BLOCK_K >= 16)
    pid = tl.program_id(0)
    rows = pid * BLOCK_B + tl.arange(0, BLOCK_B)
    row_ok = rows < B
    rows64 = rows.to(tl.int64)
    ctx = _row_context(state_ptr, act_ptr, sstat_ptr, astat_ptr, w0_ptr, rows64, row_ok,
                       N, D, S, NA, AD, H, s_sb, s_ss, s_ab, s_an, s_ad,
                       BLOCK_B, BLOCK_H, BLOCK_K, DISCRETE, DOT_BF16, ROUND_BF16, PRECISION)
    pooled = tl.zeros((BLOCK_B, BLOCK_L), tl.float32)
    dc = tl.arange(0, BLOCK_D)
    m2 = row_ok[:, None] & (dc < D)[None, :]
    for i in range(0, N):
        z, delta_n, nxt_n = _agent_local(i, ctx, obs_ptr, ostat_ptr, abias_ptr, w0_ptr, w1_ptr, b1_ptr, w2_ptr,
                                         b2_ptr, wh0_ptr, bh0_ptr, wh1_ptr, bh1_ptr, next_obs_ptr, rows64, row_ok,
                                         N, D, H, L, DO, s_ob, s_on, s_od,
                                         BLOCK_B, BLOCK_D, BLOCK_H, BLOCK_L, BLOCK_C, BLOCK_K, PREDICT_DELTA,
                                         DOT_BF16, ROUND_BF16, PRECISION)
        pooled += z
        base = ded_in_ptr + rows64[:, None] * (2 * N * D) + 2 * i * D + dc[None, :]
        tl.store(base, delta_n.to(ded_in_ptr.dtype.element_ty), mask=m2)
        tl.store(base + D, nxt_n.to(ded_in_ptr.dtype.element_ty), mask=m2)
    lc = tl.arange(0, BLOCK_L)
    tl.store(pooled_ptr + rows64[:, None] * L + lc[None, :], (pooled / N).to(pooled_ptr.dtype.element_ty),
             mask=row_ok[:, None] & (lc < L)[None, :])


def local_predict_triton(meta: StepMeta, p: Prepared, t: Tiles, obs: torch.Tensor, state: torch.Tensor,
                         actions: torch.Tensor, next_obs: torch.Tensor, hidden: int, latent: int,
                         modes: tuple[bool, bool, str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch ``_local_predict_kernel``: fills next_obs (B, N, D); returns ded_in (B, N * 2D) and pooled (B, L)."""
    B, N, D = obs.shape
    ded_in = torch.empty(B, 2 * N * D, dtype=obs.dtype, device=obs.device)
    pooled = torch.empty(B, latent, dtype=obs.dtype, device=obs.device)
    enc_head = p.weights[:9]
    DO = p.weights[7].shape[-1]
    s_ad = actions.stride(2) if actions.dim() == 3 else 0
    dot_bf16, round_bf16, precision = modes
    LAST_COMPILED["local_predict"] = _local_predict_kernel[(triton.cdiv(B, t.block_b),)](
        obs, state, actions, p.ostat, p.sstat, p.astat, p.abias, *enc_head, next_obs, ded_in, pooled,
        B, N, D, meta.state_dim, meta.n_actions, meta.act_dim, hidden, latent, DO,
        obs.stride(0), obs.stride(1), obs.stride(2), state.stride(0), state.stride(1), actions.stride(0),
        actions.stride(1), s_ad,
        BLOCK_B=t.block_b, BLOCK_D=t.block_d, BLOCK_H=t.block_h, BLOCK_L=t.block_l, BLOCK_C=t.block_c,
        BLOCK_K=t.block_k, DISCRETE=bool(meta.n_actions), PREDICT_DELTA=meta.predict_delta, DOT_BF16=dot_bf16,
        ROUND_BF16=round_bf16, PRECISION=precision, num_warps=t.num_warps,
    )
    return ded_in, pooled


def aot_specs() -> list[dict]:
    """The two-kernel path's local half at the sizes ``step_path`` sends to it, fp32 and bf16."""
    from .logo_step import two_kernel_aot_specs

    return two_kernel_aot_specs(_local_predict_kernel)
