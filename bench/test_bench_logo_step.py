"""pytest-benchmark providers of one LOGO step, side by side (the functions of bench/bench_logo_step.py).

Default sizes are tiny, so ``pytest bench/ --benchmark-disable`` (CI) runs each provider once as a
smoke test; ``LOGO_FAST_BENCH_FULL=1 pytest bench/test_bench_logo_step.py --benchmark-enable`` runs
N = 27, hidden 128, 1024 rows (CPU) or 65536 rows, hidden 256 (GPU). The grid, the roofline
prediction and the table are in bench/bench_logo_step.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_logo_step import (  # noqa: E402
    PROVIDERS,
    build,
    eager_concat_step,
    inputs,
    provider_fn,
    spec_for,
)

from logo_fast.reference import logo_step as ref  # noqa: E402

FULL = os.environ.get("LOGO_FAST_BENCH_FULL", "0") == "1"
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
DTYPE = torch.bfloat16 if DEVICE.type == "cuda" else torch.float32
if FULL:
    N, H, B = 27, (256 if DEVICE.type == "cuda" else 128), (65536 if DEVICE.type == "cuda" else 1024)
else:
    N, H, B = 3, 16, 8


@pytest.fixture(scope="module")
def models():
    spec = spec_for(N, shapes=None if FULL else {3: (5, 7, 4)})
    logo, ens = build(spec, H, latent=16 if not FULL else 64, embed=4 if not FULL else 8)
    return spec, logo.to(DEVICE, DTYPE), ens.to(DEVICE, DTYPE)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_logo_step(benchmark, models, provider):
    spec, logo, ens = models
    fn, why = provider_fn(provider, logo.meta, logo.step_weights(), ens.predict, DEVICE,
                          "inductor" if FULL else "aot_eager")
    if fn is None:
        pytest.skip(why)
    args = inputs(spec, B, DEVICE, DTYPE)
    benchmark.group = f"logo_step N={N} H={H} B={B} {DTYPE}"
    with torch.no_grad():
        out = benchmark(fn, *args)
    assert out["next_obs"].shape == (B, spec.n_agents, spec.obs_dim)
    assert torch.isfinite(out["next_state"].float()).all()


@pytest.mark.parametrize("discrete", [True, False])
def test_eager_baseline_equals_the_reference_in_float64(discrete):
    # The "eager" provider is the old (concatenated first layer) step: it must compute the same
    # function as the restructured reference, to float64 round-off, or the speed-up is meaningless.
    spec = spec_for(4, discrete=discrete, shapes={4: (6, 9, 5)})
    logo, _ = build(spec, 32, latent=16, embed=3, ensemble=False)
    logo = logo.double()
    obs, state, act = inputs(spec, 11, "cpu", torch.float64)
    with torch.no_grad():
        want = ref.logo_step(logo.meta, logo.step_weights(), obs, state, act)
        got = eager_concat_step(logo.meta, logo.step_weights(), obs, state, act)
    for k, v in want.items():
        if v is None:
            assert got[k] is None
        else:
            torch.testing.assert_close(got[k], v, rtol=1e-12, atol=1e-12)
