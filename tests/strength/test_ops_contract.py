"""The custom ops' contract where the ops mutation run found no test: what a bad input's message names, the
absolute deductive state through the op, and which calls go through the op at all.

``logo_fast.ops.logo_step`` and ``logo_fast.ops.state_disagreement`` check their inputs before any work and
list every problem; a message that names the wrong argument (or the wrong size) sends the user to the wrong
tensor. Each docstring names the breakage (a mutmut mutant, issue 17) it was checked against. Test names avoid
the words the mutation run deselects (``triton``, ``kernel``, ``gpu``, ``fused`` (as in "refused"), ...)
so that ``make mutate`` runs them.
"""

from __future__ import annotations

import pytest
import torch

from logo_fast.backend import BackendUnavailableError
from logo_fast.ops.logo_step import logo_step
from logo_fast.ops.state_disagreement import state_disagreement
from logo_fast.reference import logo_step as ref
from tests.ops.test_logo_step import CASES, make_inputs, make_net


def _disc_net(**cfg):
    return make_net(*CASES["three_hetero_disc"][:-1], **cfg)  # N=3, D=5, S=7, 4 actions


def _problems(fn, *args) -> str:
    with pytest.raises(ValueError) as err:
        fn(*args)
    return str(err.value)


# ---- logo_step ---------------------------------------------------------------------------------
def test_absolute_deductive_state_through_the_op_is_the_reference():
    """deductive_state="absolute" survives the op's int encoding of the meta: mutants that decoded it as
    "delta" (``"absolute" if absolute and False``, ``== "XXabsoluteXX"``) ran the wrong target and no test
    ran that configuration through the op (only through the reference)."""
    net = _disc_net(deductive_state="absolute")
    obs, state, act = make_inputs(net, 5)
    assert net.meta.state_target == "absolute"
    with torch.no_grad():
        got = logo_step(net.meta, net.step_weights(), obs, state, act)
        want = ref.logo_step(net.meta, net.step_weights(), obs, state, act)
        delta = ref.logo_step(net.meta._replace(state_target="delta"), net.step_weights(), obs, state, act)
    for k in ("next_state", "aux_state", "u", "reward"):
        assert torch.equal(got[k], want[k]), k
    assert not torch.allclose(want["next_state"], delta["next_state"])  # the two targets do differ here


@pytest.mark.parametrize("which", ["obs", "state", "actions"])
def test_a_non_tensor_input_is_named(which):
    """The not-a-tensor message names the argument: mutants renaming "obs" ("XXobsXX", "OBS") passed because
    the only check matched "torch.Tensor"."""
    net = _disc_net()
    args = dict(zip(("obs", "state", "actions"), make_inputs(net, 2), strict=True))
    args[which] = args[which].tolist()
    msg = _problems(logo_step, net.meta, net.step_weights(), args["obs"], args["state"], args["actions"])
    assert f"- {which} must be a torch.Tensor, got list" in msg


def test_discrete_actions_of_the_wrong_width_are_rejected():
    """(B, N + 1) discrete actions are refused before any work: mutant ``dim() != 2 and shape != (B, N)``
    accepted any 2-d tensor and the step then indexed past the agents."""
    net = _disc_net()
    obs, state, act = make_inputs(net, 4)
    wide = torch.cat([act, act[:, :1]], 1)
    msg = _problems(logo_step, net.meta, net.step_weights(), obs, state, wide)
    assert "discrete actions must be (4, 3), got (4, 4)" in msg


def test_integer_state_is_named():
    """mutant ``("STATE", state)`` in the floating-point check: the message named a tensor that does not exist."""
    net = _disc_net()
    obs, state, act = make_inputs(net, 2)
    msg = _problems(logo_step, net.meta, net.step_weights(), obs, state.long(), act)
    assert "- state must be floating point, got torch.int64" in msg


def test_inputs_of_another_dtype_than_the_network_are_rejected():
    """float64 inputs to a float32 network are refused with both dtypes named: mutants ``w_dtype is None and``
    and ``problems.append(None)`` dropped the check (a TypeError or a silent upcast)."""
    net = _disc_net()
    obs, state, act = make_inputs(net, 3)
    msg = _problems(logo_step, net.meta, net.step_weights(), obs.double(), state.double(), act)
    assert "- obs dtype torch.float64 != network dtype torch.float32" in msg


def test_inputs_on_another_device_than_the_weights_are_rejected():
    """Inputs on another device than the weights (here the meta device; a GPU behaves the same) are refused
    before any work: mutant ``{inputs} & {weights}`` (an empty set) and ``sorted(None)`` passed with CPU-only
    tests."""
    net = _disc_net()
    obs, state, act = (t.to("meta") for t in make_inputs(net, 3))
    msg = _problems(logo_step, net.meta, net.step_weights(), obs, state, act)
    assert "- all tensors must be on one device, got ['cpu', 'meta']" in msg


def test_an_explicit_backend_request_is_honoured_with_autograd_on(monkeypatch):
    """With autograd on but nothing requiring grad (frozen weights, plain inputs) the step still goes through
    the op, so an explicit LOGO_FAST_BACKEND=triton on a model the Triton paths do not cover says why it cannot
    run; mutant ``is_grad_enabled() or any(requires_grad)`` sent every grad-mode call to the reference instead."""
    net = _disc_net(pool="attention")
    obs, state, act = make_inputs(net, 3)
    w = net.requires_grad_(False).step_weights()
    assert torch.is_grad_enabled()
    monkeypatch.setenv("LOGO_FAST_BACKEND", "triton")
    with pytest.raises(BackendUnavailableError, match="pool='attention'"):
        logo_step(net.meta, w, obs, state, act)
    monkeypatch.setenv("LOGO_FAST_BACKEND", "torch")
    out = logo_step(net.meta, w, obs, state, act)
    assert not out["u"].requires_grad


# ---- state_disagreement -----------------------------------------------------------------------
def test_state_disagreement_names_the_non_tensor_argument():
    """mutant ``("XXdedXX", ded)``: the message named no argument the user passed."""
    msg = _problems(state_disagreement, torch.zeros(2, 3), [[0.0] * 3] * 2, torch.ones(3))
    assert "ded must be a torch.Tensor, got list" in msg


def test_state_disagreement_says_the_expected_inv_std_size():
    """The inv_std message gives S (the last dim of aux), not B: mutant ``aux.shape[-2]`` said (5,) for aux
    (5, 3)."""
    msg = _problems(state_disagreement, torch.zeros(5, 3), torch.zeros(5, 3), torch.ones(4))
    assert "inv_std must be (S,) = (3,), got (4,)" in msg
