"""The public sampler's input checks where the sampler mutation run found no test (issue 17).

``logo_fast.weighted_sample`` and ``WeightedSampler`` raise one ValueError that starts with the entry point's
name and lists every problem; a write that is refused changes nothing. Each docstring names the breakage (a
mutmut mutant) it was checked against.
"""

from __future__ import annotations

import pytest
import torch

from logo_fast.ops.weighted_sample import prefix_tree_build
from logo_fast.reference.weighted_sample import tree_layout
from logo_fast.sampler import WeightedSampler, weighted_sample


def test_all_zero_weights_name_the_entry_point():
    """mutant ``_raise(None, ...)`` for the per-vector problems: the message began with "None"."""
    with pytest.raises(ValueError) as err:
        weighted_sample(torch.zeros(5), 2)
    assert str(err.value) == "weighted_sample: bad input:\n  - weights: all weights are zero (nothing to sample)"


def test_offsets_that_are_not_array_like_are_named():
    """mutant ``_as_tensor(offsets, None, ...)``: the message named "None" instead of the offsets."""
    with pytest.raises(ValueError, match=r"- offsets must be a tensor or array-like, got object"):
        weighted_sample(torch.ones(4), 1, offsets=object())


def test_non_contiguous_weights_to_the_low_level_op_are_named():
    """mutant ``("XXweightsXX", weights)`` in the contiguity check of the low-level ops."""
    w = torch.ones(8, dtype=torch.float64)[::2]
    offsets = torch.tensor([0, 4])
    with pytest.raises(ValueError, match=r"- weights must be contiguous"):
        prefix_tree_build(w, offsets, torch.empty(tree_layout(offsets)[1], dtype=torch.float64))


@pytest.mark.parametrize("call", ["extend", "update"])
def test_bool_weights_are_refused_and_change_nothing(call):
    """Boolean weights are not numbers: mutant ``dtype == bool and is_complex()`` let them through
    ``WeightedSampler._values`` and True was stored as weight 1."""
    s = WeightedSampler(4)
    s.extend(torch.tensor([1.0, 2.0]))
    before = s.weights()
    with pytest.raises(ValueError, match=f"WeightedSampler.{call}: bad input:\n  - weights must be real numbers"):
        if call == "extend":
            s.extend(torch.tensor([True, False]))
        else:
            s.update([0, 1], torch.tensor([True, False]))
    assert torch.equal(s.weights(), before) and len(s) == 2


def test_update_errors_name_the_method():
    """The list-indices path of update (not the C++ fast path) names WeightedSampler.update: mutants lower-
    and upper-casing the name passed."""
    s = WeightedSampler(4)
    s.extend(torch.ones(3))
    with pytest.raises(ValueError) as err:
        s.update([0, 1], [1.0])
    assert str(err.value).startswith("WeightedSampler.update: bad input:\n  - indices (2) and weights (1) differ")


def test_probabilities_refuse_float_and_negative_indices():
    """mutants ``problems.append(None)`` (a TypeError) and ``min < 0 and max >= capacity`` (index -1 alone read
    the last slot's probability)."""
    s = WeightedSampler(8)
    s.extend(torch.arange(1.0, 9.0))
    with pytest.raises(ValueError, match=r"- indices must be integers, got torch.float32"):
        s.probabilities(torch.tensor([0.5]))
    with pytest.raises(ValueError, match=r"- indices must lie in \[0, 8\), got range \[-1, -1\]"):
        s.probabilities(torch.tensor([-1]))
    with pytest.raises(ValueError, match=r"- indices must lie in \[0, 8\), got range \[0, 8\]"):
        s.probabilities(torch.tensor([0, 8]))


def test_an_overflowing_update_on_the_reference_backend_names_the_segment_and_changes_nothing(monkeypatch):
    """The torch backend (the CUDA path's twin) undoes a write whose total overflows and says so: mutant
    ``nonzero(isfinite(totals))`` indexed an empty tensor (IndexError) instead."""
    monkeypatch.setenv("LOGO_FAST_BACKEND", "torch")
    s = WeightedSampler(4)
    assert s.backend() == "torch"
    s.extend(torch.tensor([1e308, 1.0], dtype=torch.float64))
    before = s.weights()
    with pytest.raises(ValueError, match=r"WeightedSampler.update: bad input:\n  - segment 0: the weights would sum"):
        s.update(torch.tensor([1]), torch.tensor([1e308], dtype=torch.float64))
    assert torch.equal(s.weights(), before) and s.total() == pytest.approx(1e308)


def test_the_traceable_branch_gives_what_the_eager_branch_gives(monkeypatch):
    """Under torch.compile WeightedSampler writes and draws through the custom ops (a traceable branch) instead
    of the eager helpers. No test compiled a sampler, so mutants there (``items = None`` after the index
    conversion, ``values`` or ``limit`` dropped, the seed dropped from the draw) survived.
    ``torch.compiler.is_compiling`` is forced on to run that branch eagerly (a compiled test could not run under
    mutmut, whose trampolines dynamo cannot trace)."""
    g = torch.Generator().manual_seed(0)
    w = torch.rand(50, generator=g, dtype=torch.float64)
    # int32 indices: the writes convert them (a list or a numpy array of indices takes the same path)
    idx = torch.tensor([3, 7, 3, 49], dtype=torch.int32)
    vals = torch.tensor([0.0, 0.0, 2.0, 1.5], dtype=torch.float64)
    eager, traced = WeightedSampler(64), WeightedSampler(64)
    eager.extend(w)
    traced.extend(w)
    eager.update(idx, vals)
    want = [eager.sample(300, generator=torch.Generator().manual_seed(s)) for s in (1, 2)]
    want_wo = eager.sample(20, replacement=False, generator=torch.Generator().manual_seed(3))
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    traced.update(idx, vals)
    got = [traced.sample(300, generator=torch.Generator().manual_seed(s)) for s in (1, 2)]
    got_wo = traced.sample(20, replacement=False, generator=torch.Generator().manual_seed(3))
    monkeypatch.undo()
    # total(): the tree root eagerly, weights.sum() in the traceable branch (the same sum, rounded apart)
    assert torch.equal(traced.weights(), eager.weights()) and traced.total() == pytest.approx(eager.total(), rel=1e-12)
    assert float(traced.weights()[3]) == 2.0  # the last occurrence of a repeated index wins
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True)) and torch.equal(got_wo, want_wo)
    assert not torch.equal(got[0], got[1])
    with pytest.raises(ValueError, match="cannot draw 51 without replacement from 49 positive weights"):
        traced.sample(51, replacement=False)  # the positive count was recomputed by the traceable write
