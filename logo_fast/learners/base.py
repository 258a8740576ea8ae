"""What every learner shares: the ``Learner`` protocol and a few small network helpers.

A batch is a dict of tensors as ``UncertaintyWeightedReplay.sample`` returns it (B rows, N agents):

    obs (B, N, obs_dim) float, state (B, state_dim) float,
    actions (B, N) int64 (discrete) or (B, N, act_dim) float (continuous),
    rewards (B,) float, terminals (B,) bool (True: no bootstrap; a time-limit cut is not terminal),
    next_obs, next_state like obs/state,
    avail_actions, next_avail (B, N, n_actions) bool (discrete tasks),
    source (B,) int64 (0 real, 1 synthetic), prob (B,) float (the row's sampling probability).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

__all__ = ["GradHook", "InputNormalizer", "Learner", "agent_inputs", "check_batch", "masked_argmax", "mlp",
           "soft_update"]

GradHook = Callable[[list[torch.Tensor]], None]
"""``learner.grad_hook(params)``: called after each backward pass, before gradient clipping and the
optimiser step, with the parameters that step trains (those with ``.grad`` set). The built-in
learners have the attribute (None: nothing happens); ``logo_fast.distributed.data_parallel`` sets
it to average the gradients over the ranks, so the learner itself knows nothing of processes."""


@runtime_checkable
class Learner(Protocol):
    """The interface the training pipeline drives; any object with these four methods plugs in."""

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One gradient step on ``batch``; returns scalar metrics by name (losses, Q means, ...)."""

    def act(self, obs: torch.Tensor, avail: torch.Tensor | None = None, deterministic: bool = True) -> torch.Tensor:
        """obs (B, N, obs_dim), avail (B, N, n_actions) bool or None -> actions (B, N) int64 or (B, N, act_dim).

        Discrete learners never return an unavailable action. ``deterministic=False`` explores
        (epsilon-greedy or a sample from the policy) with the learner's own seeded generator.
        """

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-for-bit: networks, target networks, optimisers,
        the update count and the learner's random generator."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``."""

    # Optional: ``fit_normalizer(obs (R, N, obs_dim), state (R, state_dim))``; the pipeline calls it
    # with the real data before training when a learner has it (the built-in ones standardise inputs).
    # Optional: ``grad_hook`` (a ``GradHook`` attribute, see above), needed to train under torchrun.


def mlp(sizes: list[int], activation: type[nn.Module] = nn.ReLU, layer_norm: bool = False) -> nn.Sequential:
    """Linear layers of the given sizes with ``activation`` between them (none after the last).

    Layer norm after each hidden linear layer (``layer_norm=True``) keeps offline Q-values from
    drifting on out-of-distribution inputs, as in recent offline-RL critics.
    """
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            if layer_norm:
                layers.append(nn.LayerNorm(b))
            layers.append(activation())
    return nn.Sequential(*layers)


def agent_inputs(obs: torch.Tensor) -> torch.Tensor:
    """(B, N, obs_dim) -> (B, N, obs_dim + N): each agent's observation with its one-hot id.

    The id lets one set of shared weights still act differently per agent (parameter sharing
    as in QMIX / MAPPO implementations).
    """
    B, N, _ = obs.shape
    ids = torch.eye(N, dtype=obs.dtype, device=obs.device).expand(B, N, N)
    return torch.cat([obs, ids], dim=-1)


def masked_argmax(values: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
    """argmax over the last axis among available entries; values (..., A), avail (..., A) bool.

    A row with no available action at all falls back to the plain argmax (the environment
    adapters guarantee at least one, so this only guards against malformed masks).
    """
    if avail is None:
        return values.argmax(-1)
    avail = avail.to(torch.bool)
    none = ~avail.any(-1, keepdim=True)
    masked = values.masked_fill(~(avail | none), float("-inf"))
    return masked.argmax(-1)


def check_batch(batch: dict[str, torch.Tensor], keys: tuple[str, ...], who: str) -> None:
    """One ValueError naming every missing key of ``batch``."""
    missing = [k for k in keys if k not in batch]
    if missing:
        raise ValueError(f"{who}.update: batch lacks {missing} (it has {sorted(batch)})")


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target <- (1 - tau) * target + tau * source (tau = 1: a hard copy)."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters(), strict=True):
            t.lerp_(s, tau)


class InputNormalizer(nn.Module):
    """(x - mean) / std per feature, for observations and global states; the identity until ``fit``.

    Offline-RL learners standardise their inputs with the dataset's statistics (CORL normalises
    D4RL states): MaMuJoCo velocities and SMAX unit features span very different scales. One
    set of observation statistics is shared by all agents, as the networks are.
    """

    def __init__(self, obs_dim: int, state_dim: int):
        super().__init__()
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        self.register_buffer("state_mean", torch.zeros(state_dim))
        self.register_buffer("state_std", torch.ones(state_dim))

    @torch.no_grad()
    def fit(self, obs: torch.Tensor, state: torch.Tensor) -> None:
        """obs (R, N, obs_dim), state (R, state_dim): set the statistics (constant features keep std 1)."""
        o = obs.float().reshape(-1, obs.shape[-1])
        s = state.float().reshape(-1, state.shape[-1])
        for x, mean, std in ((o, self.obs_mean, self.obs_std), (s, self.state_mean, self.state_std)):
            sd = x.std(0, unbiased=False)
            mean.copy_(x.mean(0))
            std.copy_(torch.where(sd > 1e-6, sd, torch.ones_like(sd)))

    def obs(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.obs_mean) / self.obs_std

    def state(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.state_mean) / self.state_std
