"""WeightedSampler: the incremental FIFO ring of weights behind the replay."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

import logo_fast
from logo_fast.sampler import WeightedSampler

P_MIN = 1e-4
BACKENDS = ["auto", "torch"]


def _pvalue(idx: torch.Tensor, weights: torch.Tensor) -> float:
    """Chi-square p-value of drawn slots vs weights (slots with expected < 5 pooled)."""
    w = weights.numpy()
    counts = np.bincount(idx.numpy(), minlength=w.size).astype(float)
    expected = w / w.sum() * counts.sum()
    big = expected >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    keep = exp > 0
    return float(stats.chisquare(obs[keep], exp[keep]).pvalue)


def _fresh_structure(weights: torch.Tensor, capacity: int) -> WeightedSampler:
    s = WeightedSampler(capacity)
    s.extend(weights)
    return s


def test_public_names_are_exported():
    assert logo_fast.WeightedSampler is WeightedSampler
    assert callable(logo_fast.weighted_sample)


@pytest.mark.parametrize("backend", BACKENDS)
def test_extend_sample_probabilities(backend, monkeypatch):
    monkeypatch.setenv("LOGO_FAST_BACKEND", backend)
    s = WeightedSampler(5000)
    w = torch.rand(2500, dtype=torch.float64)
    pos = s.extend(w)
    assert torch.equal(pos, torch.arange(2500))
    assert len(s) == 2500 and s.next_position == 2500
    assert s.total() == pytest.approx(float(w.sum()), rel=1e-12)
    probs = s.probabilities(torch.tensor([0, 10, 2499, 4000]))
    assert torch.allclose(probs[:3], w[[0, 10, 2499]] / w.sum(), rtol=1e-12) and probs[3] == 0
    idx = s.sample(100_000, generator=torch.Generator().manual_seed(0))
    assert int(idx.max()) < 2500  # empty slots are never drawn
    assert _pvalue(idx, w) > P_MIN


@pytest.mark.parametrize("backend", BACKENDS)
def test_ring_wraps_fifo(backend, monkeypatch):
    monkeypatch.setenv("LOGO_FAST_BACKEND", backend)
    cap = 3000
    s = WeightedSampler(cap)
    first = torch.rand(2000, dtype=torch.float64)
    second = torch.rand(1800, dtype=torch.float64) + 1.0
    s.extend(first)
    pos = s.extend(second)  # 1000 fill the tail, 800 overwrite the oldest slots 0..799
    assert torch.equal(pos, torch.cat([torch.arange(2000, 3000), torch.arange(0, 800)]))
    assert len(s) == cap and s.next_position == 800
    expected = torch.cat([second[1000:], first[800:], second[:1000]])
    assert torch.equal(s.weights(), expected)
    assert _pvalue(s.sample(100_000), expected) > P_MIN


def test_extend_longer_than_capacity_keeps_the_last_items():
    s = WeightedSampler(100)
    s.extend(torch.ones(30))
    w = torch.arange(1, 251, dtype=torch.float64)
    pos = s.extend(w)
    assert pos.numel() == 100
    # 30 + 250 items: the newest 100 are items 150..249 of w, starting at slot (30 + 150) % 100
    assert torch.equal(s.weights()[pos], w[150:])
    assert s.next_position == (30 + 250) % 100
    assert s.total() == pytest.approx(float(w[150:].sum()))


@pytest.mark.parametrize("backend", BACKENDS)
def test_update_changes_the_law(backend, monkeypatch):
    monkeypatch.setenv("LOGO_FAST_BACKEND", backend)
    s = WeightedSampler(4096)
    w = torch.rand(4096, dtype=torch.float64)
    s.extend(w)
    idx = torch.tensor([0, 5, 1024, 2047, 4095, 5, 0])
    new = torch.tensor([0.0, 2.0, 3.0, 0.0, 4.0, 7.0, 9.0], dtype=torch.float64)
    s.update(idx, new)
    w2 = w.clone()
    w2[[5, 1024, 2047, 4095, 0]] = torch.tensor([7.0, 3.0, 0.0, 4.0, 9.0], dtype=torch.float64)  # last wins
    assert torch.equal(s.weights(), w2)
    draws = s.sample(100_000, generator=torch.Generator().manual_seed(1))
    assert not bool((draws == 2047).any())
    assert _pvalue(draws, w2) > P_MIN


@pytest.mark.parametrize("backend", BACKENDS)
def test_incremental_structure_is_a_full_rebuild(backend, monkeypatch):
    """Every sequence of extends and updates draws exactly what a fresh build of the same weights draws."""
    monkeypatch.setenv("LOGO_FAST_BACKEND", backend)
    g = torch.Generator().manual_seed(3)
    cap = 5 * 512 + 300
    s = WeightedSampler(cap)
    for step in range(12):
        s.extend(torch.rand(int(torch.randint(1, 3000, (1,), generator=g)), generator=g, dtype=torch.float64))
        if step % 3 == 2:
            k = 50
            s.update(torch.randint(0, len(s), (k,), generator=g), torch.rand(k, generator=g, dtype=torch.float64))
    fresh = WeightedSampler(cap)
    fresh.load_state_dict(s.state_dict())  # one full build
    assert s.total() == fresh.total()
    for repl in (True, False):
        gen = [torch.Generator().manual_seed(9) for _ in range(2)]
        assert torch.equal(s.sample(1000, replacement=repl, generator=gen[0]),
                           fresh.sample(1000, replacement=repl, generator=gen[1]))


def test_cpp_and_torch_backends_draw_the_same(monkeypatch):
    w = torch.rand(7000, dtype=torch.float64) ** 2
    out = {}
    for backend in BACKENDS:
        monkeypatch.setenv("LOGO_FAST_BACKEND", backend)
        s = WeightedSampler(8192)
        s.extend(w[:5000])
        s.extend(w[5000:])
        s.update(torch.tensor([3, 4000]), torch.tensor([0.0, 9.0]))
        out[backend] = (
            s.sample(3000, generator=torch.Generator().manual_seed(4)),
            s.sample(700, replacement=False, generator=torch.Generator().manual_seed(4)),
        )
    assert torch.equal(out["auto"][0], out["torch"][0])
    assert torch.equal(out["auto"][1], out["torch"][1])


def test_without_replacement_distinct_positive_slots():
    s = WeightedSampler(300)
    w = torch.rand(250, dtype=torch.float64)
    w[::2] = 0.0
    s.extend(w)
    idx = s.sample(125, replacement=False)
    assert idx.unique().numel() == 125 and not bool((w[idx] == 0).any())
    with pytest.raises(ValueError, match="cannot draw 126 without replacement from 125"):
        s.sample(126, replacement=False)


def test_state_dict_round_trip_reproduces_draws():
    s = WeightedSampler(2000)
    s.extend(torch.rand(2500, dtype=torch.float64))
    s.update(torch.tensor([7]), torch.tensor([100.0]))
    state = s.state_dict()
    t = WeightedSampler(2000)
    t.load_state_dict(state)
    assert len(t) == len(s) and t.next_position == s.next_position and t.total() == s.total()
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(s.sample(500, generator=g1), t.sample(500, generator=g2))
    t.extend(torch.ones(10))
    s.extend(torch.ones(10))
    assert torch.equal(s.weights(), t.weights())


def test_bad_input():
    with pytest.raises(ValueError, match="capacity must be an int >= 1"):
        WeightedSampler(0)
    with pytest.raises(ValueError, match="device"):
        WeightedSampler(10, device="tpu")
    s = WeightedSampler(10)
    with pytest.raises(ValueError, match="empty"):
        s.sample(3)
    with pytest.raises(ValueError) as err:
        s.extend(torch.tensor([1.0, float("nan"), -1.0]))
    assert "NaN/Inf" in str(err.value) and "negative" in str(err.value)
    with pytest.raises(ValueError, match="1-D"):
        s.extend(torch.ones(2, 2))
    s.extend(torch.zeros(4))
    with pytest.raises(ValueError, match="all weights are zero"):
        s.sample(1)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        s.update(torch.tensor([4]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="differ in length"):
        s.update(torch.tensor([0, 1]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="integer"):
        s.update(torch.tensor([0.0]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="n must be >= 0"):
        s.sample(-2)
    with pytest.raises(ValueError, match="capacity"):
        WeightedSampler(11).load_state_dict(s.state_dict())
    bad = s.state_dict()
    bad["weights"] = torch.tensor([1.0, -1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="negative"):
        WeightedSampler(10).load_state_dict(bad)
    with pytest.raises(ValueError, match="probabilities are undefined"):
        s.probabilities(torch.tensor([0]))
    s.update(torch.tensor([1]), torch.tensor([2.0]))
    assert torch.equal(s.sample(5), torch.ones(5, dtype=torch.int64))


@pytest.mark.gpu
@pytest.mark.parametrize("integer", [True, False])
def test_cuda_sampler_matches_cpu_bit_for_bit(integer):
    """The CUDA tree sums every node in the CPU's order: same totals and draws, float weights too."""
    gpu = WeightedSampler(6000, device="cuda")
    assert gpu.backend() == "cuda", "the CUDA path did not run (extension built without CUDA?)"
    w = torch.randint(0, 20, (9000,)).double() if integer else torch.rand(9000, dtype=torch.float64) ** 3
    w[0] = 1.0
    cpu = WeightedSampler(6000)
    for s in (cpu, gpu):
        s.extend(w[:4000])
        s.extend(w[4000:])  # wraps
        s.update(torch.tensor([1, 2, 3, 2]), torch.tensor([5.0, 0.0, 7.0, 0.25]))
    assert cpu.total() == gpu.total()
    assert torch.equal(cpu.weights(), gpu.weights().cpu())
    for repl in (True, False):
        a = cpu.sample(2000, replacement=repl, generator=torch.Generator().manual_seed(3))
        b = gpu.sample(2000, replacement=repl, generator=torch.Generator().manual_seed(3))
        assert b.is_cuda and torch.equal(a, b.cpu())
    with pytest.raises(ValueError, match="overflow"):
        gpu.update(torch.tensor([5, 6]), torch.tensor([1e308, 1e308], dtype=torch.float64))
    assert cpu.total() == gpu.total()  # the rejected update was undone
