"""Layers shared by the world-model networks: grouped linear maps and MLPs, a soft clamp.

A *group* is an agent (per-agent weights) or an ensemble member (stacked weights): every group
runs in one batched matmul. ``groups == 1`` shares one weight across whatever leading dims the
input has.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def soft_clamp(x: torch.Tensor, lo: torch.Tensor | float, hi: torch.Tensor | float) -> torch.Tensor:
    """Smooth clamp to (lo, hi) that keeps gradients everywhere (MOPO's log-variance bounding)."""
    x = hi - F.softplus(hi - x)
    return lo + F.softplus(x - lo)


def group_matmul(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x @ W per group, no bias: x (..., d_in) with W (1, d_in, d_out), or (B, G, d_in) with (G, d_in, d_out)."""
    if weight.shape[0] == 1:
        return x @ weight[0]
    return torch.einsum("bgi,gio->bgo", x, weight)


class GroupLinear(nn.Module):
    """y[..., g, :] = x[..., g, :] @ W[g] + b[g] for G weight groups; G = 1 shares one weight.

    x: (..., d_in) when groups == 1 (any leading dims), else (B, G, d_in) -> (B, G, d_out).
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
        return group_matmul(x, self.weight) + (self.bias[0] if self.weight.shape[0] == 1 else self.bias)


class GroupMLP(nn.Module):
    """``layers`` hidden layers of width ``hidden`` with SiLU, then a linear output; see GroupLinear."""

    def __init__(self, groups: int, d_in: int, hidden: int, d_out: int, layers: int):
        super().__init__()
        dims = [d_in] + [hidden] * layers + [d_out]
        self.linears = nn.ModuleList(GroupLinear(groups, a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Apply the linears from index ``start`` on (``start`` = 1: ``x`` is the first layer's activation)."""
        for i in range(start, len(self.linears)):
            x = self.linears[i](x)
            if i < len(self.linears) - 1:
                x = F.silu(x)
        return x


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
