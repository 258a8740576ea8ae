"""Weighted sampling microbenchmarks: logo_fast's sampler vs the usual ways, side by side.

Providers (with replacement unless the group says otherwise):
  torch_multinomial        torch.multinomial on float32 weights (limit: 2^24 categories)
  cumsum_searchsorted      torch.cumsum every call, then torch.searchsorted
  cached_cdf_searchsorted  a CDF built once, then torch.searchsorted (cannot be updated in place)
  sumtree_numpy            a vectorised NumPy sum tree (bench/sumtree.py; TorchRL's C++ tree does
                           not load against torch 2.13, see that file), CPU only
  logo_fast                WeightedSampler: prefix blocks + Philox, C++ (CPU) or CUDA extension
  logo_fast_reference      the same sampler on its pure-PyTorch reference backend

Groups: sample (unchanged weights), sample_without_replacement, append (k new items into a full
ring of N, i.e. the oldest k replaced), append_then_sample (append k, then draw 256).

Default sizes are tiny so ``pytest bench/ --benchmark-disable`` is a quick smoke test. The full
grid (N = 1e5, 1e6, 1e7, plus 1e8 with a GPU; draws 256, 4096, 65536; k = 1e5):

    LOGO_FAST_BENCH_FULL=1 pytest bench/test_bench_sampler.py --benchmark-enable \\
        --benchmark-json bench/results/sampler_cpu.json

``python bench/plot_sampler.py bench/results/sampler_cpu.json`` prints the ratios and draws a PNG.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from sumtree import NumpySumTree  # noqa: E402

from logo_fast.sampler import WeightedSampler  # noqa: E402

FULL = os.environ.get("LOGO_FAST_BENCH_FULL", "0") == "1"
DEVICE = "cuda" if torch.cuda.is_available() and os.environ.get("LOGO_FAST_BENCH_DEVICE", "auto") != "cpu" else "cpu"
if FULL:
    SIZES = [100_000, 1_000_000, 10_000_000] + ([100_000_000] if DEVICE == "cuda" else [])
    DRAWS = [256, 4096, 65_536]
else:
    SIZES = [100_000]
    DRAWS = [256]
APPEND = 100_000 if FULL else 10_000
MULTINOMIAL_MAX = 2**24


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


@functools.cache
def _state(N: int) -> dict:
    """Every provider's structure for N weights, built once per size."""
    g = torch.Generator().manual_seed(N)
    w = torch.rand(N, generator=g, dtype=torch.float64).to(DEVICE)
    sampler = WeightedSampler(N, device=DEVICE)
    sampler.extend(w)
    state = {"w64": w, "w32": w.float(), "cdf": torch.cumsum(w, 0), "sampler": sampler}
    if DEVICE == "cpu":
        tree = NumpySumTree(N)
        tree.build(w.numpy())
        state["tree"] = tree
    return state


def _info(benchmark, group: str, provider: str, N: int, draws: int | None = None) -> None:
    benchmark.group = f"{group} N={N:.0e}" + (f" draws={draws}" if draws else "")
    benchmark.extra_info.update({
        "group": group, "provider": provider, "N": N, "draws": draws, "device": DEVICE,
        "torch_threads": torch.get_num_threads(), "append": APPEND if group.startswith("append") else None,
    })


def _sampler_fn(provider: str, st: dict, draws: int, replacement: bool = True):
    N = st["w64"].numel()
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    if provider == "torch_multinomial":
        if N > MULTINOMIAL_MAX:
            pytest.skip("torch.multinomial supports at most 2^24 categories")
        return lambda: torch.multinomial(st["w32"], draws, replacement=replacement, generator=gen)
    if provider == "cumsum_searchsorted":
        def fn():
            cdf = torch.cumsum(st["w64"], 0)
            u = torch.rand(draws, dtype=torch.float64, device=DEVICE, generator=gen) * cdf[-1]
            return torch.searchsorted(cdf, u, right=True).clamp_(max=N - 1)
        return fn
    if provider == "cached_cdf_searchsorted":
        cdf = st["cdf"]
        return lambda: torch.searchsorted(
            cdf, torch.rand(draws, dtype=torch.float64, device=DEVICE, generator=gen) * cdf[-1], right=True
        ).clamp_(max=N - 1)
    if provider == "sumtree_numpy":
        if DEVICE != "cpu":
            pytest.skip("the NumPy sum tree runs on CPU only")
        rng = np.random.default_rng(0)
        return lambda: st["tree"].sample(draws, rng)
    if provider in ("logo_fast", "logo_fast_reference"):
        cpu_gen = torch.Generator().manual_seed(0)
        return lambda: st["sampler"].sample(draws, replacement=replacement, generator=cpu_gen)
    raise ValueError(provider)


SAMPLE_PROVIDERS = ["torch_multinomial", "cumsum_searchsorted", "cached_cdf_searchsorted", "sumtree_numpy",
                    "logo_fast", "logo_fast_reference"]


@pytest.mark.parametrize("draws", DRAWS)
@pytest.mark.parametrize("N", SIZES)
@pytest.mark.parametrize("provider", SAMPLE_PROVIDERS)
def test_sample(benchmark, monkeypatch, provider, N, draws):
    if provider == "logo_fast_reference":
        if draws > 4096 or N > 10_000_000:
            pytest.skip("the reference backend is timed on the smaller cases only")
        monkeypatch.setenv("LOGO_FAST_BACKEND", "torch")
    st = _state(N)
    fn = _sampler_fn(provider, st, draws)
    _info(benchmark, "sample", provider, N, draws)

    def run():
        out = fn()
        _sync()
        return out

    out = benchmark(run)
    idx = torch.as_tensor(out)
    assert idx.numel() == draws and int(idx.min()) >= 0 and int(idx.max()) < N


@pytest.mark.parametrize("draws", DRAWS)
@pytest.mark.parametrize("N", SIZES)
@pytest.mark.parametrize("provider", ["torch_multinomial", "logo_fast"])
def test_sample_without_replacement(benchmark, provider, N, draws):
    st = _state(N)
    fn = _sampler_fn(provider, st, draws, replacement=False)
    _info(benchmark, "sample_without_replacement", provider, N, draws)

    def run():
        out = fn()
        _sync()
        return out

    out = benchmark(run)
    assert torch.as_tensor(out).unique().numel() == draws


def _append_fn(provider: str, st: dict, k: int, then_draw: int = 0):
    """A callable that writes k new weights over the oldest k slots of a full buffer (and draws)."""
    N = st["w64"].numel()
    g = torch.Generator().manual_seed(1)
    new = torch.rand(k, generator=g, dtype=torch.float64).to(DEVICE)
    pos = {"next": 0}
    gen = torch.Generator(device=DEVICE).manual_seed(0)

    def ring_slots():
        start = pos["next"]
        pos["next"] = (start + k) % N
        return torch.arange(start, start + k, device=DEVICE) % N

    if provider == "logo_fast":
        sampler = WeightedSampler(N, device=DEVICE)
        sampler.extend(st["w64"])
        cpu_gen = torch.Generator().manual_seed(0)

        def fn():
            sampler.extend(new)
            return sampler.sample(then_draw, generator=cpu_gen) if then_draw else None
        return fn
    if provider == "logo_fast_full_rebuild":
        sampler = WeightedSampler(N, device=DEVICE)
        sampler.extend(st["w64"])
        return lambda: sampler._rebuild(None)
    if provider in ("torch_cumsum_rebuild", "cumsum_searchsorted"):
        w = st["w64"].clone()

        def fn():
            w[ring_slots()] = new
            cdf = torch.cumsum(w, 0)
            if then_draw:
                u = torch.rand(then_draw, dtype=torch.float64, device=DEVICE, generator=gen) * cdf[-1]
                return torch.searchsorted(cdf, u, right=True).clamp_(max=N - 1)
            return cdf
        return fn
    if provider == "torch_multinomial":
        if N > MULTINOMIAL_MAX:
            pytest.skip("torch.multinomial supports at most 2^24 categories")
        w = st["w32"].clone()
        new32 = new.float()

        def fn():
            w[ring_slots()] = new32
            return torch.multinomial(w, then_draw, replacement=True, generator=gen)
        return fn
    if provider in ("sumtree_update", "sumtree_numpy"):
        if DEVICE != "cpu":
            pytest.skip("the NumPy sum tree runs on CPU only")
        tree = NumpySumTree(N)
        tree.build(st["w64"].numpy())
        new_np = new.numpy()
        rng = np.random.default_rng(0)

        def fn():
            tree.update(ring_slots().numpy(), new_np)
            return tree.sample(then_draw, rng) if then_draw else None
        return fn
    raise ValueError(provider)


@pytest.mark.parametrize("N", SIZES)
@pytest.mark.parametrize("provider", ["logo_fast", "logo_fast_full_rebuild", "torch_cumsum_rebuild",
                                      "sumtree_update"])
def test_append(benchmark, provider, N):
    fn = _append_fn(provider, _state(N), APPEND)
    _info(benchmark, "append", provider, N)

    def run():
        fn()
        _sync()

    benchmark(run)


@pytest.mark.parametrize("N", SIZES)
@pytest.mark.parametrize("provider", ["torch_multinomial", "cumsum_searchsorted", "sumtree_numpy", "logo_fast"])
def test_append_then_sample(benchmark, provider, N):
    fn = _append_fn(provider, _state(N), APPEND, then_draw=256)
    _info(benchmark, "append_then_sample", provider, N, 256)

    def run():
        out = fn()
        _sync()
        return out

    out = benchmark(run)
    idx = torch.as_tensor(out)
    assert idx.numel() == 256 and int(idx.max()) < N
