"""The process group every distributed piece uses: set up once from torchrun's environment, with timeouts.

``init_distributed()`` reads what ``torchrun`` exports (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``) and starts ``torch.distributed`` with NCCL when the process has
a GPU, gloo otherwise; tests pass ``init_method``/``rank``/``world_size`` themselves. Every
collective gets a timeout (``timeout_s``, default ``LOGO_FAST_DIST_TIMEOUT`` or 300 s), so a dead
or stuck peer ends in an error instead of a hang. A single process needs none of this: the
helpers below also work, as no-ops, when no process group is running.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["DistContext", "DistributedFitError", "current_context", "init_distributed", "is_collective_failure",
           "rank_seed"]

DEFAULT_TIMEOUT_S = 300.0


class DistributedFitError(RuntimeError):
    """A collective failed (a peer died, hung past the timeout or disconnected); the message says where."""


def _timeout_s(timeout_s: float | None) -> float:
    if timeout_s is not None:
        return float(timeout_s)
    return float(os.environ.get("LOGO_FAST_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))


@dataclass(frozen=True)
class DistContext:
    """Who this process is in the job (rank 0 of 1 when no process group runs)."""

    rank: int
    """This process's global rank."""
    world_size: int
    """Number of processes in the job."""
    local_rank: int
    """Rank within this node (its GPU index under torchrun)."""
    backend: str
    """"gloo", "nccl" or "none" (single process)."""
    device: torch.device
    """Where this rank computes and where collectives' tensors must live (cuda for NCCL)."""
    timeout_s: float
    """Seconds a collective may wait before it fails."""

    @property
    def active(self) -> bool:
        """True when a process group with more than nothing to talk to runs."""
        return self.backend != "none"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ---- collectives (each one call; no-ops in a single process) -----------------------------
    def all_reduce(self, t: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """``t`` reduced over every rank (``op``: sum, min or max), as a new tensor on ``t``'s device."""
        if not self.active:
            return t.clone()
        ops = {"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}
        buf = t.detach().to(self.device).clone()
        dist.all_reduce(buf, op=ops[op])
        return buf.to(t.device)

    def all_gather(self, t: torch.Tensor) -> torch.Tensor:
        """(world_size, *t.shape): every rank's ``t`` (same shape on every rank), in rank order."""
        if not self.active:
            return t.detach().clone()[None]
        buf = t.detach().to(self.device).contiguous()
        out = [torch.empty_like(buf) for _ in range(self.world_size)]
        dist.all_gather(out, buf)  # the list form: the same call on every torch version and backend
        return torch.stack(out).to(t.device)

    def broadcast(self, t: torch.Tensor, src: int = 0) -> torch.Tensor:
        """Rank ``src``'s ``t`` on every rank (a new tensor)."""
        if not self.active:
            return t.clone()
        buf = t.detach().to(self.device).clone()
        dist.broadcast(buf, src=src)
        return buf.to(t.device)

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's picklable ``obj``, in rank order (for small set-up messages, not per step)."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """Rank ``src``'s picklable ``obj`` on every rank."""
        if not self.active:
            return obj
        box = [obj if self.rank == src else None]
        dist.broadcast_object_list(box, src=src, device=self.device if self.backend == "nccl" else None)
        return box[0]

    def gather_object(self, obj: Any, dst: int = 0) -> list[Any] | None:
        """Every rank's picklable ``obj`` in rank order on rank ``dst`` (None elsewhere); for checkpoints."""
        if not self.active:
            return [obj]
        out: list[Any] | None = [None] * self.world_size if self.rank == dst else None
        dist.gather_object(obj, out, dst=dst)
        return out

    def scatter_object(self, objs: list[Any] | None, src: int = 0) -> Any:
        """Item ``rank`` of rank ``src``'s list ``objs`` (one per rank; ignored elsewhere) on each rank."""
        if not self.active:
            return objs[0]
        box: list[Any] = [None]
        dist.scatter_object_list(box, objs if self.rank == src else None, src=src)
        return box[0]

    def all_to_all(self, rows: torch.Tensor, send: list[int], receive: list[int]) -> torch.Tensor:
        """Rows exchanged between the ranks: ``send[r]`` leading-axis rows of ``rows`` go to rank r, in order.

        rows: (sum(send), ...); returns (sum(receive), ...), the rows from rank 0 first. Every rank
        must pass splits that agree (what r sends to s is what s receives from r).
        """
        if not self.active:
            return rows.clone()
        buf = rows.detach().to(self.device).contiguous()
        out = torch.empty((sum(receive), *buf.shape[1:]), dtype=buf.dtype, device=buf.device)
        dist.all_to_all_single(out, buf, output_split_sizes=list(receive), input_split_sizes=list(send))
        return out.to(rows.device)

    def barrier(self) -> None:
        """Wait until every rank gets here (no-op in one process)."""
        if self.active:
            dist.barrier()


def _single() -> DistContext:
    return DistContext(0, 1, 0, "none", torch.device("cpu"), _timeout_s(None))


def current_context(device: str | torch.device | None = None) -> DistContext:
    """The running process group's context, or rank 0 of 1 when none runs."""
    if not (dist.is_available() and dist.is_initialized()):
        return _single()
    backend = str(dist.get_backend())
    local_rank = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    if device is None:
        device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    timeout = _timeout_s(None)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, backend, torch.device(device), timeout)


def init_distributed(
    backend: str | None = None,
    timeout_s: float | None = None,
    init_method: str | None = None,
    rank: int | None = None,
    world_size: int | None = None,
) -> DistContext:
    """Start (or join) the process group; returns this process's ``DistContext``.

    Under ``torchrun`` call it with no arguments. Without torchrun's variables and without
    ``init_method`` it starts nothing and returns rank 0 of 1, so the same script runs as one
    process. backend: "nccl", "gloo" or None (NCCL when CUDA is available, else gloo); with NCCL
    each process uses GPU ``LOCAL_RANK``. timeout_s: per-collective timeout (see the module doc).
    """
    problems = []
    if backend not in (None, "gloo", "nccl"):
        problems.append(f"backend must be 'gloo', 'nccl' or None, got {backend!r}")
    t = _timeout_s(timeout_s)
    if not t > 0:
        problems.append(f"timeout_s must be > 0, got {timeout_s!r}")
    if (rank is None) != (world_size is None):
        problems.append("give both rank and world_size or neither")
    elif rank is not None and not (isinstance(rank, int) and isinstance(world_size, int) and 0 <= rank < world_size):
        problems.append(f"need 0 <= rank < world_size, got rank={rank!r}, world_size={world_size!r}")
    if backend == "nccl" and not torch.cuda.is_available():
        problems.append("backend 'nccl' needs CUDA, which is not available (use gloo on CPU)")
    if problems:
        raise ValueError("init_distributed: bad input:\n  - " + "\n  - ".join(problems))
    if dist.is_initialized():
        return current_context()
    launched = "WORLD_SIZE" in os.environ and "RANK" in os.environ
    if init_method is None and not launched:
        return _single()
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", rank if rank is not None else 0))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    os.environ["LOGO_FAST_DIST_TIMEOUT"] = str(t)  # current_context() reads it back
    dist.init_process_group(backend=backend, init_method=init_method or "env://", rank=rank if rank is not None
                            else -1, world_size=world_size if world_size is not None else -1,
                            timeout=timedelta(seconds=t))
    return current_context()


def is_collective_failure(err: BaseException) -> bool:
    """True for the errors torch.distributed raises when a peer dies, times out or disconnects."""
    if isinstance(err, dist.DistError):
        return True
    if not isinstance(err, RuntimeError):
        return False
    text = str(err).lower()
    return any(k in text for k in ("gloo", "nccl", "connection closed", "connection reset", "timed out",
                                   "broken pipe", "socket"))


def rank_seed(seed: int, rank: int) -> int:
    """A seed for rank ``rank``'s own generator: distinct per rank, fixed for a given ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(rank)]).generate_state(1, np.uint64)[0] >> np.uint64(1))
