"""Per-row losses and errors used by training and model selection (every function returns (B,))."""

from __future__ import annotations

import torch


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


def scaled_error(pred: torch.Tensor, target: torch.Tensor, inv_std: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ((pred - target) * inv_std)^2 over the features where ``mask`` is 1: (B, ...) -> (B,).

    With inv_std = 1 / (the training data's std) this is the normalised MSE the reports measure
    (per-feature error relative to the feature's spread), restricted to the features that vary.
    """
    se = ((pred - target) * inv_std).square() * mask
    return se.flatten(1).sum(1) / torch.broadcast_to(mask, pred.shape[1:]).sum().clamp_min(1)
