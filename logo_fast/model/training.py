"""The fit loop every world model shares: minibatches, holdout evaluation, early stopping, resume.

One loop serves LOGO, the joint MLP and the ensemble: a network exposes
``losses(batch) -> (total, parts)`` and ``holdout_error(batch) -> (B, M)`` (M = 1, or one
column per ensemble member), and the loop does the rest. With M > 1 the best weights are kept
per member (each member's parameters carry a leading member axis), as MOPO does.

Determinism: minibatch order comes from a ``torch.Generator`` seeded by ``config.seed``; the
generator state, optimiser state, step and the current epoch's permutation live in
``TrainState`` and are saved with checkpoints, so a resumed run continues the same sequence.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .transitions import TransitionTable


@dataclass
class TrainState:
    """Everything needed to continue a run where it stopped."""

    step: int = 0
    """Optimiser steps taken."""
    epoch: int = 0
    """Completed passes over the training split."""
    perm: torch.Tensor | None = None
    """The current epoch's minibatch order."""
    pos: int = 0
    """Position in ``perm``."""
    best_score: torch.Tensor | None = None
    """(M,) best holdout error so far."""
    best_state: dict[str, torch.Tensor] | None = None
    """Weights at the best holdout error."""
    bad_evals: int = 0
    """Evaluations since the last improvement."""
    done: bool = False
    """Early stopping fired."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """One entry per evaluation."""
    generator_state: torch.Tensor | None = None
    """The minibatch generator's state (torch.Generator.get_state())."""
    optimizer_state: dict[str, Any] | None = None
    """The optimiser's state_dict."""
    train_time_s: float = 0.0
    """Wall time spent in the fit loop so far, in seconds."""
    rank_states: list[dict[str, Any]] | None = None
    """Distributed fit (logo_fast.distributed) only: every rank's minibatch position ({"perm_generator_state", "pos", "n"} per rank: the generator state its current permutation was drawn from), so a resumed run continues each rank's sequence; None otherwise."""  # noqa: E501

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainState:
        return cls(**d)


def holdout_score(net, table: TransitionTable, positions: torch.Tensor, device, chunk: int = 8192,
                  reduce=None) -> torch.Tensor:
    """(M,) mean holdout error of ``net`` over ``table`` rows ``positions``.

    ``reduce`` (distributed fit only): ``reduce(total (M,) float64, n) -> (total, n)`` summed over
    every rank's holdout shard, so all ranks get the mean over the whole holdout.
    """
    net.eval()
    total, n = None, 0
    with torch.no_grad():
        for b in table.chunks(chunk, device, positions):
            err = net.holdout_error(b).double().sum(0)
            total = err if total is None else total + err
            n += b["reward"].shape[0]
        if reduce is not None:
            if total is None:  # this rank holds no holdout rows: a 0-row pass gives the (M,) zeros to add
                total = net.holdout_error(table.batch(torch.zeros(0, dtype=torch.int64), device)).double().sum(0)
            total, n = reduce(total, n)
    net.train()
    return (total / max(n, 1)).float().cpu()


def _snapshot(net) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _keep_best(net, state: TrainState, scores: torch.Tensor, improved: torch.Tensor) -> None:
    if state.best_state is None or scores.numel() == 1:
        if bool(improved.all()):
            state.best_state = _snapshot(net)
        return
    # Ensemble: copy only the improved members' slices of every member-stacked parameter.
    current = net.state_dict()
    params = {name for name, _ in net.named_parameters()}
    members = torch.nonzero(improved).flatten()
    for name, value in current.items():
        if name in params:
            idx = members.to(value.device)
            state.best_state[name][idx] = value.detach()[idx].clone()


def fit_loop(
    model,
    train: TransitionTable,
    holdout: TransitionTable,
    state: TrainState,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    progress: bool = True,
    checkpoint_path: str | None = None,
    dist=None,
) -> TrainState:
    """Train ``model.net`` until ``config.epochs``/``config.max_steps`` or early stopping; keep the best weights.

    ``dist``: None for a single-process fit (nothing below changes then). ``logo_fast.distributed``
    passes its hooks object (``logo_fast.distributed.fit.FitHooks``): ``train``/``holdout`` are
    then this rank's shards, step counts follow the global rows and batch, each rank draws
    ``batch_size / world_size`` rows, losses go through DistributedDataParallel, holdout scores
    and the stop decision are reduced over the ranks and only rank 0 writes checkpoints.
    """
    from ..progress import progress as progress_bar

    cfg, net, device = model.config, model.net, model.device
    n = len(train) if dist is None else dist.train_rows  # distributed: the global training rows
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    eval_every = cfg.eval_every or steps_per_epoch
    # A fixed subset of holdout rows, the same at every evaluation and after a resume.
    hold_gen = torch.Generator().manual_seed(cfg.seed + 7)
    hold_pos = torch.randperm(len(holdout) if dist is None else dist.holdout_rows, generator=hold_gen)
    if cfg.max_holdout_rows:
        hold_pos = hold_pos[: cfg.max_holdout_rows]
    hold_pos = hold_pos.sort().values
    if dist is not None:  # the same global subset as one process would score, as positions in this rank's shard
        hold_pos = dist.local_holdout_positions(hold_pos)
    state.done = False
    # A live bar on a terminal, one line every 30 s in a pipe or log (logo_fast.progress).
    bar = progress_bar(total=total_steps, desc=f"fit {model.kind}", quiet=not progress, unit="step")
    bar.update(min(state.step, total_steps))
    t0 = time.perf_counter()
    last_parts: dict[str, float] = {}
    net.train()
    try:
        while state.step < total_steps and not state.done:
            if dist is not None:  # distributed: this rank's full share of the global batch
                positions = dist.next_positions(state, generator)
            else:
                if state.perm is None or state.pos >= state.perm.numel():
                    if state.perm is not None:
                        state.epoch += 1
                    state.perm = torch.randperm(n, generator=generator)
                    state.pos = 0
                positions = state.perm[state.pos : state.pos + cfg.batch_size]
                state.pos += cfg.batch_size
            batch = train.batch(positions, device)
            if dist is None:
                loss, last_parts = net.losses(batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"fit {model.kind}: non-finite training loss at step {state.step} (parts {last_parts}); "
                        "lower config.lr or check the data scale"
                    )
            else:  # through DistributedDataParallel: this rank's loss; the check waits for the averaged gradients
                loss, last_parts = dist.losses(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip) if cfg.grad_clip else None
            if dist is not None:  # before the step: a non-finite loss on any rank leaves the weights untouched
                dist.check_finite(net, grad_norm, loss, state.step, model.kind)
            optimizer.step()
            state.step += 1
            bar.update(1)
            if state.step % eval_every == 0 or state.step == total_steps:
                scores = holdout_score(net, holdout, hold_pos, device,
                                       reduce=None if dist is None else dist.reduce_holdout)
                if state.best_score is None:
                    improved = torch.ones_like(scores, dtype=torch.bool)
                    state.best_score = scores.clone()
                else:
                    improved = scores < state.best_score - cfg.min_improvement * state.best_score.abs()
                    state.best_score = torch.where(improved, scores, state.best_score)
                _keep_best(net, state, scores, improved)
                state.bad_evals = 0 if bool(improved.any()) else state.bad_evals + 1
                if dist is None:
                    train_loss = float(loss.detach())
                else:  # the global means, as one process would log them
                    train_loss, last_parts = dist.mean_losses(loss, last_parts)
                entry = {"step": state.step, "epoch": state.epoch, "train_loss": train_loss,
                         "holdout": float(scores.mean()), "best_holdout": float(state.best_score.mean()),
                         **{f"train_{k}": v for k, v in last_parts.items()}}
                state.history.append(entry)
                bar.set_postfix(loss=f"{train_loss:.4f}", holdout=f"{entry['holdout']:.4f}",
                                best=f"{entry['best_holdout']:.4f}")
                if state.bad_evals >= cfg.patience > 0:
                    state.done = True
                if dist is not None:  # every rank stops at the same step: rank 0's decision holds for all
                    state.done = dist.agree(state.done)
                state.generator_state = generator.get_state()
                state.optimizer_state = optimizer.state_dict()
                if checkpoint_path:
                    state.train_time_s += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    if dist is None:
                        model.save(checkpoint_path)
                    else:  # gathers every rank's minibatch order; only rank 0 writes (atomically)
                        dist.save(model, checkpoint_path)
    finally:
        bar.close()
        state.train_time_s += time.perf_counter() - t0
        state.generator_state = generator.get_state()
        state.optimizer_state = optimizer.state_dict()
    if state.best_state is not None:
        net.load_state_dict(state.best_state)
    if progress:
        best = state.history[int(np.argmin([h["best_holdout"] for h in state.history]))] if state.history else None
        why = "early stop" if state.done else "step/epoch limit"
        where = f", best holdout {best['best_holdout']:.4g} at step {best['step']}" if best else ""
        print(f"fit {model.kind}: {state.step} steps ({state.step / steps_per_epoch:.1f} epochs) in "
                   f"{state.train_time_s:.1f}s, "
                   f"{why}{where}; kept the best weights")
    return state
