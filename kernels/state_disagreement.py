"""Triton kernel for ``state_disagreement``: u = ||(aux - ded) * inv_std||_2 per row.

One program reduces BLOCK_B rows, walking the state dimension in BLOCK_S tiles so any state
size works with one compiled kernel per tile shape; sums are accumulated in float32 whatever
the input dtype (fp16/bf16/fp32). Strided inputs are read in place: no .contiguous() copies.
The reference is logo_fast/reference/state_disagreement.py.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl


@triton.jit
def _state_disagreement_kernel(
    aux_ptr,
    ded_ptr,
    inv_std_ptr,
    out_ptr,
    B,
    S,
    stride_ab,
    stride_as,
    stride_db,
    stride_ds,
    stride_is,
    BLOCK_B: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    # u[b] = sqrt(sum_s ((aux[b, s] - ded[b, s]) * inv_std[s])^2)
    pid = tl.program_id(0)
    rows = pid * BLOCK_B + tl.arange(0, BLOCK_B)
    row_ok = rows < B
    rows64 = rows.to(tl.int64)  # B * stride can pass 2^31 at large batch
    acc = tl.zeros((BLOCK_B,), dtype=tl.float32)
    for s0 in range(0, S, BLOCK_S):
        cols = s0 + tl.arange(0, BLOCK_S)
        col_ok = cols < S
        mask = row_ok[:, None] & col_ok[None, :]
        a = tl.load(aux_ptr + rows64[:, None] * stride_ab + cols[None, :] * stride_as, mask=mask, other=0.0)
        d = tl.load(ded_ptr + rows64[:, None] * stride_db + cols[None, :] * stride_ds, mask=mask, other=0.0)
        w = tl.load(inv_std_ptr + cols * stride_is, mask=col_ok, other=0.0)
        diff = (a.to(tl.float32) - d.to(tl.float32)) * w.to(tl.float32)[None, :]
        acc += tl.sum(diff * diff, axis=1)
    tl.store(out_ptr + rows, tl.sqrt(acc), mask=row_ok)


def _tiles(B: int, S: int) -> tuple[int, int]:
    block_s = min(128, triton.next_power_of_2(max(S, 16)))
    # One tile of 2k elements: enough work per program while staying well under 255 registers
    # a thread (4k-element tiles reach 246 on sm_90; `python -m logo_fast.kernels.aot` shows it).
    block_b = max(1, min(triton.next_power_of_2(max(B, 1)), 2048 // block_s))
    return block_b, block_s


def state_disagreement_triton(aux: torch.Tensor, ded: torch.Tensor, inv_std: torch.Tensor) -> torch.Tensor:
    """aux, ded: (B, S) fp16/bf16/fp32 (any strides); inv_std: (S,). Returns (B,) float32."""
    B, S = aux.shape
    out = torch.empty(B, dtype=torch.float32, device=aux.device)
    if B == 0:
        return out
    block_b, block_s = _tiles(B, S)
    grid = (triton.cdiv(B, block_b),)
    # Launch on the tensors' own GPU, not the current one (CPU tensors: Triton's interpreter).
    with torch.cuda.device(aux.device) if aux.is_cuda else contextlib.nullcontext():
        _state_disagreement_kernel[grid](
            aux,
            ded,
            inv_std,
            out,
            B,
            S,
            aux.stride(0),
            aux.stride(1),
            ded.stride(0),
            ded.stride(1),
            inv_std.stride(0),
            BLOCK_B=block_b,
            BLOCK_S=block_s,
        )
    return out


def aot_specs() -> list[dict]:
    """Configurations to compile ahead of time for a GPU target (CI checks them with no GPU)."""
    sig = {"aux_ptr": "*fp32", "ded_ptr": "*fp32", "inv_std_ptr": "*fp32", "out_ptr": "*fp32", "B": "i32", "S": "i32"}
    sig |= {name: "i32" for name in ("stride_ab", "stride_as", "stride_db", "stride_ds", "stride_is")}
    sig |= {"BLOCK_B": "constexpr", "BLOCK_S": "constexpr"}
    specs = []
    for dtype in ("fp32", "bf16"):
        s = dict(sig, aux_ptr=f"*{dtype}", ded_ptr=f"*{dtype}")
        for block_b, block_s in ((16, 128), (128, 16), (1, 16)):
            constexprs = {"BLOCK_B": block_b, "BLOCK_S": block_s}
            specs.append({"fn": _state_disagreement_kernel, "signature": s, "constexprs": constexprs})
    return specs
