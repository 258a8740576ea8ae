"""state_disagreement: Triton kernel and custom op vs the float64 reference."""

from __future__ import annotations

import pytest
import torch

from logo_fast.ops import state_disagreement
from logo_fast.reference.state_disagreement import state_disagreement_reference
from tests.conftest import HAS_CUDA, triton_available

needs_triton = pytest.mark.skipif(not triton_available(), reason="Triton not installed")
DEVICE = "cuda" if HAS_CUDA else "cpu"

# (B, S): batch 1, state 1, odd sizes, a tile boundary plus one, more rows than one program holds
SHAPES = [(1, 1), (1, 7), (3, 1), (5, 13), (17, 129), (300, 5), (64, 16)]
TOL = {torch.float32: (1e-5, 1e-5), torch.bfloat16: (2e-2, 2e-2), torch.float16: (5e-3, 5e-3)}


def _inputs(B, S, dtype, device=DEVICE, transposed=False):
    g = torch.Generator().manual_seed(B * 1000 + S)
    if transposed:  # non-contiguous: a (S, B) tensor viewed as (B, S)
        aux = torch.randn(S, B, generator=g).t()
        ded = torch.randn(S, B, generator=g).t()
    else:
        aux = torch.randn(B, S, generator=g)
        ded = torch.randn(B, S, generator=g)
    inv_std = torch.rand(S, generator=g) + 0.25
    return aux.to(device, dtype), ded.to(device, dtype), inv_std.to(device)


def _ref64(aux, ded, inv_std):
    return state_disagreement_reference(aux.double(), ded.double(), inv_std.double())


@needs_triton
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("transposed", [False, True])
def test_triton_kernel_matches_float64_reference(shape, dtype, transposed):
    from logo_fast.kernels.state_disagreement import state_disagreement_triton

    aux, ded, inv_std = _inputs(*shape, dtype, transposed=transposed)
    assert aux.is_contiguous() != transposed or shape[0] == 1 or shape[1] == 1
    got = state_disagreement_triton(aux, ded, inv_std)
    want = _ref64(aux, ded, inv_std)
    assert got.dtype == torch.float32 and got.shape == (shape[0],)
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(got.double(), want, rtol=rtol, atol=atol)


@needs_triton
def test_triton_kernel_empty_batch_and_strided_rows():
    from logo_fast.kernels.state_disagreement import state_disagreement_triton

    aux, ded, inv_std = _inputs(0, 4, torch.float32)
    assert state_disagreement_triton(aux, ded, inv_std).shape == (0,)
    big_a, big_d, inv_std = _inputs(20, 9, torch.float32)
    aux, ded = big_a[::3, 1:8], big_d[::3, 1:8]  # every third row, a column window
    got = state_disagreement_triton(aux, ded, inv_std[1:8])
    torch.testing.assert_close(got.double(), _ref64(aux, ded, inv_std[1:8]), rtol=1e-5, atol=1e-5)


@needs_triton
def test_op_dispatches_to_triton_when_asked(monkeypatch):
    monkeypatch.setenv("LOGO_FAST_BACKEND", "triton")
    aux, ded, inv_std = _inputs(9, 11, torch.float32)
    torch.testing.assert_close(state_disagreement(aux, ded, inv_std).double(), _ref64(aux, ded, inv_std))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_op_matches_reference_and_is_a_norm(dtype):
    aux, ded, inv_std = _inputs(6, 10, dtype)
    u = state_disagreement(aux, ded, inv_std)
    assert u.dtype == dtype
    torch.testing.assert_close(u.double(), _ref64(aux, ded, inv_std))
    assert torch.all(state_disagreement(aux, aux, inv_std) == 0)
    # scaling the difference scales u: a property, not a copy of the formula
    torch.testing.assert_close(state_disagreement(2 * aux, 2 * ded, inv_std), 2 * u)


def test_gradients_match_float64_autograd():
    aux, ded, inv_std = (t.double() for t in _inputs(4, 6, torch.float64))
    aux.requires_grad_(True)
    ded.requires_grad_(True)
    inv_std.requires_grad_(True)
    assert torch.autograd.gradcheck(state_disagreement, (aux, ded, inv_std))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opcheck(dtype):
    aux, ded, inv_std = _inputs(5, 7, dtype)
    torch.library.opcheck(torch.ops.logo_fast.state_disagreement.default, (aux, ded, inv_std))
    aux.requires_grad_(True)
    torch.library.opcheck(torch.ops.logo_fast.state_disagreement.default, (aux, ded, inv_std))


def test_compiles_with_torch_compile():
    aux, ded, inv_std = _inputs(8, 5, torch.float32)
    compiled = torch.compile(lambda a, d, s: state_disagreement(a, d, s) * 2, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(aux, ded, inv_std), 2 * state_disagreement(aux, ded, inv_std))


def test_bad_input_lists_every_problem():
    aux = torch.zeros(4, 3)
    with pytest.raises(ValueError) as err:
        state_disagreement(aux, torch.zeros(4, 5), torch.zeros(2, dtype=torch.float32).long())
    msg = str(err.value)
    assert "ded shape" in msg and "inv_std must be (S,)" in msg and "floating point" in msg
    with pytest.raises(ValueError, match="aux must be"):
        state_disagreement(torch.zeros(3), torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="torch.Tensor"):
        state_disagreement([1.0], torch.zeros(1, 1), torch.zeros(1))
