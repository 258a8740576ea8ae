"""Weighted sampling microbenchmarks: logo_fast's sampler vs the usual ways, side by side, public calls only.

Providers (with replacement unless the group says otherwise):
  torch_multinomial        torch.multinomial on float32 weights (limit: 2^24 categories)
  cumsum_searchsorted      torch.cumsum every call, then torch.searchsorted
  cached_cdf_searchsorted  a CDF built once, then torch.searchsorted (cannot be updated in place)
  sumtree_numpy            a vectorised NumPy sum tree (bench/sumtree.py), CPU only
  cpprb                    cpprb's PrioritizedReplayBuffer (a compiled C++ segment tree; alpha = 1 so
                           priority = weight; its sample() also computes importance weights and gathers
                           a 1-byte observation per draw: that is its public draw). Optional: the `bench`
                           extra (pip install cpprb); skipped with the reason when missing
  torchrl                  TorchRL's C++ SumSegmentTreeFp64 (what its PrioritizedSampler uses), when it
                           loads against the installed torch (torchrl 0.14.1 does not load against torch
                           2.13: undefined symbol in torchrl/_torchrl*.so); skipped with the reason
  logo_fast                WeightedSampler: 8-ary prefix tree + Philox, C++ (CPU) or CUDA extension
  logo_fast_reference      the same sampler on its pure-PyTorch reference backend

Groups: sample (unchanged weights), sample_without_replacement, update_hot (the same 256 scattered
indices every call, new values each time: their tree paths stay in cache), update_cold (256 fresh
random indices and values every call, rotating over 64 sets), append (k new items into a full ring
of N, i.e. the oldest k replaced), fill (all N weights written into a full structure: a full
rebuild through public calls), append_then_sample (append k, then draw 256).

Benchmarks run single-threaded (torch.set_num_threads(1) per test, restored after). Default sizes are
tiny so ``pytest bench/ --benchmark-disable`` is a quick smoke test. The measured grid (N = 1e6, 1e7;
draws 256, 4096; k = 1e5):

    OMP_NUM_THREADS=1 LOGO_FAST_BENCH=1 pytest bench/test_bench_sampler.py --benchmark-enable \\
        --benchmark-json bench/results/sampler_cpu.json

``LOGO_FAST_BENCH_FULL=1`` adds N = 1e8 and 65,536 draws (several GB of memory).
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
GRID = FULL or os.environ.get("LOGO_FAST_BENCH", "0") == "1"
DEVICE = "cuda" if torch.cuda.is_available() and os.environ.get("LOGO_FAST_BENCH_DEVICE", "auto") != "cpu" else "cpu"
if GRID:
    SIZES = [1_000_000, 10_000_000] + ([100_000_000] if FULL else [])
    DRAWS = [256, 4096] + ([65_536] if FULL else [])
else:
    SIZES = [100_000]
    DRAWS = [256]
APPEND = 100_000 if GRID else 10_000
UPDATE = 256
MULTINOMIAL_MAX = 2**24


@pytest.fixture(autouse=True)
def _single_thread():
    """Every provider measured on one thread (the comparators are single-threaded)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


@functools.cache
def _cpprb():
    try:
        import cpprb
    except ImportError as err:
        return None, f"cpprb not installed ({err}); pip install 'logo_fast[bench]'"
    return cpprb, ""


@functools.cache
def _torchrl_tree():
    try:
        from torchrl._torchrl import SumSegmentTreeFp64
    except Exception as err:  # noqa: BLE001 - any load failure is the skip reason
        return None, f"TorchRL's segment tree does not load here ({type(err).__name__}: {str(err)[:160]})"
    return SumSegmentTreeFp64, ""


def _need_cpu(provider: str) -> None:
    if DEVICE != "cpu":
        pytest.skip(f"{provider} runs on CPU only")


@functools.cache
def _state(N: int) -> dict:
    """Every provider's structure for N weights, built once per size."""
    g = torch.Generator().manual_seed(N)
    w = torch.rand(N, generator=g, dtype=torch.float64).to(DEVICE)
    sampler = WeightedSampler(N, device=DEVICE)
    sampler.extend(w)
    return {"w64": w, "w32": w.float(), "cdf": torch.cumsum(w, 0), "sampler": sampler}


@functools.cache
def _tree(N: int) -> NumpySumTree:
    tree = NumpySumTree(N)
    tree.build(_state(N)["w64"].cpu().numpy())
    return tree


@functools.cache
def _cpprb_buffer(N: int):
    cpprb, why = _cpprb()
    if cpprb is None:
        pytest.skip(why)
    rb = cpprb.PrioritizedReplayBuffer(N, {"obs": {"shape": 1, "dtype": np.uint8}}, alpha=1.0)
    rb.add(obs=np.zeros((N, 1), np.uint8), priorities=_state(N)["w64"].cpu().numpy())
    return rb


@functools.cache
def _torchrl_buffer(N: int):
    tree_cls, why = _torchrl_tree()
    if tree_cls is None:
        pytest.skip(why)
    tree = tree_cls(N)
    w = _state(N)["w64"].cpu()
    tree[torch.arange(N)] = w
    return tree


def _info(benchmark, group: str, provider: str, N: int, draws: int | None = None) -> None:
    benchmark.group = f"{group} N={N:.0e}" + (f" draws={draws}" if draws else "")
    benchmark.extra_info.update({
        "group": group, "provider": provider, "N": N, "draws": draws, "device": DEVICE,
        "torch_threads": torch.get_num_threads(),
        "append": APPEND if group.startswith("append") else None,
        "update": UPDATE if group.startswith("update") else None,
    })


def _sampler_fn(provider: str, N: int, draws: int, replacement: bool = True):
    st = _state(N)
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
        _need_cpu(provider)
        tree, rng = _tree(N), np.random.default_rng(0)
        return lambda: tree.sample(draws, rng)
    if provider == "cpprb":
        _need_cpu(provider)
        rb = _cpprb_buffer(N)
        return lambda: rb.sample(draws, beta=0.4)["indexes"].astype(np.int64)
    if provider == "torchrl":
        _need_cpu(provider)
        tree = _torchrl_buffer(N)
        total = tree.query(0, N)
        rng = torch.Generator().manual_seed(0)
        return lambda: tree.scan_lower_bound(torch.rand(draws, generator=rng, dtype=torch.float64) * total)
    if provider in ("logo_fast", "logo_fast_reference"):
        cpu_gen = torch.Generator().manual_seed(0)
        return lambda: st["sampler"].sample(draws, replacement=replacement, generator=cpu_gen)
    raise ValueError(provider)


SAMPLE_PROVIDERS = ["torch_multinomial", "cumsum_searchsorted", "cached_cdf_searchsorted", "sumtree_numpy", "cpprb",
                    "torchrl", "logo_fast", "logo_fast_reference"]


def _run(benchmark, fn):
    def run():
        out = fn()
        _sync()
        return out

    return benchmark(run)


@pytest.mark.parametrize("draws", DRAWS)
@pytest.mark.parametrize("N", SIZES)
@pytest.mark.parametrize("provider", SAMPLE_PROVIDERS)
def test_sample(benchmark, monkeypatch, provider, N, draws):
    if provider == "logo_fast_reference":
        if draws > 4096 or N > 10_000_000:
            pytest.skip("the reference backend is timed on the smaller cases only")
        monkeypatch.setenv("LOGO_FAST_BACKEND", "torch")
    fn = _sampler_fn(provider, N, draws)
    _info(benchmark, "sample", provider, N, draws)
    idx = torch.as_tensor(np.asarray(_run(benchmark, fn)))
    assert idx.numel() == draws and int(idx.min()) >= 0 and int(idx.max()) < N


@pytest.mark.parametrize("draws", DRAWS)
@pytest.mark.parametrize("N", SIZES)
@pytest.mark.parametrize("provider", ["torch_multinomial", "logo_fast"])
def test_sample_without_replacement(benchmark, provider, N, draws):
    fn = _sampler_fn(provider, N, draws, replacement=False)
    _info(benchmark, "sample_without_replacement", provider, N, draws)
    assert torch.as_tensor(_run(benchmark, fn)).unique().numel() == draws


def _update_sets(N: int, hot: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """64 (indices, values) pairs: fresh values every call; the same 256 indices (hot) or fresh ones (cold)."""
    rng = np.random.default_rng(N + hot)
    same = rng.integers(0, N, UPDATE)
    return [(same if hot else rng.integers(0, N, UPDATE), rng.random(UPDATE)) for _ in range(64)]


def _update_fn(provider: str, N: int, hot: bool):
    """A callable that sets 256 scattered priorities to new values, rotating over 64 precomputed sets."""
    sets = _update_sets(N, hot)
    turn = {"i": 0}

    def pick(items):
        i = turn["i"]
        turn["i"] = (i + 1) % len(items)
        return items[i]

    if provider == "logo_fast":
        sampler = WeightedSampler(N, device=DEVICE)
        sampler.extend(_state(N)["w64"])
        tsets = [(torch.from_numpy(i).to(DEVICE), torch.from_numpy(v).to(DEVICE)) for i, v in sets]
        return lambda: sampler.update(*pick(tsets))
    _need_cpu(provider)
    if provider == "cpprb":
        rb = _cpprb_buffer(N)
        return lambda: rb.update_priorities(*pick(sets))
    if provider == "sumtree_numpy":
        tree = _tree(N)
        return lambda: tree.update(*pick(sets))
    if provider == "torchrl":
        tree = _torchrl_buffer(N)
        tsets = [(torch.from_numpy(i), torch.from_numpy(v)) for i, v in sets]

        def fn():
            i, v = pick(tsets)
            tree[i] = v
        return fn
    raise ValueError(provider)


UPDATE_PROVIDERS = ["cpprb", "torchrl", "sumtree_numpy", "logo_fast"]


@pytest.mark.parametrize("N", SIZES)
@pytest.mark.parametrize("provider", UPDATE_PROVIDERS)
def test_update_hot(benchmark, provider, N):
    fn = _update_fn(provider, N, hot=True)
    _info(benchmark, "update_hot", provider, N)
    _run(benchmark, fn)


@pytest.mark.parametrize("N", SIZES)
@pytest.mark.parametrize("provider", UPDATE_PROVIDERS)
def test_update_cold(benchmark, provider, N):
    fn = _update_fn(provider, N, hot=False)
    _info(benchmark, "update_cold", provider, N)
    _run(benchmark, fn)


def _append_fn(provider: str, N: int, k: int, then_draw: int = 0):
    """A callable that writes k new weights over the oldest k slots of a full buffer (and draws)."""
    st = _state(N)
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
    _need_cpu(provider)
    if provider in ("sumtree_update", "sumtree_numpy"):
        tree = NumpySumTree(N)
        tree.build(st["w64"].numpy())
        new_np = new.numpy()
        rng = np.random.default_rng(0)

        def fn():
            tree.update(ring_slots().numpy(), new_np)
            return tree.sample(then_draw, rng) if then_draw else None
        return fn
    if provider == "cpprb":
        cpprb, why = _cpprb()
        if cpprb is None:
            pytest.skip(why)
        rb = cpprb.PrioritizedReplayBuffer(N, {"obs": {"shape": 1, "dtype": np.uint8}}, alpha=1.0)
        rb.add(obs=np.zeros((N, 1), np.uint8), priorities=st["w64"].numpy())
        obs, new_np = np.zeros((k, 1), np.uint8), new.numpy()

        def fn():
            rb.add(obs=obs, priorities=new_np)
            return rb.sample(then_draw, beta=0.4)["indexes"].astype(np.int64) if then_draw else None
        return fn
    raise ValueError(provider)


@pytest.mark.parametrize("N", SIZES)
@pytest.mark.parametrize("provider", ["logo_fast", "torch_cumsum_rebuild", "sumtree_update", "cpprb"])
def test_append(benchmark, provider, N):
    fn = _append_fn(provider, N, APPEND)
    _info(benchmark, "append", provider, N)
    _run(benchmark, fn)


@pytest.mark.parametrize("N", SIZES)
@pytest.mark.parametrize("provider", ["logo_fast", "torch_cumsum_rebuild", "sumtree_numpy", "cpprb"])
def test_fill(benchmark, provider, N):
    """All N weights written into a full structure: the cost of a full rebuild, through public calls."""
    st = _state(N)
    w = st["w64"]
    if provider == "logo_fast":
        sampler = WeightedSampler(N, device=DEVICE)
        sampler.extend(w)
        fn = lambda: sampler.extend(w)
    elif provider == "torch_cumsum_rebuild":
        fn = lambda: torch.cumsum(w, 0)
    elif provider == "sumtree_numpy":
        _need_cpu(provider)
        tree, wn = NumpySumTree(N), w.numpy()
        fn = lambda: tree.build(wn)
    else:
        _need_cpu(provider)
        rb, wn, obs = _cpprb_buffer(N), w.numpy(), np.zeros((N, 1), np.uint8)
        fn = lambda: rb.add(obs=obs, priorities=wn)
    _info(benchmark, "fill", provider, N)
    benchmark.pedantic(lambda: (fn(), _sync()), rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("N", SIZES)
@pytest.mark.parametrize("provider", ["torch_multinomial", "cumsum_searchsorted", "sumtree_numpy", "cpprb",
                                      "logo_fast"])
def test_append_then_sample(benchmark, provider, N):
    fn = _append_fn(provider, N, APPEND, then_draw=256)
    _info(benchmark, "append_then_sample", provider, N, 256)
    idx = torch.as_tensor(np.asarray(_run(benchmark, fn)))
    assert idx.numel() == 256 and int(idx.max()) < N
