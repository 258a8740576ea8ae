"""Data-parallel learners: ``data_parallel(learner)`` averages every gradient step over the ranks.

A learner (``logo_fast.learners``) stays a one-process object; it exposes one hook,
``learner.grad_hook(params)``, called after each backward pass and before clipping and the
optimiser step (``learners.base.GradHook``). ``data_parallel`` sets that hook to an explicit
all-reduce: the gradients of ``params`` are flattened into one buffer, summed over the ranks in
one collective and divided by the number of ranks. When every rank computed its loss as a mean
over the same number of rows (``ShardedReplay`` gives each rank B / W rows, and the same number
of real ones), the average of the ranks' gradients is the gradient of the loss on the global
batch of B rows, so clipping and the optimiser step see what one process would see.

Why not DistributedDataParallel: DDP syncs what a wrapped module's ``forward`` ran, and the
learners call their networks several times per update (online and target passes, a critic
inside the actor loss) and train a raw parameter (``log_alpha``); one explicit all-reduce after
each backward keeps the learner code as it reads in one process.

Every rank then applies the same averaged gradient (the all-reduce's result is bit-identical on
every rank) to the same weights, so weights, target networks and optimiser states stay identical
without further messages; ``data_parallel`` copies rank 0's state to every rank once at the start.
Each rank's own random generator (exploration in rollouts, the continuous learner's action
noise) is reseeded per rank, so ranks do not repeat each other's draws.
"""

from __future__ import annotations

from typing import Any

import torch

from .context import DistContext, current_context, rank_seed

__all__ = ["GradientAverager", "data_parallel", "learner_rank_state", "load_learner_rank_state"]


class GradientAverager:
    """``grad_hook`` that replaces each gradient by its mean over the ranks (one all-reduce per call).

    params: the parameters one optimiser step trains; those whose ``.grad`` is None are left out
    (every rank runs the same code on same-shaped batches, so the same ones are None everywhere).
    """

    def __init__(self, ctx: DistContext):
        self.ctx = ctx
        self.calls = 0

    def __call__(self, params: list[torch.Tensor]) -> None:
        grads = [p.grad for p in params if p.grad is not None]
        self.calls += 1
        if not grads or not self.ctx.active:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])  # one message, not one per tensor
        flat = self.ctx.all_reduce(flat, "sum") / self.ctx.world_size
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n


def data_parallel(learner: Any, ctx: DistContext | None = None, seed: int = 0) -> Any:
    """Make ``learner`` train data-parallel over the running process group; returns it.

    Sets ``learner.grad_hook`` (a ``GradientAverager``), copies rank 0's ``state_dict()`` to every
    rank (so a learner resumed or normalised on rank 0 only is the same everywhere) and reseeds
    ``learner.generator``, when it has one, with ``rank_seed(seed + 1, rank)``. Call it on every
    rank (it is a collective). Raises ValueError for a learner without a ``grad_hook`` attribute.
    """
    ctx = ctx if ctx is not None else current_context()
    if not hasattr(learner, "grad_hook"):
        raise ValueError(f"{type(learner).__name__} has no grad_hook attribute, so it cannot train data-parallel "
                         "under torchrun; add `self.grad_hook = None` and call it after each backward "
                         "(see logo_fast.learners.base.GradHook), or run in one process")
    if ctx.active:
        state = ctx.broadcast_object(learner.state_dict() if ctx.is_main else None, 0)
        if not ctx.is_main:
            learner.load_state_dict(state)
    learner.grad_hook = GradientAverager(ctx)
    if isinstance(getattr(learner, "generator", None), torch.Generator):
        learner.generator.manual_seed(rank_seed(seed + 1, ctx.rank))
    return learner


def learner_rank_state(learner: Any) -> dict[str, Any]:
    """What differs between the ranks' copies of a data-parallel learner: its random generator's state."""
    gen = getattr(learner, "generator", None)
    return {"generator": gen.get_state() if isinstance(gen, torch.Generator) else None}


def load_learner_rank_state(learner: Any, state: dict[str, Any]) -> None:
    """Restore ``learner_rank_state`` (after ``load_state_dict`` of the shared state)."""
    if state.get("generator") is not None:
        learner.generator.set_state(state["generator"])
