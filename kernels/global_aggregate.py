"""Triton kernel for ``global_aggregate``: the second half of the two-kernel LOGO step.

For each tile of BLOCK_B rows: the deductive first layer as one matmul over the flat deductive
input, ded = ded_in (B, N * 2D) @ W_d0, walked BLOCK_K columns at a time; then the same
``_global_heads`` as the fused kernel (auxiliary head on the pooled latent, the deductive
trunk's second layer streamed into the state and outcome heads, u). Inputs come from
``local_predict``.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

from ..reference.logo_step import StepMeta, StepWeights
from .local_predict import local_predict_triton
from .logo_step import (
    LAST_COMPILED,
    Prepared,
    Tiles,
    _global_heads,
    _mm,
    _tile,
    allocate_outputs,
    dot_mode,
    prepare,
    tiles,
)


@triton.jit
def _global_aggregate_kernel(
    # inputs: local_predict's outputs and the raw state
    ded_in_ptr, pooled_ptr, state_ptr,
    # packed statistics (float32)
    sstat_ptr, rstat_ptr,
    # weights (row-major): auxiliary head, deductive trunk, state head, outcome head
    wa0_ptr, ba0_ptr, wa1_ptr, ba1_ptr, wd0_ptr, bd0_ptr, wd1_ptr, bd1_ptr, ws_ptr, bs_ptr, wo_ptr, bo_ptr,
    # outputs (contiguous)
    next_state_ptr, aux_state_ptr, reward_ptr, term_ptr, avail_ptr, u_ptr,
    # sizes
    B, K, S, H, L, NO,
    # strides of the state
    s_sb, s_ss,
    # meta-parameters
    BLOCK_B: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_L: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_O: tl.constexpr, PREDICT_DELTA: tl.constexpr,
    STATE_ABSOLUTE: tl.constexpr, DOT_BF16: tl.constexpr, ROUND_BF16: tl.constexpr, PRECISION: tl.constexpr,
):
    tl.static_assert(BLOCK_B >= 16 and BLOCK_C >= 16 and BLOCK_K >= 16 and BLOCK_O >= 16)
    pid = tl.program_id(0)
    rows = pid * BLOCK_B + tl.arange(0, BLOCK_B)
    row_ok = rows < B
    rows64 = rows.to(tl.int64)
    ded = tl.zeros((BLOCK_B, BLOCK_H), tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(ded_in_ptr + rows64[:, None] * K + k[None, :], mask=row_ok[:, None] & (k < K)[None, :],
                    other=0.0).to(tl.float32)
        ded = _mm(x, _tile(wd0_ptr, k0, 0, K, H, H, BLOCK_K, BLOCK_H), ded, DOT_BF16, ROUND_BF16, PRECISION)
    lc = tl.arange(0, BLOCK_L)
    pooled = tl.load(pooled_ptr + rows64[:, None] * L + lc[None, :], mask=row_ok[:, None] & (lc < L)[None, :],
                     other=0.0).to(tl.float32)
    _global_heads(ded, pooled, state_ptr, sstat_ptr, rstat_ptr, bd0_ptr, wd1_ptr, bd1_ptr,
                  wa0_ptr, ba0_ptr, wa1_ptr, ba1_ptr, ws_ptr, bs_ptr, wo_ptr, bo_ptr,
                  next_state_ptr, aux_state_ptr, reward_ptr, term_ptr, avail_ptr, u_ptr, rows, rows64, row_ok,
                  S, H, L, NO, s_sb, s_ss,
                  BLOCK_B, BLOCK_S, BLOCK_L, BLOCK_H, BLOCK_C, BLOCK_O, PREDICT_DELTA, STATE_ABSOLUTE,
                  DOT_BF16, ROUND_BF16, PRECISION)


def global_aggregate_triton(meta: StepMeta, p: Prepared, t: Tiles, ded_in: torch.Tensor, pooled: torch.Tensor,
                            state: torch.Tensor, out: dict[str, torch.Tensor], hidden: int,
                            modes: tuple[bool, bool, str]) -> None:
    """Launch ``_global_aggregate_kernel``: ded_in (B, N * 2D), pooled (B, L) -> fills next_state, aux_state,
    reward, term_logit, avail_logits and u of ``out``."""
    B, K = ded_in.shape
    heads = p.weights[9:]
    NO = p.weights[-2].shape[-1]
    dot_bf16, round_bf16, precision = modes
    LAST_COMPILED["global_aggregate"] = _global_aggregate_kernel[(triton.cdiv(B, t.block_b),)](
        ded_in, pooled, state, p.sstat, p.rstat, *heads,
        out["next_state"], out["aux_state"], out["reward"], out["term_logit"], out["avail_logits"], out["u"],
        B, K, meta.state_dim, hidden, pooled.shape[1], NO, state.stride(0), state.stride(1),
        BLOCK_B=t.block_b, BLOCK_S=t.block_s, BLOCK_H=t.block_h, BLOCK_L=t.block_l, BLOCK_C=t.block_c,
        BLOCK_K=t.block_k, BLOCK_O=t.block_o, PREDICT_DELTA=meta.predict_delta,
        STATE_ABSOLUTE=meta.state_target == "absolute", DOT_BF16=dot_bf16,
        ROUND_BF16=round_bf16, PRECISION=precision, num_warps=t.num_warps,
    )


def logo_step_two_kernel(meta: StepMeta, w: StepWeights, obs: torch.Tensor, state: torch.Tensor,
                         actions: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same step as ``logo_step_fused`` in two launches (``local_predict``, ``global_aggregate``)."""
    if meta.state_target not in ("delta", "absolute"):
        raise ValueError(f"state_target={meta.state_target!r}: resolve a hybrid model per step first "
                         "(logo_fast.reference.logo_step.resolve_state_form)")
    B = obs.shape[0]
    out = allocate_outputs(meta, obs)
    if B == 0:
        return out
    p = prepare(meta, w)
    H, L = w.encoder.weights[1].shape[-1], w.encoder.weights[2].shape[-1]
    modes = dot_mode(w.encoder.weights[1].dtype, obs.device)
    t = tiles(meta, H, L, modes[0])
    with torch.cuda.device(obs.device) if obs.device.type == "cuda" else contextlib.nullcontext():
        ded_in, pooled = local_predict_triton(meta, p, t, obs, state, actions, out["next_obs"], H, L, modes)
        global_aggregate_triton(meta, p, t, ded_in, pooled, state, out, H, modes)
    return out



def aot_specs() -> list[dict]:
    """The two-kernel path's global half at the sizes ``step_path`` sends to it, fp32 and bf16."""
    from .logo_step import two_kernel_aot_specs

    return two_kernel_aot_specs(_global_aggregate_kernel)
