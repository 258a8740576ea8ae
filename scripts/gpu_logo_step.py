"""The GPU part of issue 9's logo_step work: correctness on the device, the kernels' resource use, the benchmark.

    python scripts/gpu_logo_step.py                 # checks + headline grid (a few minutes)
    python scripts/gpu_logo_step.py --full          # checks + the whole grid of bench/bench_logo_step.py
    python scripts/gpu_logo_step.py --checks-only

Needs only torch (>= 2.11), Triton (3.6-3.9) and a CUDA GPU: no tyro, h5py, rich or the compiled
extension (the networks are built here from random tensors in the StepWeights layout, so
logo_fast.model is not imported; the ensemble provider is measured only if it imports).

1. correctness: the fused and two-kernel Triton paths vs the float64 reference on the GPU, fp32 and
   bf16, on awkward shapes (N = 1, 3, 6, 27; odd sizes; batch 1; strided inputs; padded agents);
2. the compiled kernels' registers, spills and shared memory as this GPU runs them;
3. the benchmark (providers side by side, bf16): ms, rows/s, TFLOP/s, GB/s, fraction of the bf16
   peak, next to the roofline prediction of bench/bench_logo_step.py's docstring.

Writes ${OUT:-bench/results}/logo_step_<device>.json after every configuration (a time-out still
leaves the finished rows) and exits 1 if a correctness check fails.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_logo_step import (  # noqa: E402
    FULL,
    PEAK,
    SHAPES,
    environment,
    min_bytes,
    print_table,
    provider_fn,
    roofline,
    step_flops,
    time_ms,
    write_json,
)

from logo_fast.reference import logo_step as ref  # noqa: E402

TOL = {torch.float32: 2e-4, torch.bfloat16: 8e-2}  # atol = rtol, vs the float64 reference
# (N, D, S, n_actions, act_dim, H, L, E, batch, strided)
CHECKS = [(1, 1, 1, 0, 1, 16, 16, 0, 33, False), (3, 5, 7, 4, 0, 32, 16, 4, 1, False),
          (6, 9, 13, 0, 3, 64, 32, 3, 257, True), (27, 3, 5, 30, 0, 32, 16, 2, 100, False),
          (27, 60, 216, 30, 0, 256, 64, 8, 300, True), (3, 64, 256, 0, 8, 128, 64, 8, 77, False)]
HEADLINE = [(27, 256, 65536), (27, 256, 262144), (27, 256, 4096), (27, 128, 65536), (6, 256, 65536),
            (3, 256, 65536)]


def random_step(N, D, S, n_actions, act_dim, H, L, E, seed=0, hetero=True) -> tuple[ref.StepMeta, ref.StepWeights]:
    """A LOGO step's meta and weights in LogoNet's layout (shared weights, layers=2), random but valid."""
    g = torch.Generator().manual_seed(seed)
    A = N * (n_actions or act_dim)

    def layers(dims):
        ws, bs = [], []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            bound = 1.0 / math.sqrt(a)
            ws.append((torch.rand(1, a, b, generator=g) * 2 - 1) * bound)
            bs.append((torch.rand(1, b, generator=g) * 2 - 1) * bound)
        return ref.Layers(ws, bs)

    obs_mask = torch.ones(N, D)
    if hetero:
        for i in range(1, N):
            obs_mask[i, max(1, D - i % 3):] = 0
    std = lambda *s: torch.rand(*s, generator=g) + 0.5  # noqa: E731
    live = lambda *s: (torch.rand(*s, generator=g) > 0.2).float()  # noqa: E731
    state_std = std(S)
    empty = torch.zeros(0)
    cont = n_actions == 0
    w = ref.StepWeights(
        obs_mean=torch.randn(N, D, generator=g), obs_std=std(N, D), obs_mask=obs_mask,
        dobs_mean=torch.randn(N, D, generator=g) * 0.1, dobs_std=std(N, D), obs_target_mask=obs_mask * live(N, D),
        state_mean=torch.randn(S, generator=g), state_std=state_std, dstate_mean=torch.randn(S, generator=g) * 0.1,
        dstate_std=std(S), u_scale=live(S) / state_std, reward_mean=torch.randn(1, generator=g), reward_std=std(1),
        action_mean=torch.randn(N, act_dim, generator=g) if cont else empty,
        action_std=std(N, act_dim) if cont else empty, act_mask=torch.ones(N, act_dim) if cont else empty,
        embed=torch.randn(N, E, generator=g), encoder=layers([D + A + S + E, H, H, L]), obs_head=layers([L, H, D]),
        aux_encoder=ref.Layers([], []), pool_query=empty, aux_head=layers([L, H, S]),
        ded_trunk=layers([N * 2 * D, H, H]), ded_state=layers([H, S]), ded_outcome=layers([H, 2 + N * n_actions]),
    )
    meta = ref.StepMeta(n_agents=N, obs_dim=D, state_dim=S, n_actions=n_actions, act_dim=act_dim if cont else 1,
                        predict_delta=True, pool="mean", context="none")
    return meta, w


def cast(w: ref.StepWeights, device, dtype) -> ref.StepWeights:
    def c(x):
        if isinstance(x, ref.Layers):
            return ref.Layers([c(t) for t in x.weights], [c(t) for t in x.biases])
        return x.to(device, dtype)

    return ref.StepWeights(*(c(x) for x in w))


def step_inputs(meta: ref.StepMeta, w: ref.StepWeights, B: int, device, dtype, strided=False, seed=1):
    g = torch.Generator().manual_seed(seed)
    N, D, S = meta.n_agents, meta.obs_dim, meta.state_dim
    obs = (torch.randn(D, B, N, generator=g).permute(1, 2, 0) if strided else torch.randn(B, N, D, generator=g))
    obs = obs * w.obs_mask.cpu()
    state = torch.randn(S, B, generator=g).t() if strided else torch.randn(B, S, generator=g)
    if meta.n_actions:
        act = torch.randint(0, meta.n_actions, (B, 2 * N), generator=g)[:, ::2 if strided else 1][:, :N]
        act = act.to(device)
    else:
        act = torch.randn(B, N, meta.act_dim, generator=g).to(device, dtype)
    return obs.to(device, dtype), state.to(device, dtype), act


def run_checks(device, cases=CHECKS) -> list[dict]:
    from logo_fast.kernels.global_aggregate import logo_step_two_kernel
    from logo_fast.kernels.logo_step import logo_step_fused

    out = []
    for case in cases:
        *dims, B, strided = case
        meta, w = random_step(*dims)
        w64 = cast(w, device, torch.float64)
        for dtype in (torch.float32, torch.bfloat16):
            wd = cast(w, device, dtype)
            obs, state, act = step_inputs(meta, wd, B, device, dtype, strided)
            with torch.no_grad():
                want = ref.logo_step(meta, w64, obs.double(), state.double(), act if meta.n_actions else act.double())
                for name, fn in (("fused", logo_step_fused), ("two_kernel", logo_step_two_kernel)):
                    row = {"check": name, "case": dict(zip("N D S n_actions act_dim H L E".split(), dims, strict=True)),
                           "batch": B, "strided": strided, "dtype": str(dtype).replace("torch.", "")}
                    try:
                        got = fn(meta, wd, obs, state, act)
                        if device.type == "cuda":
                            torch.cuda.synchronize()
                        errs = {}
                        for k, v in want.items():
                            if v is None:
                                continue
                            diff = (got[k].double() - v).abs()
                            errs[k] = float((diff / (TOL[dtype] + TOL[dtype] * v.abs())).max()) if diff.numel() else 0.0
                        worst = max(errs.values())
                        row |= {"worst_err_over_tol": worst, "ok": bool(worst <= 1.0), "per_output": errs}
                    except Exception as err:  # noqa: BLE001 - report and go on to the next check
                        row |= {"ok": False, "error": f"{type(err).__name__}: {err}"[:2000]}
                    out.append(row)
                    print(f"check {name:<10} {row['dtype']:<8} {row['case']} B={B} strided={strided}: "
                          f"{'ok' if row['ok'] else 'FAIL'} {row.get('worst_err_over_tol', row.get('error'))}",
                          flush=True)
    return out


def device_name(device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (Triton interpreter smoke run)"


def resources() -> dict:
    from logo_fast.kernels.logo_step import LAST_COMPILED

    rep = {}
    for name, k in LAST_COMPILED.items():
        if k is None:
            continue
        rep[name] = {"registers": getattr(k, "n_regs", None), "spills": getattr(k, "n_spills", None),
                     "shared_bytes": int(getattr(k.metadata, "shared", -1)),
                     "num_warps": int(getattr(k.metadata, "num_warps", -1))}
    return rep


def ensemble_predict_for(meta, H, device, dtype):
    """EnsembleNet.predict at LOGO's per-member parameter count, if logo_fast.model imports here."""
    try:
        from bench_logo_step import build, spec_for

        spec = spec_for(meta.n_agents)
        logo, ens = build(spec, H)
        return ens.to(device, dtype).predict, ""
    except Exception as err:  # noqa: BLE001 - optional provider
        return None, f"n/a (ensemble not importable here: {type(err).__name__})"


def run_bench(configs, device, dtype, providers, deadline, payload, path) -> None:
    elem = torch.tensor([], dtype=dtype).element_size()
    for N, H, B in configs:
        if time.monotonic() > deadline:
            payload["skipped_for_time"].append([N, H, B])
            continue
        D, S, nA = SHAPES[N]
        meta, w = random_step(N, D, S, nA, 0, H, 64, 8, hetero=False)
        w = cast(w, device, dtype)
        args = step_inputs(meta, w, B, device, dtype)
        n_params = sum(t.numel() for t in payload_tensors(w))
        flops = step_flops(meta, H, 64) * B
        nbytes = min_bytes(meta, n_params, B, elem)
        roof = roofline(flops, nbytes)
        ens_predict, ens_why = ensemble_predict_for(meta, H, device, dtype) if "ensemble" in providers else (None, "")
        rows = []
        for p in providers:
            row = {"provider": p, "agents": N, "hidden": H, "latent": 64, "batch": B,
                   "dtype": str(dtype).replace("torch.", ""), "device": device_name(device),
                   "flops": flops, "min_bytes": nbytes, **{f"roofline_{k}": v for k, v in roof.items()}}
            if p == "compile" and (N, H, B) != configs[0] and not payload["full"]:
                row["status"] = "skipped (compile only at the headline config; --full for all)"
                payload["rows"].append(row)
                rows.append(row)
                continue
            try:
                fn, why = provider_fn(p, meta, w, ens_predict, device)
                if p == "ensemble" and fn is None:
                    why = ens_why
                if fn is None:
                    row["status"] = why
                else:
                    ms = time_ms(fn, args, device)
                    row |= {"status": "ok", "ms": ms, "rows_per_s": B / (ms / 1e3),
                            "tflops": flops / (ms / 1e3) / 1e12, "gbs": nbytes / (ms / 1e3) / 1e9,
                            "frac_peak_bf16": flops / (ms / 1e3) / 1e12 / PEAK["bf16_tflops"],
                            "vs_roofline": roof["t_min_ms"] / ms}
            except torch.OutOfMemoryError:
                row["status"] = "OOM"
            except Exception as err:  # noqa: BLE001 - one provider failing must not lose the others
                row["status"] = f"error: {type(err).__name__}: {err}"[:500]
            if device.type == "cuda":
                torch.cuda.empty_cache()
            payload["rows"].append(row)
            rows.append(row)
        print_table(rows)
        payload["resources"][f"N={N} H={H}"] = resources()
        write_json(path, payload)


def payload_tensors(w: ref.StepWeights):
    for x in w[16:]:
        if isinstance(x, ref.Layers):
            yield from x.weights
            yield from x.biases
        else:
            yield x


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the whole grid (N x hidden x batch), compile at each")
    parser.add_argument("--checks-only", action="store_true")
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting new configurations after this")
    parser.add_argument("--interpret-smoke", action="store_true",
                        help="no GPU: two checks under TRITON_INTERPRET=1 and a tiny CPU table (so it cannot rot)")
    parser.add_argument("--providers", nargs="*",
                        default=["eager", "reference", "compile", "triton_two_kernel", "triton_fused", "ensemble"])
    args = parser.parse_args()
    if args.interpret_smoke:
        os.environ["TRITON_INTERPRET"] = "1"  # before any kernel module is imported
        device = torch.device("cpu")
    elif not torch.cuda.is_available():
        print("gpu_logo_step.py needs a CUDA GPU visible to torch", file=sys.stderr)
        return 2
    else:
        device = torch.device("cuda")
    start = time.monotonic()
    name = device_name(device) if device.type == "cuda" else "interpret_smoke"
    out_dir = Path(os.environ.get("OUT") or ROOT / "bench" / "results")
    path = out_dir / f"logo_step_{name.replace(' ', '_')}.json"
    payload = {"environment": environment() | {"device": name}, "full": args.full, "checks": [], "rows": [],
               "resources": {}, "skipped_for_time": [], "command": " ".join(sys.argv)}
    payload["checks"] = run_checks(device, CHECKS[:2] if args.interpret_smoke else CHECKS)
    payload["resources"]["checks"] = resources()
    failed = [c for c in payload["checks"] if not c["ok"]]
    write_json(path, payload)
    if args.interpret_smoke:
        run_bench([(3, 16, 8)], device, torch.float32, ["eager", "reference", "triton_fused"], start + 600, payload,
                  path)
    elif not args.checks_only:
        configs = ([(n, h, b) for n in FULL["agents"] for h in FULL["hidden"] for b in FULL["batch"]] if args.full
                   else HEADLINE)
        if args.full:  # headline first, so a time-out keeps it
            configs = HEADLINE[:1] + [c for c in configs if c != HEADLINE[0]]
        run_bench(configs, device, torch.bfloat16, args.providers, start + args.budget_s, payload, path)
    payload["wall_s"] = time.monotonic() - start
    write_json(path, payload)
    print(f"wrote {path}; {len(failed)} failed check(s); {payload['wall_s']:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
