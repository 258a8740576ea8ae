"""logo_step: the Triton kernels (fused and two-kernel, under TRITON_INTERPRET=1 on CPU) and the custom op
against the float64 reference, path selection, opcheck and fullgraph compile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from logo_fast.backend import BackendUnavailableError
from logo_fast.data.schema import DatasetSpec
from logo_fast.model.config import WorldModelConfig
from logo_fast.model.networks import LogoNet
from logo_fast.ops.logo_step import flatten_weights, logo_step, meta_ints_of, step_path, unflatten_weights
from logo_fast.reference import logo_step as ref
from tests.conftest import HAS_CUDA, triton_available

needs_triton = pytest.mark.skipif(not triton_available(), reason="Triton not installed")
DEVICE = "cuda" if HAS_CUDA else "cpu"
ROOT = Path(__file__).resolve().parents[2]

# Tolerances against the float64 reference of the same weights. bf16: every dot operand is rounded
# to bf16 (8 bits of mantissa) through five chained layers and the outputs are stored in bf16.
TOL = {torch.float32: (2e-4, 2e-4), torch.bfloat16: (8e-2, 8e-2)}

# name -> (N, D, S, n_actions, act_dim, hidden, latent, embed, heterogeneous, predict_delta, batch)
CASES = {
    "one_agent_scalar_cont": (1, 1, 1, 0, 1, 16, 16, 0, False, True, 3),
    "three_hetero_disc": (3, 5, 7, 4, 0, 32, 16, 4, True, True, 19),
    "six_hetero_cont_abs": (6, 9, 13, 0, 3, 32, 16, 3, True, False, 17),
    "many_agents_disc": (27, 3, 5, 30, 0, 16, 16, 2, False, True, 18),
    "batch_one_wide_obs": (3, 40, 33, 0, 2, 48, 24, 4, True, True, 1),
}


def make_net(N, D, S, n_actions, act_dim, hidden, latent, embed, hetero, delta, seed=0, **cfg) -> LogoNet:
    """A LogoNet with random weights and random (but valid) normalisers and masks."""
    dims = tuple(max(1, D - (i % 3)) for i in range(N)) if hetero else ()
    if hetero and dims:
        dims = (D,) + dims[1:]
    act_dims = tuple(max(1, act_dim - (i % 2)) for i in range(N)) if (hetero and not n_actions) else ()
    if act_dims:
        act_dims = (act_dim,) + act_dims[1:]
    spec = DatasetSpec(n_agents=N, obs_dim=D, state_dim=S, action_type="discrete" if n_actions else "continuous",
                       n_actions=n_actions, act_dim=act_dim, agent_obs_dims=dims, agent_act_dims=act_dims)
    net = LogoNet(spec, WorldModelConfig(hidden=hidden, latent=latent, agent_embed=embed, predict_delta=delta, **cfg))
    g = torch.Generator().manual_seed(seed)
    net.reset_parameters(g)
    with torch.no_grad():
        for name, b in net.named_buffers():
            if not b.dtype.is_floating_point:
                continue
            if name.endswith("std"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif name.endswith("mean"):
                b.copy_(torch.randn(b.shape, generator=g))
            elif name.endswith("live"):  # some constant features, so the target and u masks matter
                b.copy_((torch.rand(b.shape, generator=g) > 0.2).to(b.dtype))
    return net.eval()


def make_inputs(net: LogoNet, B: int, seed: int = 1, strided: bool = False):
    m = net.meta
    N, D, S = m.n_agents, m.obs_dim, m.state_dim
    g = torch.Generator().manual_seed(seed)
    if strided:  # non-contiguous views: permuted storage and a column slice
        obs = torch.randn(D, B, N, generator=g).permute(1, 2, 0)
        state = torch.randn(S, B, generator=g).t()
    else:
        obs = torch.randn(B, N, D, generator=g)
        state = torch.randn(B, S, generator=g)
    obs = obs * torch.as_tensor(net.spec.obs_mask())
    if m.n_actions:
        act = torch.randint(0, m.n_actions, (B, 2 * N), generator=g)
        act = act[:, ::2] if strided else act[:, :N].contiguous()
    else:
        act = torch.randn(m.act_dim, B, N, generator=g).permute(1, 2, 0) if strided else \
            torch.randn(B, N, m.act_dim, generator=g)
    return obs, state, act


def reference64(net: LogoNet, obs, state, act, state_is_prediction: bool = False) -> dict:
    net64 = LogoNet(net.spec, net.cfg).double()
    net64.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in net.state_dict().items()})
    a = act if net.meta.n_actions else act.double()
    with torch.no_grad():
        return ref.logo_step(net64.meta, net64.step_weights(), obs.double(), state.double(), a, state_is_prediction)


def assert_matches(got: dict, want: dict, dtype, n_actions: int):
    rtol, atol = TOL[dtype]
    for k, v in want.items():
        if v is None:
            assert n_actions == 0 and got[k].shape[-1] == 0
            continue
        assert got[k].shape == v.shape and got[k].dtype == dtype, k
        torch.testing.assert_close(got[k].double(), v, rtol=rtol, atol=atol, msg=lambda m, k=k: f"{k}: {m}")


def _run_kernel(path, net, obs, state, act, state_is_prediction: bool = False):
    from logo_fast.kernels.global_aggregate import logo_step_two_kernel
    from logo_fast.kernels.logo_step import logo_step_fused

    fn = logo_step_fused if path == "fused" else logo_step_two_kernel
    with torch.no_grad():
        # the kernels run single-form models; the op resolves a hybrid one the same way first
        meta, w = ref.resolve_state_form(net.meta, net.step_weights(), state_is_prediction)
        return fn(meta, w, obs, state, act)


KERNEL_GRID = ([("fused", c, torch.float32, False) for c in CASES]
               + [("fused", "three_hetero_disc", torch.float32, True), ("fused", "six_hetero_cont_abs", torch.bfloat16,
                                                                        False)]
               + [("two_kernel", "six_hetero_cont_abs", torch.float32, False),
                  ("two_kernel", "batch_one_wide_obs", torch.float32, True),
                  ("two_kernel", "three_hetero_disc", torch.bfloat16, False)])


@needs_triton
@pytest.mark.parametrize(("path", "case", "dtype", "strided"), KERNEL_GRID)
def test_triton_kernels_match_float64_reference(path, case, dtype, strided):
    *dims, B = CASES[case]
    net = make_net(*dims).to(DEVICE)
    obs, state, act = (t.to(DEVICE) for t in make_inputs(net, B, strided=strided))
    assert strided == (not obs.is_contiguous())
    want = reference64(net, obs, state, act)
    net = net.to(dtype)
    if not net.meta.n_actions:
        act = act.to(dtype)
    got = _run_kernel(path, net, obs.to(dtype), state.to(dtype), act)
    assert_matches(got, want, dtype, net.meta.n_actions)
    pad = ~torch.as_tensor(net.spec.obs_mask()).to(DEVICE)
    assert (got["next_obs"][:, pad] == 0).all(), "padded observation features must be exactly 0"


@needs_triton
@pytest.mark.parametrize("path", ["fused", "two_kernel"])
@pytest.mark.parametrize(("form", "state_is_prediction"), [("absolute", False), ("hybrid", False), ("hybrid", True)])
def test_triton_kernels_match_float64_reference_for_every_state_form(monkeypatch, path, form, state_is_prediction):
    """The absolute state head (STATE_ABSOLUTE) and a hybrid model's two heads, kernel and op vs the reference."""
    *dims, B = CASES["six_hetero_cont_abs"] if path == "two_kernel" else CASES["three_hetero_disc"]
    net = make_net(*dims, deductive_state=form).to(DEVICE)
    obs, state, act = (t.to(DEVICE) for t in make_inputs(net, B, strided=True))
    want = reference64(net, obs, state, act, state_is_prediction)
    assert_matches(_run_kernel(path, net, obs, state, act, state_is_prediction), want, torch.float32,
                   net.meta.n_actions)
    if path == "fused":  # through the op, which resolves the hybrid model itself
        monkeypatch.setenv("LOGO_FAST_BACKEND", "triton")
        with torch.no_grad():
            got = net.predict(obs, state, act, state_is_prediction=state_is_prediction)
        assert_matches(got, want, torch.float32, net.meta.n_actions)
    if form == "hybrid":  # the two heads differ, so the comparison above tells them apart
        other = reference64(net, obs, state, act, not state_is_prediction)
        assert not torch.allclose(other["next_state"], want["next_state"])


@needs_triton
def test_kernel_reads_the_actions_it_is_given():
    # A wrong gather (e.g. agent j reading agent 0's action) would still produce finite outputs:
    # changing one agent's action must change the fused step exactly as it changes the reference.
    net = make_net(*CASES["three_hetero_disc"][:-1])
    obs, state, act = make_inputs(net, 7)
    act2 = act.clone()
    act2[:, 2] = (act2[:, 2] + 1) % net.meta.n_actions
    def flat(d):
        return torch.cat([d["next_obs"].flatten(1), d["next_state"], d["reward"][:, None]], 1).double()

    d_ref = flat(reference64(net, obs, state, act2)) - flat(reference64(net, obs, state, act))
    d_got = flat(_run_kernel("fused", net, obs, state, act2)) - flat(_run_kernel("fused", net, obs, state, act))
    assert d_ref.abs().max() > 1e-3
    torch.testing.assert_close(d_got, d_ref, rtol=1e-3, atol=2e-6)


@needs_triton
def test_op_runs_the_fused_kernel_when_triton_is_requested(monkeypatch):
    net = make_net(*CASES["three_hetero_disc"][:-1])
    obs, state, act = make_inputs(net, 5)
    assert step_path(net.meta, net.step_weights())[0] == "fused"
    calls = []
    import logo_fast.kernels.logo_step as kmod

    real = kmod.logo_step_fused
    monkeypatch.setattr(kmod, "logo_step_fused", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setenv("LOGO_FAST_BACKEND", "triton")
    with torch.no_grad():
        got = net.predict(obs, state, act)
    assert calls == [1]
    assert_matches(got, reference64(net, obs, state, act), torch.float32, net.meta.n_actions)


@needs_triton
def test_op_takes_the_two_kernel_path_for_a_wide_model(monkeypatch):
    net = make_net(2, 65, 4, 3, 0, 16, 16, 2, True, True)  # obs padded to 128 > the fused limit of 64
    obs, state, act = make_inputs(net, 3)
    assert step_path(net.meta, net.step_weights())[0] == "two_kernel"
    import logo_fast.kernels.global_aggregate as gmod

    calls = []
    real = gmod.logo_step_two_kernel
    monkeypatch.setattr(gmod, "logo_step_two_kernel", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setenv("LOGO_FAST_BACKEND", "triton")
    with torch.no_grad():
        got = net.predict(obs, state, act)
    assert calls == [1]
    assert_matches(got, reference64(net, obs, state, act), torch.float32, net.meta.n_actions)


def test_op_on_cpu_is_the_reference_and_keeps_gradients():
    net = make_net(*CASES["six_hetero_cont_abs"][:-1])
    obs, state, act = make_inputs(net, 4)
    with torch.no_grad():
        got = net.predict(obs, state, act)
        want = ref.logo_step(net.meta, net.step_weights(), obs, state, act)
    assert got["avail_logits"] is None
    for k in ("next_obs", "next_state", "aux_state", "reward", "term_logit", "u"):
        assert torch.equal(got[k], want[k]), k
    # With autograd on, the step is the differentiable reference (the kernels are forward-only).
    out = net.predict(obs, state, act)
    out["u"].sum().backward()
    assert net.encoder.linears[0].weight.grad is not None


def test_step_path_says_which_path_and_why():
    base = CASES["three_hetero_disc"][:-1]
    assert step_path(make_net(*base).meta, make_net(*base).step_weights())[0] == "fused"
    for cfg, words in (({"per_agent_weights": True}, "per-agent"), ({"pool": "attention"}, "pool"),
                       ({"aux_encoder": "separate"}, "aux_encoder"), ({"deductive_context": "all"}, "context"),
                       ({"layers": 3}, "layers=3")):
        net = make_net(*base, **cfg)
        path, why = step_path(net.meta, net.step_weights())
        assert path == "reference" and words in why, (cfg, why)
    net = make_net(*base)
    assert step_path(net.meta, net.step_weights(), torch.float64)[0] == "reference"
    wide = make_net(3, 5, 7, 4, 0, 512, 16, 0, False, True)
    path, why = step_path(wide.meta, wide.step_weights())
    assert path == "two_kernel" and "hidden 512 > 256" in why
    wider = make_net(3, 5, 7, 4, 0, 1024, 16, 0, False, True)
    assert step_path(wider.meta, wider.step_weights())[0] == "reference"


def test_explicit_triton_request_on_an_unsupported_model_says_why(monkeypatch):
    net = make_net(*CASES["three_hetero_disc"][:-1], pool="attention")
    obs, state, act = make_inputs(net, 3)
    monkeypatch.setenv("LOGO_FAST_BACKEND", "triton")
    with pytest.raises(BackendUnavailableError, match="pool='attention'"), torch.no_grad():
        net.predict(obs, state, act)


def test_flatten_round_trips():
    net = make_net(*CASES["six_hetero_cont_abs"][:-1], aux_encoder="separate")
    w = net.step_weights()
    back = unflatten_weights(*flatten_weights(w))
    for a, b in zip(flatten_weights(w)[0], flatten_weights(back)[0], strict=True):
        assert a is b


@pytest.mark.parametrize(("case", "dtype", "state_is_prediction"), [("three_hetero_disc", torch.float32, False),
                                                                    ("six_hetero_cont_abs", torch.float64, True)])
def test_opcheck(case, dtype, state_is_prediction):
    net = make_net(*CASES[case][:-1]).to(dtype)
    obs, state, act = make_inputs(net, 5)
    obs, state = obs.to(dtype), state.to(dtype)
    act = act if net.meta.n_actions else act.to(dtype)
    # the default (hybrid) model as the single-form model one step runs: the op takes one form
    assert net.meta.state_target == "hybrid"
    with pytest.raises(ValueError, match="resolve a hybrid model"):
        meta_ints_of(net.meta)
    m, w = ref.resolve_state_form(net.meta, net.step_weights(), state_is_prediction)
    tensors, layout = flatten_weights(w)
    tensors = [t.detach() for t in tensors]
    args = (obs, state, act, tensors, layout, meta_ints_of(m), m.pool, m.context)
    torch.library.opcheck(torch.ops.logo_fast.logo_step.default, args)


def test_fullgraph_compile_of_the_network_step():
    net = make_net(*CASES["three_hetero_disc"][:-1])
    obs, state, act = make_inputs(net, 6)

    def step(o, s, a):
        with torch.no_grad():
            out = net.predict(o, s, a)
        return out["next_state"] + 1.0, out["u"], out["next_obs"]

    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    for got, want in zip(compiled(obs, state, act), step(obs, state, act), strict=True):
        torch.testing.assert_close(got, want)


def test_bad_input_lists_every_problem():
    net = make_net(*CASES["three_hetero_disc"][:-1])
    obs, state, act = make_inputs(net, 4)
    with pytest.raises(ValueError) as err:
        logo_step(net.meta, net.step_weights(), obs[:, :2], state[:3].double(), act.float())
    msg = str(err.value)
    assert "obs must be (B, 3, 5)" in msg and "state must be (4, 7)" in msg and "integer indices" in msg
    assert "state dtype" in msg
    with pytest.raises(ValueError, match="torch.Tensor"):
        logo_step(net.meta, net.step_weights(), obs, [1.0], act)


def test_bench_quick_runs(capsys):
    # The benchmark's --quick table must not rot: run it at tiny sizes (in-process: no second
    # torch import; aot_eager: inductor's C++ compile would take most of a minute on this CPU).
    sys.path.insert(0, str(ROOT / "bench"))
    import bench_logo_step

    assert bench_logo_step.main(["--quick", "--tiny", "--compile-backend", "aot_eager",
                                 "--threads", str(torch.get_num_threads()), "--min-time", "0"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0] for line in out.splitlines() if line.strip()}
    for provider in ("eager", "reference", "compile", "triton_fused", "triton_two_kernel", "ensemble"):
        assert provider in lines, out
    assert "n/a (no GPU)" in out or HAS_CUDA


def test_gpu_script_smoke_run(tmp_path):
    # scripts/gpu_logo_step.py is only run for real on a lent GPU: its --interpret-smoke mode runs
    # the same checks and table code on CPU so it cannot rot unnoticed.
    env = {**os.environ, "OUT": str(tmp_path)}
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_logo_step.py"), "--interpret-smoke"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    payload = json.loads((tmp_path / "logo_step_interpret_smoke.json").read_text())
    assert payload["checks"] and all(c["ok"] for c in payload["checks"])
    assert {r["provider"] for r in payload["rows"]} == {"eager", "reference", "triton_fused"}
