"""The sampler reference's contract where its mutation run found no test: phase B of ragged draws without
replacement, the rounding fallback's lowest child, errors at the low-level ops, n = 0, trees over 2^23 items.

The reference is the torch backend of the low-level ops (``LOGO_FAST_BACKEND=torch``) and the spec the C++
and CUDA paths must match bit for bit, so these tests check it through the ops where they can and against
the extension where it is built. Each docstring names the breakage (a mutmut mutant, issue 17) it was checked
against.
"""

from __future__ import annotations

import pytest
import torch

from logo_fast.backend import extension
from logo_fast.ops.weighted_sample import backend_for, prefix_tree_build, prefix_tree_sample, weighted_sample_op
from logo_fast.reference import weighted_sample as ref

EXT = extension()
needs_ext = pytest.mark.skipif(EXT is None, reason="logo_fast._C not built")
# LOGO_FAST_BACKEND values: the reference, and auto (the C++ extension for CPU tensors when it is built)
BACKENDS = ["torch", pytest.param("auto", marks=needs_ext)]


def _use(backend: str, monkeypatch) -> None:
    monkeypatch.setenv("LOGO_FAST_BACKEND", backend)
    assert backend_for(torch.device("cpu")) == ("torch" if backend == "torch" else "extension")


def _tree(offsets: torch.Tensor) -> torch.Tensor:
    return torch.empty(ref.tree_layout(offsets)[1], dtype=torch.float64)


def _concentrated(lengths: list[int], heavy: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Segments of tiny equal weights with one huge weight each (at local index ``heavy[s]``).

    Phase A's 4n + 64 tree draws then find only the heavy item (a tiny one is drawn with probability
    ~1e-18 per draw), so every segment's other n - 1 draws come from phase B's exponential keys.
    """
    w = torch.full((sum(lengths),), 1e-6, dtype=torch.float64)
    offsets = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int64)
    for s, h in enumerate(heavy):
        w[int(offsets[s]) + h] = 1e12
    return w, offsets


@needs_ext
@pytest.mark.parametrize("seed", [0, 7, 2**40 + 3])
def test_phase_b_of_later_segments_matches_the_extension(seed):
    """Phase B's keys use each item's index local to its segment (the spec's counter): mutant
    ``item = arange(N) - off[seg]`` -> ``+ off[seg]`` changed every segment after the first and no test saw it."""
    w, offsets = _concentrated([300, 200, 257], heavy=[17, 0, 256])
    a = ref.weighted_sample_reference(w, offsets, 6, False, seed)
    b = weighted_sample_op(w, offsets, 6, False, seed)
    assert torch.equal(a, b)
    assert a[:, 0].tolist() == [17, 0, 256]  # the heavy item is drawn first, by phase A
    for s, row in enumerate(a.tolist()):
        assert len(set(row)) == 6 and max(row) < int(offsets[s + 1] - offsets[s])


def test_phase_b_draws_are_pinned():
    """Pinned indices of a ragged draw that reaches phase B (values from the reference, checked equal to the
    extension above): a change in how seeds, segments or local items map to Philox streams fails here even
    where the extension is not built."""
    w, offsets = _concentrated([300, 200, 257], heavy=[17, 0, 256])
    got = ref.weighted_sample_reference(w, offsets, 6, False, 7).tolist()
    assert got == PINNED_PHASE_B


PINNED_PHASE_B = [[17, 132, 85, 94, 133, 140], [0, 57, 74, 63, 27, 79], [256, 193, 157, 45, 75, 146]]


def test_rounding_fallback_can_return_the_first_child():
    """A residual at or past the node total (rounding) takes the last child adding mass, which may be child 0:
    mutant ``while k > 0`` -> ``while k >= 0`` walked past it (an IndexError or -1) and no test had a node
    whose only child with mass is the first."""
    node = torch.full((1, 8), 3.0, dtype=torch.float64)  # child 0 holds all the mass
    for r in (3.0, 3.5):
        assert ref.choose_child(node, torch.tensor([r], dtype=torch.float64)).tolist() == [0]
    if EXT is not None:
        assert EXT.choose_child(node[0].tolist(), 3.0) == 0
    # end to end: one positive item first in its segment, and a residual at the total
    w = torch.tensor([2.0] + [0.0] * 70, dtype=torch.float64)
    offsets = torch.tensor([0, w.numel()])
    tree = _tree(offsets)
    ref.build_prefix_tree(w, offsets, tree)
    lv = ref._Levels([0, w.numel()], w.device)
    top = ref.descend(tree, lv, torch.zeros(2, dtype=torch.int64), torch.tensor([1.0, 1 - 2**-53]))
    assert top.tolist() == [0, 0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_weight_error_names_its_index_and_value_on_every_backend(backend, monkeypatch):
    """prefix_tree_build on the torch backend reports a bad weight as the extension does: mutants that put
    None in place of the value or of the index turned the ValueError into a TypeError."""
    _use(backend, monkeypatch)
    for bad, shown in ((float("nan"), "nan"), (-2.5, "-2.5"), (float("inf"), "inf")):
        w = torch.tensor([1.0, 0.0, 3.0, 4.0, 5.0, bad, 1.0, bad], dtype=torch.float64)
        offsets = torch.tensor([0, 3, 8])
        with pytest.raises(ValueError, match=rf"weights\[5\] = {shown}: every weight must be finite and >= 0"):
            prefix_tree_build(w, offsets, _tree(offsets))


@pytest.mark.parametrize("backend", BACKENDS)
def test_sampling_an_empty_or_all_zero_segment_lists_both(backend, monkeypatch):
    """prefix_tree_sample on the torch backend names an empty segment as the extension does: mutant
    ``problems.append(None)`` raised a TypeError from the join instead of the ValueError."""
    _use(backend, monkeypatch)
    w = torch.tensor([1.0, 2.0, 0.0, 0.0], dtype=torch.float64)
    offsets = torch.tensor([0, 2, 2, 4])
    tree = _tree(offsets)
    prefix_tree_build(w, offsets, tree)
    with pytest.raises(ValueError) as info:
        prefix_tree_sample(w, offsets, tree, 3, True, 0, 0)
    msg = str(info.value)
    assert "- segment 1 is empty" in msg and "- segment 2: all weights are zero" in msg


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("replacement", [True, False])
def test_zero_draws_are_an_empty_int64_matrix(backend, replacement, monkeypatch):
    """n = 0 gives (S, 0) int64 on every backend: mutant ``torch.empty((S, 0), device=dev)`` returned float32
    from the reference (then unusable as an index)."""
    _use(backend, monkeypatch)
    w = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    offsets = torch.tensor([0, 1, 3])
    tree = _tree(offsets)
    prefix_tree_build(w, offsets, tree)
    for out in (
        prefix_tree_sample(w, offsets, tree, 0, replacement, 0, 0),
        weighted_sample_op(w, offsets, 0, replacement, 0),
    ):
        assert out.shape == (2, 0) and out.dtype == torch.int64
        assert w[out].shape == (2, 0)


def test_tree_over_eight_million_items_covers_every_item():
    """The reference builds level 0 in chunks of 2^20 nodes (2^23 items): mutant ``range(0, k, 2 << 20)`` with
    ``seg[a : a + (1 << 20)]`` skipped every second chunk, so items past 2^23 had no mass in the tree. The
    test of more than 2^24 items runs the extension, not the reference."""
    N = 2**23 + 40
    w = torch.zeros(N, dtype=torch.float64)
    w[3], w[N - 1] = 1.0, 3.0  # one item in the first chunk, one in the second
    offsets = torch.tensor([0, N])
    tree = _tree(offsets)
    ref.build_prefix_tree(w, offsets, tree)
    assert float(ref.segment_totals(offsets, tree)[0]) == 4.0
    idx = ref.sample_prefix_tree(w, offsets, tree, 2000, True, 11)[0]
    assert set(idx.tolist()) == {3, N - 1}
    share = float((idx == N - 1).double().mean())
    assert 0.70 < share < 0.80  # 3/4 expected; 2000 draws put the share within +-0.05 at > 5 sigma
    if EXT is not None:
        other = _tree(offsets)
        EXT.build_cpu(w.data_ptr(), N, offsets.data_ptr(), 1, other.data_ptr(), other.numel(), 1)
        assert torch.equal(tree, other)


def test_the_reference_stays_on_its_inputs_device_whatever_the_default_device():
    """Under ``torch.device(...)`` / ``set_default_device`` (a CUDA default while sampling CPU tensors) every
    tensor the reference makes must follow its inputs. The meta device stands in for a GPU default here: mutants
    that dropped ``device=`` (``_Levels.off``, ``_all_nodes``' counts, phase A's segments, ``recompute_items``'
    levels, the bad-weight index) made meta tensors and failed, but no CPU-only test could tell."""
    w, offsets = _concentrated([300, 200, 257], heavy=[17, 0, 256])
    w[5::9] = 0.0
    want_wo = ref.weighted_sample_reference(w, offsets, 6, False, 3)
    want_w = ref.weighted_sample_reference(w, offsets, 50, True, 3, 7)
    changed = w.clone()
    changed[[3, 400]] = 5e11
    fresh = _tree(offsets)
    ref.build_prefix_tree(changed, offsets, fresh)
    bad = w.clone()
    bad[301] = -1.0
    with torch.device("meta"):
        assert torch.equal(ref.weighted_sample_reference(w, offsets, 6, False, 3), want_wo)
        assert torch.equal(ref.weighted_sample_reference(w, offsets, 50, True, 3, 7), want_w)
        tree = torch.empty(ref.tree_layout(offsets)[1], dtype=torch.float64, device="cpu")
        ref.build_prefix_tree(w, offsets, tree)
        w2 = changed.clone()
        ref.recompute_items(w2, offsets, tree, torch.tensor([3, 400], device="cpu"))
        assert torch.equal(tree, fresh)
        with pytest.raises(ValueError, match=r"weights\[301\] = -1.0"):
            ref.build_prefix_tree(bad, offsets, tree)
