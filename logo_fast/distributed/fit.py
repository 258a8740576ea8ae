"""Data-parallel world-model training: ``fit_distributed(model, dataset)`` under torchrun.

What each rank does (W ranks, ``config.batch_size`` = B, the global batch):

1. finds the held-out episodes exactly as ``WorldModel.fit`` does (same rule, same seed), then
   reads only its contiguous range of episodes (``shard.read_episodes``: one slice per field,
   so a lazily loaded HDF5 file is never copied whole); the range's training episodes are its
   training shard, its held-out ones its holdout shard;
2. validates its shard; every rank raises the same ValueError if any rank found a problem;
3. computes the normalisers once over the union of the shards (float64 sums, minima and
   maxima all-reduced: the statistics one process would compute over the training split);
4. trains through DistributedDataParallel (gradients averaged over the ranks after each
   backward: a step's only collective; the logged losses are averaged at evaluation steps,
   and a non-finite loss on any rank stops every rank from the averaged gradients) on B / W
   rows per rank per step, drawn from its own shard's epoch permutations
   (seeded by config.seed and the rank); the step count follows the global rows and B, so
   "epochs" mean what they mean in one process;
5. scores the same fixed holdout subset one process would score, summed over the ranks'
   holdout shards; all ranks take rank 0's early-stopping decision; only rank 0 writes
   checkpoints (temp file + rename, so a crash never leaves a half-written file), and they
   load in one process with ``WorldModel.load``.

A collective that fails (a rank died, or did not answer within the process group's timeout)
raises ``DistributedFitError`` naming the step and the last checkpoint written.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from ..data.schema import OfflineDataset
from .context import DistContext, DistributedFitError, current_context, is_collective_failure, rank_seed
from .shard import read_episodes, shard_ranges

__all__ = ["FitHooks", "fit_distributed"]


class _Losses(torch.nn.Module):
    """``net.losses`` as a forward pass: DistributedDataParallel syncs gradients of what ``forward`` ran."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, batch: dict[str, torch.Tensor]):
        return self.net.losses(batch)


class FitHooks:
    """What ``logo_fast.model.training.fit_loop`` calls when it runs on several ranks (``dist=``).

    train_rows / holdout_rows: global sizes (sum over the ranks' shards).
    """

    def __init__(self, ctx: DistContext, net: torch.nn.Module, batch_size: int, train_sizes: list[int],
                 holdout_sizes: list[int], find_unused_parameters: bool = False):
        self.ctx = ctx
        self.world_size = ctx.world_size
        self.per_rank_batch = batch_size // ctx.world_size
        self.global_batch = batch_size
        self.train_rows = int(sum(train_sizes))
        self.holdout_rows = int(sum(holdout_sizes))
        self.n_local = int(train_sizes[ctx.rank])
        self.hold_offset = int(sum(holdout_sizes[: ctx.rank]))
        self.n_hold_local = int(holdout_sizes[ctx.rank])
        # The generator state right before this rank's current permutation was drawn: enough to
        # redraw it on resume, so checkpoints carry a few KB per rank instead of the permutation.
        self.perm_generator_state: torch.Tensor | None = None
        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        # No buffer sync per step: the buffers (normalisers, bounds) are identical on every rank by
        # construction and never change while training, so re-sending them every step is waste.
        # (torch >= 2.13 spells it forward_sync_buffers; older ones broadcast_buffers.)
        params = inspect.signature(DistributedDataParallel.__init__).parameters
        no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}
        self.ddp = DistributedDataParallel(_Losses(net), device_ids=device_ids,
                                           find_unused_parameters=find_unused_parameters, **no_sync)
        self.last_checkpoint: str | None = None
        self.last_checkpoint_step: int | None = None
        self.step = 0

    # ---- minibatches ---------------------------------------------------------------------------
    def next_positions(self, state, generator: torch.Generator) -> torch.Tensor:
        """(B / W,) positions in this rank's training shard: its epoch permutations, read without gaps."""
        parts, need = [], self.per_rank_batch
        while need:
            if state.perm is None or state.pos >= state.perm.numel():
                self.perm_generator_state = generator.get_state()
                state.perm = torch.randperm(self.n_local, generator=generator)
                state.pos = 0
            take = state.perm[state.pos : state.pos + need]
            state.pos += take.numel()
            need -= take.numel()
            parts.append(take)
        # passes over the global training rows completed before this step, as one process counts them
        # (ranks reshuffle at different steps, so their own reshuffles cannot be the count)
        state.epoch = state.step * self.global_batch // max(self.train_rows, 1)
        self.step = state.step
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """This rank's loss and its parts, through DDP (whose backward averages the gradients).

        No collective here: the gradient all-reduce is the only one per step. The values are this
        rank's; ``mean_losses`` turns them into the global means where they are logged, and
        ``check_finite`` stops every rank alike on a non-finite loss anywhere.
        """
        return self.ddp(batch)

    def mean_losses(self, loss: torch.Tensor, parts: dict[str, float]) -> tuple[float, dict[str, float]]:
        """The loss and its parts averaged over the ranks (one all-reduce; at evaluation steps only),
        so every rank logs the same history as one process at the same global batch would."""
        names = list(parts)
        packed = torch.tensor([float(loss.detach()), *(parts[k] for k in names)], dtype=torch.float64)
        packed = self.ctx.all_reduce(packed, "sum") / self.world_size
        return float(packed[0]), dict(zip(names, packed[1:].tolist(), strict=True))

    def check_finite(self, net: torch.nn.Module, grad_norm: torch.Tensor | None, loss: torch.Tensor,
                     step: int, kind: str) -> None:
        """Raise on every rank at the same step when any rank's loss was non-finite.

        After the gradient all-reduce every rank holds the same averaged gradients, bit for bit, and a
        non-finite loss on any rank makes them non-finite: their norm is one decision all ranks share,
        with no collective of its own (``grad_norm``: the clip's norm, computed here when not clipping).
        """
        if grad_norm is None:
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in net.parameters() if p.grad is not None])
        if not torch.isfinite(grad_norm):
            raise FloatingPointError(
                f"fit {kind}: non-finite gradient at step {step} (a non-finite training loss on at least one "
                f"of the {self.world_size} ranks; this rank's loss {float(loss.detach()):.4g}); "
                "lower config.lr or check the data scale"
            )

    # ---- holdout and stopping ------------------------------------------------------------------
    def local_holdout_positions(self, global_positions: torch.Tensor) -> torch.Tensor:
        """The global holdout positions that fall in this rank's shard, as positions in the shard."""
        lo, hi = self.hold_offset, self.hold_offset + self.n_hold_local
        keep = (global_positions >= lo) & (global_positions < hi)
        return global_positions[keep] - lo

    def reduce_holdout(self, total: torch.Tensor, n: int) -> tuple[torch.Tensor, int]:
        packed = torch.cat([total.double().reshape(-1).cpu(), torch.tensor([float(n)], dtype=torch.float64)])
        packed = self.ctx.all_reduce(packed, "sum")
        # rank 0's sum on every rank: identical scores give identical decisions, bit for bit
        packed = self.ctx.broadcast(packed, 0)
        return packed[:-1].to(total.device), int(packed[-1])

    def agree(self, flag: bool) -> bool:
        return bool(self.ctx.broadcast(torch.tensor([int(flag)], dtype=torch.int64), 0)[0])

    # ---- checkpoints ---------------------------------------------------------------------------
    def rank_state(self, state) -> dict[str, Any]:
        return {"perm_generator_state": self.perm_generator_state, "pos": int(state.pos), "n": self.n_local}

    def restore(self, state, rank_states: list[dict[str, Any]] | None, generator: torch.Generator) -> None:
        """Continue this rank's permutation from a checkpoint's ``rank_states``."""
        if not rank_states:
            state.perm, state.pos = None, 0
            return
        mine = rank_states[self.ctx.rank]
        if mine["n"] != self.n_local:
            raise ValueError(f"resume: rank {self.ctx.rank}'s shard has {self.n_local} rows, the checkpoint's "
                             f"had {mine['n']}; resume with the same data and number of processes")
        if mine["perm_generator_state"] is None:
            state.perm, state.pos = None, 0
            return
        generator.set_state(mine["perm_generator_state"])
        self.perm_generator_state = mine["perm_generator_state"]
        state.perm = torch.randperm(self.n_local, generator=generator)
        state.pos = int(mine["pos"])

    def save(self, model, path: str) -> None:
        """Rank 0 writes ``path`` atomically with every rank's minibatch order; the others only send theirs."""
        state = model.train_state
        everyone = self.ctx.all_gather_object(self.rank_state(state))
        if self.ctx.is_main:
            # The permutation of rank 0's shard means nothing to a one-process resume: leave it out
            # (that resume starts a fresh epoch order); each rank's order is in rank_states.
            saved = dataclasses.replace(state, perm=None, pos=0, rank_states=everyone)
            model.train_state = saved
            try:
                model.save(path)
            finally:
                model.train_state = state
        self.last_checkpoint, self.last_checkpoint_step = path, state.step


def _check_args(model, dataset, holdout, ctx: DistContext) -> list[str]:
    from ..model.base import WorldModel

    problems = []
    if not isinstance(model, WorldModel):
        problems.append(f"model must be a logo_fast WorldModel, got {type(model).__name__}")
    for name, ds in (("dataset", dataset), ("holdout", holdout)):
        if ds is not None and not isinstance(ds, OfflineDataset):
            problems.append(f"{name} must be an OfflineDataset (logo_fast.data.load), got {type(ds).__name__}")
    if isinstance(model, WorldModel):
        B = model.config.batch_size
        if B % ctx.world_size:
            problems.append(f"config.batch_size {B} must be divisible by the {ctx.world_size} processes "
                            f"(each draws batch_size / world_size rows)")
        dev = torch.device(model.config.device)
        if ctx.backend == "nccl" and dev.type != "cuda":
            problems.append(f"the NCCL process group needs config.device='cuda', got {model.config.device!r}")
        if ctx.backend == "gloo" and dev.type != "cpu":
            problems.append(f"the gloo process group here trains on CPU; config.device is {model.config.device!r} "
                            "(use NCCL for GPUs)")
    return problems


def fit_distributed(
    model,
    dataset: OfflineDataset,
    holdout: OfflineDataset | None = None,
    progress: bool = True,
    resume_from: str | None = None,
    checkpoint_path: str | None = None,
    find_unused_parameters: bool = False,
):
    """``model.fit`` over every rank of the running process group (see the module docstring).

    Call it on every rank with the same arguments (the same dataset, e.g. the same file opened
    lazily, and the same config); with no process group running it is ``model.fit``. Arguments
    as in ``WorldModel.fit``; ``progress`` shows rank 0's bar only. ``resume_from`` is read by
    rank 0 and sent to the others (no shared file system needed) and must come from a run with
    the same data and number of processes. Returns ``model`` (on every rank, the same weights).
    """
    from ..data.validate import validate_dataset
    from ..model.checkpoint import read_checkpoint
    from ..model.config import WorldModelConfig
    from ..model.fingerprint import dataset_fingerprint
    from ..model.normalizer import dataset_statistics
    from ..model.training import TrainState, fit_loop
    from ..model.transitions import TransitionStore, TransitionTable, holdout_episodes

    ctx = current_context()
    if not ctx.active:
        return model.fit(dataset, holdout=holdout, progress=progress, resume_from=resume_from,
                         checkpoint_path=checkpoint_path)
    problems = _check_args(model, dataset, holdout, ctx)
    if problems:  # the same arguments on every rank: every rank raises this, with no collective needed
        raise ValueError("fit_distributed: bad input:\n  - " + "\n  - ".join(problems))

    # ---- which episodes this rank reads -------------------------------------------------------
    payload = None
    if resume_from is not None:
        got = None
        if ctx.is_main:
            try:
                got = read_checkpoint(resume_from, expected_kind=model.kind, spec=dataset.spec)
            except (ValueError, FileNotFoundError) as e:
                got = e
        got = ctx.broadcast_object(got, 0)
        if isinstance(got, Exception):
            raise type(got)(f"fit_distributed: {got}")
        payload = got
        if payload.get("training") is None:
            raise ValueError(f"{resume_from}: checkpoint holds no training state to resume from")
        keep = {k: getattr(model.config, k) for k in ("epochs", "max_steps", "patience", "device")}
        model.config = WorldModelConfig.from_dict({**payload["manifest"]["config"], **keep})
    cfg = model.config
    problems = []
    starts, ends = dataset.episode_bounds()
    E = starts.shape[0]
    lengths = ends - starts
    if holdout is None:
        if E < 2:
            problems.append(f"need >= 2 episodes to hold some out (dataset has {E}); pass holdout=")
            held = np.zeros(0, dtype=np.int64)
        else:
            held = holdout_episodes(E, cfg.holdout_fraction, cfg.seed)
    else:
        held = np.zeros(0, dtype=np.int64)
    is_train = np.ones(E, dtype=bool)
    is_train[held] = False
    ranges = None
    try:
        ranges = shard_ranges(lengths, ctx.world_size, is_train)
    except ValueError as e:
        problems.append(str(e))
    if problems:  # computed from the same data on every rank: the same error everywhere
        raise ValueError("fit_distributed: bad input:\n  - " + "\n  - ".join(problems))
    e0, e1 = ranges[ctx.rank]
    local = read_episodes(dataset, e0, e1)
    local_hold, h0, h1 = None, 0, 0
    if holdout is not None:
        h_starts, h_ends = holdout.episode_bounds()
        h0, h1 = _even_ranges(h_ends - h_starts, ctx.world_size)[ctx.rank]
        local_hold = read_episodes(holdout, h0, h1)

    # ---- validation, all ranks together -------------------------------------------------------
    problems = []
    # the validator counts steps from the shard's first step: say where that is in the whole dataset
    first = int(starts[e0]) if e0 < E else 0
    for label, ds in ((f"dataset episodes [{e0}, {e1}) (step numbers below count from step {first})", local),
                      (f"holdout episodes [{h0}, {h1})", local_hold)):
        if ds is None or len(ds) == 0:
            continue
        try:
            validate_dataset(ds)
        except ValueError as e:
            problems.append(f"{label}: {e}")
    if holdout is not None:
        try:
            dataset.spec.check_compatible(holdout.spec)
        except ValueError as e:
            problems.append(str(e))
    if model.spec is not None:
        try:
            model.spec.check_compatible(dataset.spec)
        except ValueError as e:
            problems.append(str(e))
    fingerprint = dataset_fingerprint(dataset)
    if payload is not None:
        saved = payload["manifest"].get("data_fingerprint")
        if saved is not None and saved != fingerprint:
            problems.append(f"{resume_from}: the checkpoint was trained on other data (fingerprint {saved}, "
                            f"this dataset {fingerprint}); start a new fit instead of resuming")
    store = TransitionStore(local)
    held_local = held[(held >= e0) & (held < e1)] - e0
    train_local = np.setdiff1d(np.arange(e1 - e0), held_local)
    train_table = TransitionTable(store, train_local)
    if local_hold is None:
        hold_table = TransitionTable(store, held_local)
    else:
        hold_table = TransitionTable(TransitionStore(local_hold))
    if len(train_table) == 0:
        problems.append(f"rank {ctx.rank}'s training episodes [{e0}, {e1}) have no transition with a next "
                        "observation")
    # one exchange: every rank's sizes and problems, so every rank raises the same error or none
    sizes = ctx.all_gather_object((len(train_table), len(hold_table), problems))
    lines = [f"rank {r}: {p}" for r, (_, _, ps) in enumerate(sizes) for p in ps]
    if sum(s[1] for s in sizes) == 0:
        lines.append("the holdout split has no transition with a next observation")
    if lines:
        raise ValueError("fit_distributed: bad input:\n  - " + "\n  - ".join(lines))
    train_sizes = [s[0] for s in sizes]
    holdout_sizes = [s[1] for s in sizes]

    # ---- model, normalisers, optimiser --------------------------------------------------------
    model._build(dataset.spec)  # same seed on every rank: the same initial weights (DDP checks)
    if not dataset.spec.discrete and dataset.action_low is not None and dataset.action_high is not None:
        model.action_low = torch.as_tensor(np.asarray(dataset.action_low), dtype=torch.float32)
        model.action_high = torch.as_tensor(np.asarray(dataset.action_high), dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(rank_seed(cfg.seed + 1, ctx.rank))
    if payload is None:
        stats = dataset_statistics(train_table, torch.as_tensor(dataset.spec.obs_mask()), all_reduce=ctx.all_reduce)
        model.net.set_statistics(stats)
        state = TrainState()
    else:
        model._load_payload(payload)
        state = TrainState.from_dict(payload["training"])
        if state.optimizer_state is not None:
            optimizer.load_state_dict(state.optimizer_state)
    hooks = FitHooks(ctx, model.net, cfg.batch_size, train_sizes, holdout_sizes, find_unused_parameters)
    if payload is not None:
        if state.rank_states is not None and len(state.rank_states) != ctx.world_size:
            raise ValueError(f"{resume_from}: written by {len(state.rank_states)} processes, resumed with "
                             f"{ctx.world_size}; resume with the same number of processes")
        # a one-process checkpoint has no rank_states: every rank then starts a fresh order of its own
        hooks.restore(state, state.rank_states, generator)
    model.train_state = state
    model.fit_dataset = dataset
    model.data_fingerprint = fingerprint
    t0 = time.perf_counter()
    try:
        fit_loop(model, train_table, hold_table, state, optimizer, generator, progress and ctx.is_main,
                 checkpoint_path, dist=hooks)
    except Exception as e:
        if not is_collective_failure(e):
            raise
        where = (f"checkpoints go to {hooks.last_checkpoint} (the last one requested at step "
                 f"{hooks.last_checkpoint_step}; a write cut short leaves the one before intact)"
                 if hooks.last_checkpoint else "no checkpoint was written")
        raise DistributedFitError(
            f"fit_distributed: rank {ctx.rank} of {ctx.world_size} lost the other ranks at step {hooks.step} after "
            f"{time.perf_counter() - t0:.1f}s (a process died, or a collective waited past the "
            f"{ctx.timeout_s:g}s timeout); {where}. Cause: {type(e).__name__}: {str(e).strip()[:300]}") from e
    model._after_fit(state)
    return model


def _even_ranges(lengths: np.ndarray, world_size: int) -> list[tuple[int, int]]:
    """Contiguous episode ranges balanced by steps; some may be empty when there are fewer episodes than ranks."""
    lengths = np.asarray(lengths, dtype=np.int64)
    E = lengths.shape[0]
    before = np.cumsum(lengths) - lengths
    total = int(lengths.sum())
    lo = [0] + [int(np.searchsorted(before, r * total / world_size, side="left")) for r in range(1, world_size)] + [E]
    lo = list(np.maximum.accumulate(lo))
    return [(int(lo[r]), int(lo[r + 1])) for r in range(world_size)]
