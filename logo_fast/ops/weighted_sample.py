"""``logo_fast::weighted_sample`` and the prefix-block ops behind ``WeightedSampler``.

Three custom ops (torch.library), each with a fake implementation so torch.compile can trace
them; each runs on the backend chosen by ``logo_fast.backend.choose_backend("weighted_sample", ...)``:
``extension`` (the C++ path, CPU tensors), ``cuda`` (the CUDA path, CUDA tensors) or ``torch``
(the reference, any device).

    logo_fast::weighted_sample(weights, offsets, n, replacement, seed, offset) -> (S, n) int64
        one shot: build the structure of every segment and draw n indices per segment
    logo_fast::prefix_blocks_build(weights, offsets, blocks, local!, block_total!, block_cum!)
        rebuild the listed blocks (an empty ``blocks`` means all) and the prefix over blocks
    logo_fast::prefix_blocks_sample(weights, offsets, local, block_cum, n, replacement, seed, offset)
        draw from a built structure -> (S, n) int64

Arguments: ``weights`` (N,) float64 on the sampling device; ``offsets`` (S + 1,) int64 on the CPU
(segment s is ``weights[offsets[s]:offsets[s + 1]]``); ``blocks`` (k,) int64 on the sampling device;
``local`` (N,), ``block_total`` (n_blocks,), ``block_cum`` (n_blocks + S,) float64 on the sampling
device (``block_layout(offsets)`` gives n_blocks); seeds and offsets are int64 >= 0. Indices are
local to each segment. These are the low-level ops: the checked public entry points are
``logo_fast.weighted_sample`` and ``logo_fast.WeightedSampler`` (logo_fast/sampler.py).
"""

from __future__ import annotations

import torch

from ..backend import choose_backend, extension
from ..reference.weighted_sample import (
    block_layout,
    build_prefix_blocks,
    sample_prefix_blocks,
    weighted_sample_reference,
)

IMPLS = ("torch", "extension", "cuda")


def _backend(device: torch.device) -> str:
    return choose_backend("weighted_sample", device, IMPLS)


def _stream_args(t: torch.Tensor) -> tuple[int, int]:
    index = t.device.index if t.device.index is not None else torch.cuda.current_device()
    return index, torch.cuda.current_stream(index).cuda_stream


def _check_low_level(weights: torch.Tensor, offsets: torch.Tensor, **buffers: torch.Tensor) -> None:
    """Cheap structural checks (dtype, device, contiguity, sizes) before raw pointers leave Python."""
    problems = []
    if weights.dtype != torch.float64 or weights.dim() != 1:
        problems.append(f"weights must be 1-D float64, got {tuple(weights.shape)} {weights.dtype}")
    if offsets.dtype != torch.int64 or offsets.dim() != 1 or offsets.numel() < 2:
        problems.append(f"offsets must be 1-D int64 with >= 2 entries, got {tuple(offsets.shape)} {offsets.dtype}")
    if offsets.device.type != "cpu":
        problems.append(f"offsets must be on the CPU, got {offsets.device}")
    for name, t in (("weights", weights), ("offsets", offsets), *buffers.items()):
        if not t.is_contiguous():
            problems.append(f"{name} must be contiguous")
    for name, t in buffers.items():
        if t.device != weights.device:
            problems.append(f"{name} is on {t.device}, weights on {weights.device}")
        expected = torch.int64 if name == "blocks" else torch.float64
        if t.dtype != expected:
            problems.append(f"{name} must be {expected}, got {t.dtype}")
    if not problems and offsets.numel() >= 2:
        _, n_blocks = block_layout(offsets)
        S = offsets.numel() - 1
        want = {"local": weights.numel(), "block_total": n_blocks, "block_cum": n_blocks + S}
        for name, size in want.items():
            if name in buffers and buffers[name].numel() != size:
                problems.append(f"{name} must have {size} entries, got {buffers[name].numel()}")
    if problems:
        raise ValueError("weighted_sample: bad input:\n  - " + "\n  - ".join(problems))


def build_impl(weights, offsets, blocks, local, block_total, block_cum) -> None:
    """The body of prefix_blocks_build without its checks or dispatch (callers own valid buffers)."""
    backend = _backend(weights.device)
    if backend == "torch":
        build_prefix_blocks(weights, offsets, local, block_total, block_cum, blocks)
        return
    ext = extension()
    S = offsets.numel() - 1
    n_blocks = block_total.numel()
    blocks_ptr, n_listed = (0, 0) if blocks is None else (blocks.data_ptr(), blocks.numel())
    if blocks is not None and n_listed == 0:
        return  # nothing changed
    args = (weights.data_ptr(), weights.numel(), offsets.data_ptr(), S, blocks_ptr, n_listed, local.data_ptr(),
            block_total.data_ptr(), block_cum.data_ptr(), n_blocks)
    if backend == "extension":
        ext.build_cpu(*args, torch.get_num_threads())
    else:
        ext.build_cuda(*args, *_stream_args(weights))


def sample_impl(weights, offsets, local, block_cum, n, replacement, seed, offset) -> torch.Tensor:
    """The body of prefix_blocks_sample without its checks or dispatch (callers own valid buffers)."""
    backend = _backend(weights.device)
    if backend == "torch":
        return sample_prefix_blocks(weights, offsets, local, block_cum, n, replacement, seed, offset)
    ext = extension()
    S = offsets.numel() - 1
    n_blocks = block_cum.numel() - S
    out = torch.empty((S, n), dtype=torch.int64, device=weights.device)
    args = (weights.data_ptr(), weights.numel(), offsets.data_ptr(), S, local.data_ptr(), block_cum.data_ptr(),
            n_blocks, n, bool(replacement), int(seed), int(offset), out.data_ptr())
    if backend == "extension":
        ext.sample_cpu(*args, torch.get_num_threads())
    else:
        ext.sample_cuda(*args, *_stream_args(weights))
    return out


@torch.library.custom_op("logo_fast::prefix_blocks_build", mutates_args=("local", "block_total", "block_cum"))
def prefix_blocks_build(
    weights: torch.Tensor,
    offsets: torch.Tensor,
    blocks: torch.Tensor,
    local: torch.Tensor,
    block_total: torch.Tensor,
    block_cum: torch.Tensor,
) -> None:
    """Rebuild the prefix blocks listed in ``blocks`` (all when ``blocks`` is empty) in place."""
    _check_low_level(weights, offsets, blocks=blocks, local=local, block_total=block_total, block_cum=block_cum)
    build_impl(weights, offsets, blocks if blocks.numel() else None, local, block_total, block_cum)


@prefix_blocks_build.register_fake
def _(weights, offsets, blocks, local, block_total, block_cum) -> None:
    return None


@torch.library.custom_op("logo_fast::prefix_blocks_sample", mutates_args=())
def prefix_blocks_sample(
    weights: torch.Tensor,
    offsets: torch.Tensor,
    local: torch.Tensor,
    block_cum: torch.Tensor,
    n: int,
    replacement: bool,
    seed: int,
    offset: int = 0,
) -> torch.Tensor:
    """Draw ``n`` indices per segment from a built structure -> (S, n) int64, local to each segment."""
    _check_low_level(weights, offsets, local=local, block_cum=block_cum)
    return sample_impl(weights, offsets, local, block_cum, n, replacement, seed, offset)


@prefix_blocks_sample.register_fake
def _(weights, offsets, local, block_cum, n, replacement, seed, offset=0):
    return weights.new_empty((offsets.shape[0] - 1, n), dtype=torch.int64)


@torch.library.custom_op("logo_fast::weighted_sample", mutates_args=())
def weighted_sample_op(
    weights: torch.Tensor, offsets: torch.Tensor, n: int, replacement: bool, seed: int, offset: int = 0
) -> torch.Tensor:
    """One shot: draw ``n`` indices per segment of ``weights`` cut by ``offsets`` -> (S, n) int64."""
    _check_low_level(weights, offsets)
    if _backend(weights.device) == "torch":
        return weighted_sample_reference(weights, offsets, n, replacement, seed, offset)
    _, n_blocks = block_layout(offsets)
    S = offsets.numel() - 1
    local = torch.empty_like(weights)
    block_total = torch.empty(n_blocks, dtype=torch.float64, device=weights.device)
    block_cum = torch.empty(n_blocks + S, dtype=torch.float64, device=weights.device)
    build_impl(weights, offsets, None, local, block_total, block_cum)
    return sample_impl(weights, offsets, local, block_cum, n, replacement, seed, offset)


@weighted_sample_op.register_fake
def _(weights, offsets, n, replacement, seed, offset=0):
    return weights.new_empty((offsets.shape[0] - 1, n), dtype=torch.int64)
