"""``logo_fast::state_disagreement``: LOGO's uncertainty as a custom op.

u[b] = ||(aux[b] - ded[b]) * inv_std||_2, the disagreement of the auxiliary-state head and the
deductive model in normalised state space. Backends: ``triton`` (CUDA tensors, fp16/bf16/fp32)
and ``torch`` (the reference; every dtype, every device). float64 inputs always take the
reference so that tests can check in float64.
"""

from __future__ import annotations

import torch

from ..backend import choose_backend
from ..reference.state_disagreement import state_disagreement_reference

_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@torch.library.custom_op("logo_fast::state_disagreement", mutates_args=())
def _state_disagreement_op(aux: torch.Tensor, ded: torch.Tensor, inv_std: torch.Tensor) -> torch.Tensor:
    impls = ("torch", "triton") if aux.dtype in _TRITON_DTYPES else ("torch",)
    if choose_backend("state_disagreement", aux.device, impls) == "triton":
        from ..kernels.state_disagreement import state_disagreement_triton

        return state_disagreement_triton(aux, ded, inv_std)
    return state_disagreement_reference(aux, ded, inv_std)


@_state_disagreement_op.register_fake
def _(aux: torch.Tensor, ded: torch.Tensor, inv_std: torch.Tensor) -> torch.Tensor:
    return aux.new_empty((aux.shape[0],), dtype=torch.promote_types(aux.dtype, torch.float32))


def _setup_context(ctx, inputs, output) -> None:
    aux, ded, inv_std = inputs
    ctx.save_for_backward(aux, ded, inv_std, output)


def _backward(ctx, grad_u: torch.Tensor):
    # du/daux = (aux - ded) * inv_std^2 / u; zero where u == 0 (the norm's subgradient).
    aux, ded, inv_std, u = ctx.saved_tensors
    dt = u.dtype
    scaled = (aux.to(dt) - ded.to(dt)) * inv_std.to(dt) ** 2
    g = torch.where(u > 0, grad_u / torch.where(u > 0, u, torch.ones_like(u)), torch.zeros_like(u))
    grad_aux = (scaled * g[:, None]).to(aux.dtype)
    grad_inv = None
    if ctx.needs_input_grad[2]:
        diff = aux.to(dt) - ded.to(dt)
        grad_inv = ((diff * diff * inv_std.to(dt)) * g[:, None]).sum(0).to(inv_std.dtype)
    return grad_aux, -grad_aux.to(ded.dtype), grad_inv


_state_disagreement_op.register_autograd(_backward, setup_context=_setup_context)


def state_disagreement(aux: torch.Tensor, ded: torch.Tensor, inv_std: torch.Tensor) -> torch.Tensor:
    """LOGO uncertainty per row.

    aux: (B, S) next-state prediction of the auxiliary-state head (raw state units)
    ded: (B, S) next-state prediction of the deductive model (raw state units)
    inv_std: (S,) 1 / std of the state normaliser
    returns u: (B,) float32 (float64 for float64 inputs)

    Raises one ValueError listing every problem with the inputs before any work.
    """
    problems = []
    for name, t in (("aux", aux), ("ded", ded), ("inv_std", inv_std)):
        if not isinstance(t, torch.Tensor):
            problems.append(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if problems:
        raise ValueError("state_disagreement: " + "; ".join(problems))
    if aux.dim() != 2:
        problems.append(f"aux must be (B, S), got shape {tuple(aux.shape)}")
    if ded.shape != aux.shape:
        problems.append(f"ded shape {tuple(ded.shape)} != aux shape {tuple(aux.shape)}")
    if inv_std.dim() != 1 or (aux.dim() == 2 and inv_std.shape[0] != aux.shape[-1]):
        problems.append(f"inv_std must be (S,) = ({aux.shape[-1] if aux.dim() else '?'},), got {tuple(inv_std.shape)}")
    for name, t in (("aux", aux), ("ded", ded), ("inv_std", inv_std)):
        if not t.is_floating_point():
            problems.append(f"{name} must be floating point, got {t.dtype}")
    if not (aux.device == ded.device == inv_std.device):
        problems.append(f"all inputs must be on one device, got {aux.device}, {ded.device}, {inv_std.device}")
    if aux.dim() == 2 and aux.shape[1] == 0:
        problems.append("state dimension S must be >= 1")
    if problems:
        raise ValueError("state_disagreement: bad input:\n  - " + "\n  - ".join(problems))
    return _state_disagreement_op(aux, ded, inv_std)
