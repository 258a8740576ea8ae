"""Reference for ``state_disagreement``: LOGO's uncertainty, the two paths' disagreement."""

from __future__ import annotations

import torch


def state_disagreement_reference(aux: torch.Tensor, ded: torch.Tensor, inv_std: torch.Tensor) -> torch.Tensor:
    """u[b] = sqrt( sum_j ((aux[b, j] - ded[b, j]) * inv_std[j])^2 ).

    The L2 distance between the auxiliary-head and deductive-model next-state predictions,
    measured in normalised state space (both are normalised by the same per-feature std, so
    the means cancel and only ``inv_std = 1 / std`` is needed).

    aux, ded: (B, S) any floating dtype; inv_std: (S,). Returns (B,) in the input's dtype
    promoted to at least float32 (float64 stays float64, so tests can check in float64).
    """
    out_dtype = torch.promote_types(aux.dtype, torch.float32)
    diff = (aux.to(out_dtype) - ded.to(out_dtype)) * inv_std.to(out_dtype)
    return torch.linalg.vector_norm(diff, dim=-1)
