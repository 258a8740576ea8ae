"""weighted_sample: Philox/log primitives, draws vs the target law, reference == extension, errors, opcheck.

One file for the op's whole contract (over 600 lines): the cases share fixtures and the reference/extension pairs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from logo_fast.backend import extension
from logo_fast.ops.weighted_sample import (
    backend_for,
    prefix_tree_build,
    prefix_tree_sample,
    prefix_tree_update,
    weighted_sample_op,
)
from logo_fast.reference import weighted_sample as ref
from logo_fast.sampler import weighted_sample
from tests.conftest import HAS_CUDA

EXT = extension()
needs_ext = pytest.mark.skipif(EXT is None, reason="logo_fast._C not built")
# Chi-square p-values below this fail. Draws are seeded, so a pass is reproducible; the bound
# is loose enough that a correct sampler passes for essentially any seed.
P_MIN = 1e-4

# Random123 tests/kat_vectors, "philox4x32 10": counter[4], key[2] -> output[4].
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


def _chisquare(counts: np.ndarray, probs: np.ndarray) -> float:
    """p-value of observed counts vs probabilities (bins with expected < 5 are merged)."""
    probs = probs / probs.sum()
    expected = probs * counts.sum()
    order = np.argsort(expected)
    obs_m, exp_m, acc_o, acc_e = [], [], 0.0, 0.0
    for i in order:  # merge the smallest bins until each has expected >= 5
        acc_o += counts[i]
        acc_e += expected[i]
        if acc_e >= 5:
            obs_m.append(acc_o)
            exp_m.append(acc_e)
            acc_o = acc_e = 0.0
    if acc_e > 0:
        obs_m[-1] += acc_o
        exp_m[-1] += acc_e
    if len(obs_m) < 2:
        return 1.0
    return float(stats.chisquare(np.array(obs_m), np.array(exp_m)).pvalue)


# ---- primitives ----------------------------------------------------------------------------
@pytest.mark.parametrize("counter,key,expected", PHILOX_KAT)
def test_philox_reference_matches_known_answers(counter, key, expected):
    c = [torch.tensor([v], dtype=torch.int64) for v in counter]
    out = ref.philox4x32_10(*c, *key)
    assert tuple(int(o) for o in out) == expected


@needs_ext
@pytest.mark.parametrize("counter,key,expected", PHILOX_KAT)
def test_philox_extension_matches_known_answers(counter, key, expected):
    assert EXT.philox4x32_10(*counter, *key) == expected


@needs_ext
def test_tree_layout_agrees():
    assert EXT.FANOUT == ref.FANOUT == 8
    for n in [0, 1, 7, 8, 9, 63, 64, 65, 511, 512, 513, 4097, 10**6, 2**24 + 1, 2**40 + 3]:
        p_off, t_off, size = ref.segment_levels(n)
        assert EXT.tree_size(n) == size, n
        assert len(p_off) == max(1, math.ceil(math.log(max(n, 1), 8) - 1e-12)), n  # ceil(log8 n) levels


@needs_ext
def test_portable_log_is_accurate_and_identical_to_the_reference():
    g = torch.Generator().manual_seed(1)
    x = torch.cat([
        torch.rand(2000, generator=g, dtype=torch.float64),
        torch.tensor([2.0**-53, 2.0**-1022, 0.5, 1.0 - 2.0**-53, 1.0, math.sqrt(2) / 2, 3.0, 1e300],
                     dtype=torch.float64),
    ]).clamp_min(2.0**-1022)
    got_ref = ref.portable_log(x)
    got_ext = torch.tensor([EXT.portable_log(float(v)) for v in x], dtype=torch.float64)
    assert torch.equal(got_ref, got_ext)  # bit for bit: the CPU/GPU parity relies on it
    exact = torch.tensor([math.log(float(v)) for v in x], dtype=torch.float64)
    ulp = torch.tensor([math.ulp(abs(float(v))) if v != 0 else 5e-324 for v in exact], dtype=torch.float64)
    assert float(((got_ref - exact).abs() / ulp).max()) <= 4.0
    assert float(got_ref[-4]) == 0.0  # log(1)


@needs_ext
def test_uniform_and_keys_identical_to_the_reference():
    seed = 0x1234_5678_9ABC
    counter = torch.tensor([0, 1, 2, 3, 2**32 - 1, 2**32, 2**40 + 7], dtype=torch.int64)
    stream = torch.tensor([0, 5, 2**32 - 1, 1, 0, 3, 9], dtype=torch.int64)
    u_ref = ref.uniform_draws(seed, counter, stream)
    u_ext = [EXT.uniform_draw(seed, int(c), int(s)) for c, s in zip(counter, stream, strict=True)]
    assert u_ref.tolist() == u_ext
    assert bool(((u_ref >= 0) & (u_ref < 1)).all())
    w = torch.tensor([0.5, 1.0, 3.0, 1e-300, 2.0, 7.0, 1e5], dtype=torch.float64)
    k_ref = ref.exponential_keys(seed, counter, stream, w)
    k_ext = [EXT.exponential_key(seed, int(c), int(s), float(x)) for c, s, x in zip(counter, stream, w, strict=True)]
    assert k_ref.tolist() == k_ext


def test_uniform_draws_look_uniform():
    u = ref.uniform_draws(7, torch.arange(100_000), torch.zeros(100_000, dtype=torch.int64))
    assert stats.kstest(u.numpy(), "uniform").pvalue > P_MIN
    e = -ref.portable_log(1.0 - u)  # 1 - U in (0, 1]
    assert stats.kstest(e.numpy(), "expon").pvalue > P_MIN
    keys = ref.exponential_keys(7, torch.arange(100_001), torch.zeros(100_001, dtype=torch.int64),
                                torch.full((100_001,), 2.0, dtype=torch.float64))
    assert stats.kstest(keys.numpy(), "expon", args=(0, 0.5)).pvalue > P_MIN  # Exp(rate w = 2)


# ---- draws follow the target law ------------------------------------------------------------
def _cases():
    g = torch.Generator().manual_seed(3)
    peaked = torch.full((50,), 1.0, dtype=torch.float64)
    peaked[17] = 49.0  # half of the mass on one item
    zeros = torch.rand(200, generator=g, dtype=torch.float64)
    zeros[::2] = 0.0
    return {
        "uniform": torch.ones(100, dtype=torch.float64),
        "peaked": peaked,
        "with_zeros": zeros,
        "one_item": torch.tensor([0.3], dtype=torch.float64),
        "across_blocks": torch.rand(3 * 512 + 77, generator=g, dtype=torch.float64) ** 3,
        "tiny_and_huge": torch.tensor([1e-12, 1.0, 1e12, 0.0, 5.0], dtype=torch.float64),
    }


@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("case", list(_cases()))
def test_with_replacement_chisquare(case, backend, monkeypatch):
    monkeypatch.setenv("LOGO_FAST_BACKEND", backend)
    w = _cases()[case]
    n = 100_000
    idx = weighted_sample(w, n, generator=torch.Generator().manual_seed(11))
    assert idx.shape == (n,) and idx.dtype == torch.int64
    assert int(idx.min()) >= 0 and int(idx.max()) < w.numel()
    counts = np.bincount(idx.numpy(), minlength=w.numel())
    assert counts[(w == 0).numpy()].sum() == 0  # zero weight: never drawn
    assert _chisquare(counts, w.numpy()) > P_MIN


def test_more_than_2_pow_24_items():
    """torch.multinomial stops at 2^24 categories; this sampler does not."""
    N = 2**24 + 1
    g = torch.Generator().manual_seed(5)
    w = torch.rand(N, generator=g, dtype=torch.float64)
    w[-1] = 0.1 * float(w[:-1].sum())  # the very last item carries ~9% of the mass
    w[: N // 2 : 1000] = 0.0
    n = 400_000
    idx = weighted_sample(w, n, generator=g)
    assert int(idx.max()) == N - 1 and int(idx.min()) >= 0
    assert not bool((w[idx] == 0).any())
    bins = 64  # coarse bins of contiguous indices, plus the last item alone
    edges = np.linspace(0, N - 1, bins + 1).astype(np.int64)
    cw = torch.cat([torch.zeros(1, dtype=torch.float64), w.cumsum(0)]).numpy()
    probs = np.append(cw[edges[1:]] - cw[edges[:-1]], w[-1].item())
    counts = np.append(np.histogram(idx.numpy()[idx.numpy() < N - 1], bins=edges)[0], int((idx == N - 1).sum()))
    assert _chisquare(counts, probs) > P_MIN


# ---- without replacement --------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_without_replacement_distinct_and_gumbel_top_k_law(backend, monkeypatch):
    monkeypatch.setenv("LOGO_FAST_BACKEND", backend)
    w = torch.tensor([1.0, 2.0, 0.0, 4.0, 8.0, 0.5, 3.0, 0.0, 1.5, 6.0], dtype=torch.float64)
    S = 20_000
    out = weighted_sample(w.expand(S, -1).contiguous(), 3, replacement=False,
                          generator=torch.Generator().manual_seed(2))
    assert out.shape == (S, 3)
    assert bool((out[:, 0] != out[:, 1]).all() & (out[:, 0] != out[:, 2]).all() & (out[:, 1] != out[:, 2]).all())
    assert not bool((w[out] == 0).any())
    p = (w / w.sum()).numpy()
    # first draw ~ w; second draw: sum_i p_i w_j / (W - w_i) over i != j (successive sampling)
    assert _chisquare(np.bincount(out[:, 0].numpy(), minlength=10), p) > P_MIN
    second = np.array([sum(p[i] * p[j] / (1 - p[i]) for i in range(10) if i != j) for j in range(10)])
    assert _chisquare(np.bincount(out[:, 1].numpy(), minlength=10), second) > P_MIN


def test_without_replacement_all_positive_is_a_permutation():
    w = torch.rand(3000, dtype=torch.float64)
    w[::3] = 0
    positive = torch.nonzero(w > 0).flatten()
    out = weighted_sample(w, positive.numel(), replacement=False)
    assert torch.equal(torch.sort(out).values, positive)


def test_without_replacement_many_rounds_when_mass_is_concentrated():
    """A huge weight and many tiny ones: the threshold must widen until enough keys qualify."""
    w = torch.full((300_000,), 1e-9, dtype=torch.float64)
    w[123] = 1e9
    out = weighted_sample(w, 50, replacement=False, generator=torch.Generator().manual_seed(0))
    assert out[0].item() == 123 and out.unique().numel() == 50
    torch_out = weighted_sample_op(w, torch.tensor([0, w.numel()]), 50, False, 99)
    assert torch.equal(torch_out, ref.weighted_sample_reference(w, torch.tensor([0, w.numel()]), 50, False, 99))


# ---- batched / ragged -----------------------------------------------------------------------
def _ragged(seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = [1, 5, 512, 513, 2500, 3, 4097]
    w = torch.rand(sum(lengths), generator=g, dtype=torch.float64)
    w[5:9] = 0.0
    offsets = torch.tensor([0, *np.cumsum(lengths)], dtype=torch.int64)
    return w, offsets, lengths


@needs_ext
@pytest.mark.parametrize("replacement", [True, False])
def test_ragged_reference_equals_extension(replacement):
    w, offsets, _ = _ragged()
    n = 1 if not replacement else 777
    for seed in (0, 1, 2**62 + 5):
        a = ref.weighted_sample_reference(w, offsets, n, replacement, seed, 3)
        b = weighted_sample_op(w, offsets, n, replacement, seed, 3)
        assert torch.equal(a, b)


@needs_ext
@pytest.mark.parametrize("N,n", [(1, 1), (2, 7), (1023, 64), (1025, 500), (10_000, 4096), (70_000, 2)])
@pytest.mark.parametrize("replacement", [True, False])
def test_reference_equals_extension(N, n, replacement):
    g = torch.Generator().manual_seed(N)
    w = torch.rand(N, generator=g, dtype=torch.float64) ** 4
    w[::5] = 0.0
    if N <= 5:
        w[0] = 1.0
    n = min(n, int((w > 0).sum())) if not replacement else n
    offsets = torch.tensor([0, N])
    assert torch.equal(weighted_sample_op(w, offsets, n, replacement, 42),
                       ref.weighted_sample_reference(w, offsets, n, replacement, 42))


def test_ragged_rows_follow_their_own_weights():
    w, offsets, lengths = _ragged(1)
    n = 40_000
    out = weighted_sample(w, n, offsets=offsets, generator=torch.Generator().manual_seed(3))
    assert out.shape == (len(lengths), n)
    for s, L in enumerate(lengths):
        ws = w[offsets[s] : offsets[s + 1]]
        assert int(out[s].min()) >= 0 and int(out[s].max()) < L
        if L > 1:
            assert _chisquare(np.bincount(out[s].numpy(), minlength=L), ws.numpy()) > P_MIN


def test_dense_batch_equals_ragged_and_row_zero_equals_single_call():
    g = torch.Generator().manual_seed(4)
    w = torch.rand(6, 1500, generator=g, dtype=torch.float64)
    dense = weighted_sample(w, 300, generator=torch.Generator().manual_seed(9))
    ragged = weighted_sample(w.flatten(), 300, offsets=torch.arange(7) * 1500,
                             generator=torch.Generator().manual_seed(9))
    single = weighted_sample(w[0], 300, generator=torch.Generator().manual_seed(9))
    assert torch.equal(dense, ragged)
    assert torch.equal(dense[0], single)  # segment 0 is Philox stream 0 in both calls
    assert not torch.equal(dense[0], dense[1])  # rows are independent streams


# ---- determinism ----------------------------------------------------------------------------
def test_seeded_generator_reproduces_and_advances():
    w = torch.rand(5000, dtype=torch.float64)
    g1, g2 = torch.Generator().manual_seed(123), torch.Generator().manual_seed(123)
    a1, a2 = weighted_sample(w, 100, generator=g1), weighted_sample(w, 100, generator=g2)
    assert torch.equal(a1, a2)
    b1 = weighted_sample(w, 100, generator=g1)
    assert not torch.equal(a1, b1)  # the generator advanced
    torch.manual_seed(7)
    c1 = weighted_sample(w, 100)
    torch.manual_seed(7)
    assert torch.equal(c1, weighted_sample(w, 100))  # default generator: torch.manual_seed controls it


def test_float32_and_integer_weights_accepted():
    w64 = torch.tensor([1.0, 0.0, 3.0, 2.0], dtype=torch.float64)
    a = weighted_sample(w64, 50, generator=torch.Generator().manual_seed(1))
    b = weighted_sample(w64.float(), 50, generator=torch.Generator().manual_seed(1))
    c = weighted_sample(torch.tensor([1, 0, 3, 2]), 50, generator=torch.Generator().manual_seed(1))
    d = weighted_sample(np.array([1.0, 0.0, 3.0, 2.0]), 50, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and torch.equal(a, c) and torch.equal(a, d)
    assert weighted_sample(w64, 0).shape == (0,)


# ---- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "weights,n,kwargs,needle",
    [
        (torch.tensor([1.0, float("nan"), 2.0]), 3, {}, "NaN/Inf"),
        (torch.tensor([1.0, float("inf")]), 3, {}, "NaN/Inf"),
        (torch.tensor([1.0, -0.5]), 3, {}, "negative"),
        (torch.zeros(5), 3, {}, "all weights are zero"),
        (torch.zeros(0), 3, {}, "empty"),
        (torch.ones(4), -1, {}, "n must be >= 0"),
        (torch.ones(4), 2.5, {}, "n must be an int"),
        (torch.tensor([1.0, 0.0, 2.0]), 3, {"replacement": False}, "cannot draw 3 without replacement from 2"),
        (torch.ones(2, 2, 2), 1, {}, "got shape (2, 2, 2)"),
        (torch.tensor([True, False]), 1, {}, "real numbers"),
        (torch.ones(6), 1, {"offsets": [0, 4, 3, 6]}, "non-decreasing"),
        (torch.ones(6), 1, {"offsets": [1, 6]}, "start at 0 and end at len(weights) = 6"),
        (torch.ones(6), 1, {"offsets": [0, 2, 2, 6]}, "vector 1 is empty"),
        (torch.ones(6), 1, {"offsets": [0.0, 6.0]}, "integer"),
    ],
)
def test_bad_input_raises_value_error(weights, n, kwargs, needle):
    with pytest.raises(ValueError) as err:
        weighted_sample(weights, n, **kwargs)
    assert needle in str(err.value)


def test_every_problem_is_listed_once():
    w = torch.tensor([1.0, float("nan"), -2.0, 0.0, 5.0, 0.0, 0.0])
    with pytest.raises(ValueError) as err:
        weighted_sample(w, 1, offsets=[0, 5, 7])
    msg = str(err.value)
    assert "NaN/Inf" in msg and "negative" in msg
    with pytest.raises(ValueError) as err:
        weighted_sample(torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0]), 1, offsets=[0, 1, 2, 3, 5])
    assert "vector 1: all weights are zero" in str(err.value) and "vector 2: all weights are zero" in str(err.value)


@needs_ext
def test_extension_checks_its_arguments_itself():
    """The C++ entry points validate in every build type (ValueError, not a crash)."""
    w = torch.tensor([1.0, float("nan"), 2.0], dtype=torch.float64)
    off = torch.tensor([0, 3])
    n_tree = ref.tree_layout([0, 3])[1]
    tree = torch.zeros(n_tree, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"weights\[1\] = nan"):
        EXT.build_cpu(w.data_ptr(), 3, off.data_ptr(), 1, tree.data_ptr(), n_tree, 1)
    with pytest.raises(ValueError, match=f"holds 5 entries, the offsets need {n_tree}"):
        EXT.build_cpu(w.data_ptr(), 3, off.data_ptr(), 1, tree.data_ptr(), 5, 1)
    bad_off = torch.tensor([0, 2])
    with pytest.raises(ValueError, match="must equal the number of weights"):
        EXT.build_cpu(w.data_ptr(), 3, bad_off.data_ptr(), 1, tree.data_ptr(), n_tree, 1)
    zero = torch.zeros(3, dtype=torch.float64)
    EXT.build_cpu(zero.data_ptr(), 3, off.data_ptr(), 1, tree.data_ptr(), n_tree, 1)
    out = torch.empty(4, dtype=torch.int64)
    with pytest.raises(ValueError, match="all weights are zero"):
        EXT.sample_cpu(zero.data_ptr(), 3, off.data_ptr(), 1, tree.data_ptr(), n_tree, 4, True, 0, 0, out.data_ptr())
    with pytest.raises(ValueError, match="seed must be >= 0"):
        EXT.sample_cpu(zero.data_ptr(), 3, off.data_ptr(), 1, tree.data_ptr(), n_tree, 4, True, -1, 0, out.data_ptr())
    huge = torch.tensor([1e308, 1e308, 1e308], dtype=torch.float64)
    with pytest.raises(ValueError, match="overflow"):
        EXT.build_cpu(huge.data_ptr(), 3, off.data_ptr(), 1, tree.data_ptr(), n_tree, 1)
    # update: every problem listed, nothing written
    EXT.build_cpu(zero.data_ptr(), 3, off.data_ptr(), 1, tree.data_ptr(), n_tree, 1)
    before = (zero.clone(), tree.clone())
    idx = torch.tensor([0, 5, -1])
    vals = torch.tensor([1.0, float("inf"), -2.0], dtype=torch.float64)
    with pytest.raises(ValueError) as err:
        EXT.update_cpu(zero.data_ptr(), 3, off.data_ptr(), 1, tree.data_ptr(), n_tree, idx.data_ptr(), 0,
                       vals.data_ptr(), 3, 3)
    msg = str(err.value)
    assert "2 indices outside [0, 3)" in msg and "1 NaN/Inf" in msg and "1 negative" in msg
    assert torch.equal(zero, before[0]) and torch.equal(tree, before[1])
    with pytest.raises(ValueError, match="a ring run of 4 items exceeds the 3 slots"):
        EXT.update_cpu(zero.data_ptr(), 3, off.data_ptr(), 1, tree.data_ptr(), n_tree, 0, 0, vals.data_ptr(), 4, 3)
    if not EXT.compiled_with_cuda():
        with pytest.raises(RuntimeError, match="without CUDA"):
            EXT.sample_cuda(0, 0, off.data_ptr(), 1, 0, 0, 0, 0, True, 0, 0, 0, 0, 0)


@needs_ext
@pytest.mark.skipif(EXT is None or not EXT.compiled_with_cuda(), reason="extension built without CUDA")
def test_cuda_entry_points_check_arguments_before_any_gpu_call():
    """The CUDA entry points' host-side checks run here too: they raise before touching a GPU."""
    off = torch.tensor([0, 3])
    n_tree = ref.tree_layout([0, 3])[1]
    with pytest.raises(ValueError, match="holds 5 entries"):
        EXT.build_cuda(1, 3, off.data_ptr(), 1, 1, 5, 1, 0, 0)
    with pytest.raises(ValueError, match="meta pointer is null"):
        EXT.build_cuda(1, 3, off.data_ptr(), 1, 1, n_tree, 0, 0, 0)
    with pytest.raises(ValueError) as err:
        EXT.sample_cuda(1, 3, off.data_ptr(), 1, 1, n_tree, 1, 4, True, -1, -2, 0, -1, 0)
    assert all(s in str(err.value) for s in ("seed must be >= 0", "offset must be >= 0", "out pointer is null",
                                             "device must be >= 0"))
    with pytest.raises(ValueError, match="k must be >= 0"):
        EXT.recompute_cuda(1, 3, off.data_ptr(), 1, 1, n_tree, 1, 1, 0, -1, 0, 0)
    bad_off = torch.tensor([0, 4])
    with pytest.raises(ValueError, match="must equal the number of weights"):
        EXT.sample_cuda(1, 3, bad_off.data_ptr(), 1, 1, n_tree, 1, 4, True, 0, 0, 1, 0, 0)


def test_low_level_ops_check_buffers():
    w = torch.ones(10, dtype=torch.float64)
    off = torch.tensor([0, 10])
    with pytest.raises(ValueError, match="float64"):
        weighted_sample_op(w.float(), off, 1, True, 0)
    n_tree = ref.tree_layout(off)[1]
    with pytest.raises(ValueError, match=f"tree must have {n_tree} entries"):
        prefix_tree_sample(w, off, torch.zeros(5, dtype=torch.float64), 1, True, 0)
    with pytest.raises(ValueError, match="differ in length"):
        prefix_tree_update(w, off, torch.zeros(n_tree, dtype=torch.float64), torch.tensor([1, 2]),
                           torch.ones(1, dtype=torch.float64), 10)


def test_explicit_backend_that_cannot_run_raises(monkeypatch):
    from logo_fast.backend import BackendUnavailableError

    monkeypatch.setenv("LOGO_FAST_BACKEND", "triton")
    with pytest.raises(BackendUnavailableError):
        weighted_sample(torch.ones(4), 2)


# ---- torch.library ---------------------------------------------------------------------------
def _tree(offsets):
    return torch.zeros(ref.tree_layout(offsets)[1], dtype=torch.float64)


def test_opcheck_all_ops():
    w, offsets, _ = _ragged(2)
    tree = _tree(offsets)
    torch.library.opcheck(prefix_tree_build, (w, offsets, tree))
    prefix_tree_build(w, offsets, tree)
    torch.library.opcheck(prefix_tree_update, (w.clone(), offsets, tree.clone(), torch.tensor([0, 3, 4000]),
                                               torch.tensor([0.5, 0.0, 2.0], dtype=torch.float64), w.numel()))
    torch.library.opcheck(prefix_tree_sample, (w, offsets, tree, 17, True, 5, 0))
    torch.library.opcheck(prefix_tree_sample, (w, offsets, tree, 1, False, 5, 0))
    torch.library.opcheck(weighted_sample_op, (w, offsets, 9, True, 3, 2))


def test_torch_compile_traces_the_op():
    w = torch.rand(3000, dtype=torch.float64)
    offsets = torch.tensor([0, 1000, 3000])

    def f(w):
        return weighted_sample_op(w * 2.0, offsets, 64, True, 11) + 1

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    assert torch.equal(compiled(w), f(w))


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_incremental_update_equals_full_build(backend, monkeypatch):
    """An update leaves exactly the bits a full build of the new weights would (ragged segments)."""
    monkeypatch.setenv("LOGO_FAST_BACKEND", backend)
    w, offsets, _ = _ragged(3)
    tree = _tree(offsets)
    prefix_tree_build(w, offsets, tree)
    items = torch.tensor([1030, 1031, 1035, w.numel() - 1, 0, 1030])  # a repeat: the last value wins
    vals = torch.tensor([5.0, 0.0, 1e-300, 0.25, 3.0, 7.0], dtype=torch.float64)
    w1 = w.clone()
    prefix_tree_update(w1, offsets, tree, items, vals, w.numel())
    w2 = w.clone()
    w2[[1031, 1035, w.numel() - 1, 0, 1030]] = torch.tensor([0.0, 1e-300, 0.25, 3.0, 7.0], dtype=torch.float64)
    assert torch.equal(w1, w2)
    t2 = _tree(offsets)
    prefix_tree_build(w2, offsets, t2)
    assert torch.equal(tree, t2)
    t3 = _tree(offsets)
    ref.build_prefix_tree(w2, offsets, t3)
    assert torch.equal(tree, t3)


@needs_ext
def test_extension_tree_is_bitwise_the_reference():
    w, offsets, _ = _ragged(5)
    a, b = _tree(offsets), _tree(offsets)
    prefix_tree_build(w, offsets, a)
    ref.build_prefix_tree(w, offsets, b)
    assert torch.equal(a, b)


def test_choose_child_rounding_fallback_never_picks_a_zero_weight_child():
    """Residuals at or past a node's total happen only by rounding: the last child with mass is taken."""
    node = torch.tensor([[0.0, 1.0, 1.0, 3.0, 3.0, 3.0, 3.0, 3.0]], dtype=torch.float64)  # children 1, 3 have mass
    assert ref.choose_child(node, torch.tensor([3.0], dtype=torch.float64)).tolist() == [3]
    assert ref.choose_child(node, torch.tensor([0.0], dtype=torch.float64)).tolist() == [1]  # not the empty child 0
    assert ref.choose_child(node, torch.tensor([1.0], dtype=torch.float64)).tolist() == [3]
    if EXT is not None:
        for r in (0.0, 0.5, 1.0, 2.999, 3.0, 7.0):
            assert EXT.choose_child(node[0].tolist(), r) == int(ref.choose_child(node, torch.tensor([r]))[0])


def test_weights_whose_prefix_rounds_to_the_total_still_draw_only_positive_items():
    """Tiny weights after a big one add nothing to the float prefix: zero-width intervals, never a zero item."""
    w = torch.tensor([0.0, 1.0, 0.0, 1e-17, 1e-17, 0.0, 2**-60, 0.0] * 40, dtype=torch.float64)
    offsets = torch.tensor([0, w.numel()])
    tree = _tree(offsets)
    ref.build_prefix_tree(w, offsets, tree)
    lv = ref._Levels([0, w.numel()], w.device)
    U = torch.cat([torch.linspace(0, 1, 4001, dtype=torch.float64)[:-1],
                   torch.tensor([1 - 2**-53, 1 - 2**-52, 0.5 - 2**-54], dtype=torch.float64)])
    idx = ref.descend(tree, lv, torch.zeros(U.numel(), dtype=torch.int64), U)
    assert bool((w[idx] > 0).all())
    # a residual at the total (what rounding could produce) takes the last item with mass
    seg0 = torch.zeros(1, dtype=torch.int64)
    total = float(ref.segment_totals(offsets, tree)[0])
    top = ref.descend(tree, lv, seg0, torch.tensor([total / total], dtype=torch.float64))
    assert float(w[top]) > 0
    out = weighted_sample(w, 20_000, generator=torch.Generator().manual_seed(3))
    assert bool((w[out] > 0).all())


# ---- GPU parity ------------------------------------------------------------------------------
def _assert_cuda_backend():
    assert backend_for(torch.device("cuda")) == "cuda", "the CUDA path did not run (extension built without CUDA?)"


@pytest.mark.gpu
@pytest.mark.parametrize("replacement", [True, False])
def test_cuda_matches_cpu_exactly_on_integer_weights(replacement):
    """Integer weights (every partial sum exact) and the same fixed summing order: identical draws."""
    _assert_cuda_backend()
    g = torch.Generator().manual_seed(0)
    lengths = [1, 1000, 5000, 70_000]
    w = torch.randint(0, 50, (sum(lengths),), generator=g).double()
    offsets = torch.tensor([0, *np.cumsum(lengths)])
    w[offsets[:-1]] = 1.0  # every segment has mass
    n = 1 if not replacement else 4096
    cpu = weighted_sample_op(w, offsets, n, replacement, 77)
    gpu = weighted_sample_op(w.cuda(), offsets, n, replacement, 77)
    assert gpu.is_cuda and torch.equal(cpu, gpu.cpu())
    if not replacement:
        cpu = weighted_sample_op(w, offsets, 1, False, 78)
        assert torch.equal(cpu, weighted_sample_op(w.cuda(), offsets, 1, False, 78).cpu())


@pytest.mark.gpu
def test_cuda_without_replacement_matches_cpu_on_float_weights():
    _assert_cuda_backend()
    w = torch.rand(200_000, dtype=torch.float64) ** 2
    offsets = torch.tensor([0, 50_000, 200_000])
    cpu = weighted_sample_op(w, offsets, 2000, False, 5)
    gpu = weighted_sample_op(w.cuda(), offsets, 2000, False, 5)
    assert torch.equal(cpu, gpu.cpu())


@pytest.mark.gpu
def test_cuda_with_replacement_float_weights_match_cpu_exactly():
    """The GPU sums every node left to right as the CPU does: same tree bits, same draws."""
    _assert_cuda_backend()
    w = torch.rand(100_000, dtype=torch.float64)
    gpu = weighted_sample(w.cuda(), 200_000, generator=torch.Generator().manual_seed(1)).cpu()
    cpu = weighted_sample(w, 200_000, generator=torch.Generator().manual_seed(1))
    assert torch.equal(gpu, cpu)
    offsets = torch.tensor([0, w.numel()])
    tc, tg = _tree(offsets), _tree(offsets).cuda()
    prefix_tree_build(w, offsets, tc)
    prefix_tree_build(w.cuda(), offsets, tg)
    assert torch.equal(tc, tg.cpu())
    bins = np.linspace(0, 100_000, 101).astype(np.int64)
    cw = torch.cat([torch.zeros(1, dtype=torch.float64), w.cumsum(0)]).numpy()
    assert _chisquare(np.histogram(gpu.numpy(), bins=bins)[0], cw[bins[1:]] - cw[bins[:-1]]) > P_MIN


@pytest.mark.gpu
def test_cuda_bad_weights_raise_value_error():
    _assert_cuda_backend()
    with pytest.raises(ValueError):
        weighted_sample_op(torch.tensor([1.0, float("nan")], dtype=torch.float64, device="cuda"),
                           torch.tensor([0, 2]), 1, True, 0)
    with pytest.raises(ValueError, match="all weights are zero"):
        weighted_sample_op(torch.zeros(3, dtype=torch.float64, device="cuda"), torch.tensor([0, 3]), 1, True, 0)


@pytest.mark.gpu
@pytest.mark.slow
def test_cuda_hundred_million_items():
    _assert_cuda_backend()
    N = 100_000_000
    w = torch.ones(N, dtype=torch.float64, device="cuda")
    w[-1] = float(N)  # half the mass on the last item
    idx = weighted_sample(w, 1_000_000, generator=torch.Generator().manual_seed(0))
    frac_last = float((idx == N - 1).double().mean())
    assert abs(frac_last - 0.5) < 0.005
    assert int(idx.max()) == N - 1 and int(idx.min()) >= 0
    uniq = weighted_sample(w, 10_000, replacement=False, generator=torch.Generator().manual_seed(0))
    assert uniq.unique().numel() == 10_000


@pytest.mark.gpu
def test_cuda_builds_are_bitwise_identical_across_runs():
    """A fixed summing order: five builds of 1e7 float weights give the same bits (no cub scan)."""
    _assert_cuda_backend()
    w = torch.rand(10_000_000, dtype=torch.float64, device="cuda") ** 3
    offsets = torch.tensor([0, w.numel()])
    trees = []
    for _ in range(5):
        t = _tree(offsets).cuda()
        prefix_tree_build(w, offsets, t)
        trees.append(t)
    assert all(torch.equal(trees[0], t) for t in trees[1:])


@pytest.mark.gpu
def test_cuda_never_draws_a_zero_weight_item():
    """1e7 draws at 50 % zero weights: none lands on a zero."""
    _assert_cuda_backend()
    g = torch.Generator().manual_seed(0)
    w = torch.rand(2_000_000, generator=g, dtype=torch.float64) ** 4
    w[torch.rand(w.numel(), generator=g) < 0.5] = 0.0
    wc = w.cuda()
    idx = weighted_sample(wc, 10_000_000, generator=torch.Generator().manual_seed(1))
    assert idx.is_cuda and not bool((wc[idx] == 0).any())


@pytest.mark.skipif(HAS_CUDA, reason="checks the CPU-only behaviour")
def test_cuda_requested_without_a_gpu_raises(monkeypatch):
    """LOGO_FAST_BACKEND=cuda never silently runs the C++ CPU path where the CUDA path cannot run."""
    from logo_fast.backend import BackendUnavailableError

    monkeypatch.setenv("LOGO_FAST_BACKEND", "cuda")
    w = torch.rand(2000, dtype=torch.float64)
    with pytest.raises(BackendUnavailableError, match="LOGO_FAST_BACKEND=cuda cannot run weighted_sample on cpu"):
        weighted_sample_op(w, torch.tensor([0, 2000]), 10, True, 1)
