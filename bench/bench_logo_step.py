"""One LOGO world-model step, providers side by side: the old eager step, the restructured reference,
torch.compile of it, the Triton two-kernel and fused paths, and the 7-member ensemble's step.

Providers (same weights, same inputs, one run):
  eager              the step as it was before the split algebra (HEAD's LogoNet.local/deduce): the
                     encoder's first layer over concat([o_i, one-hot joint action, s, e_i]) per agent
                     (bench-local ``eager_concat_step``; equal to the reference to float64 round-off)
  reference          logo_fast.reference.logo_step.logo_step (split first layer, gather of action rows)
  compile            torch.compile of the reference
  triton_two_kernel  kernels/local_predict.py + kernels/global_aggregate.py (GPU only)
  triton_fused       kernels/logo_step.py, one kernel per tile of rows (GPU only)
  ensemble           EnsembleNet.predict: 7 members at LOGO's parameter count per member (MOPO-style)

Shapes: N agents with SMAC-like sizes, N=3: D=18, S=54, 9 actions; N=6: D=32, S=96, 12 actions;
N=27: D=60, S=216, 30 actions (obs trimmed from 27m_vs_30m's 285 so one agent's obs fits one tile);
latent 64, agent embedding 8, layers 2, hidden in {128, 256}, batch in {4k, 64k, 256k}.

FLOPs are the restructured step's matmuls (2 x multiply-adds; the minimum any provider must do).
Minimum bytes: inputs + outputs once (obs, state, actions as int64 indices; next obs, next/aux
state, reward, termination, avail logits, u) + every weight once, at the run's element size.

Roofline prediction, written before measuring (H100 SXM, bf16: 989 TFLOP/s dense, 3.35 TB/s HBM;
ridge 295 FLOP/byte; every configuration is compute-bound, so the bound is FLOPs / peak):

    N   H    batch      GFLOP   MB(min)  FLOP/B  bound    t_min(ms)
    3   128     4k       1.43      2.8     514  compute     0.0014
    3   128    64k      22.93     41.1     558  compute     0.0232
    3   128   256k      91.74    163.8     560  compute     0.0928
    3   256     4k       3.94      3.2    1250  compute     0.0040
    3   256    64k      63.05     41.5    1520  compute     0.0638
    3   256   256k     252.20    164.2    1536  compute     0.2550
    6   128     4k       3.00      6.7     448  compute     0.0030
    6   128    64k      47.95    101.4     473  compute     0.0485
    6   128   256k     191.80    404.6     474  compute     0.1939
    6   256     4k       7.87      7.2    1096  compute     0.0080
    6   256    64k     125.96    101.9    1236  compute     0.1274
    6   256   256k     503.85    405.1    1244  compute     0.5095
    27  128     4k      15.77     41.0     385  compute     0.0160
    27  128    64k     252.40    631.9     399  compute     0.2552
    27  128   256k    1009.59   2522.9     400  compute     1.0208
    27  256     4k      39.07     42.7     915  compute     0.0395
    27  256    64k     625.05    633.6     986  compute     0.6320
    27  256   256k    2500.21   2524.6     990  compute     2.5280

Expected, not the bound: the fused kernel's tiles are small (BLOCK_B = 16-32 rows, mma rather than
128-row wgmma tiles, 255 registers a thread so one 8-warp block per SM) and it re-reads each weight
tile from L2 for every row tile, so a realistic target is 15-30 % of the bf16 peak, i.e. roughly
2-4 ms for N=27, H=256 at 64k rows (bound 0.63 ms), versus the eager step's ~15 launches with
(B, N, H) activations and, at N=27, a (B, N, 1094) concatenated encoder input through HBM.
Measured numbers go to bench/results/logo_step_<device>.json.

    python bench/bench_logo_step.py --quick              # CPU: small sizes, table in seconds
    python bench/bench_logo_step.py --cpu-goals          # CPU, one thread: N=27 ratios (issue 9)
    python bench/bench_logo_step.py                      # full grid (GPU)
    python scripts/gpu_logo_step.py                      # on a lent GPU: tests + headline grid, JSON

pytest-benchmark providers (bench/test_bench_logo_step.py) run the same functions at tiny sizes.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

# logo_fast.model (and its dataset dependencies) is imported where the networks are built, so
# scripts/gpu_logo_step.py can reuse this module's step, cost model and timer with only torch + Triton.
from logo_fast.reference import logo_step as ref  # noqa: E402

PROVIDERS = ("eager", "reference", "compile", "triton_two_kernel", "triton_fused", "ensemble")
SHAPES = {3: (18, 54, 9), 6: (32, 96, 12), 27: (60, 216, 30)}  # N -> (obs_dim, state_dim, n_actions)
FULL = {"agents": (3, 6, 27), "batch": (4096, 65536, 262144), "hidden": (128, 256)}
QUICK = {"agents": (3, 6, 27), "batch": (256,), "hidden": (128,)}
TINY = {"agents": (3,), "batch": (8,), "hidden": (16,)}
PEAK = {"bf16_tflops": 989.0, "hbm_tbs": 3.35, "device": "H100 SXM (spec)"}
LATENT, EMBED = 64, 8


# ---- models -------------------------------------------------------------------------------------


def spec_for(n_agents: int, discrete: bool = True, shapes: dict | None = None):
    """The benchmark's DatasetSpec for N agents (SHAPES; continuous: 3 action features per agent)."""
    from logo_fast.data.schema import DatasetSpec

    D, S, nA = (shapes or SHAPES).get(n_agents, (5, 7, 4))
    if discrete:
        return DatasetSpec(n_agents=n_agents, obs_dim=D, state_dim=S, action_type="discrete", n_actions=nA)
    return DatasetSpec(n_agents=n_agents, obs_dim=D, state_dim=S, action_type="continuous", act_dim=3)


def _randomise(net: torch.nn.Module, g: torch.Generator) -> None:
    """Random weights and valid random normalisers (a trained model's statistics are not needed to time it)."""
    net.reset_parameters(g)
    with torch.no_grad():
        for name, b in net.named_buffers():
            if not b.dtype.is_floating_point:
                continue
            if name.endswith("std"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif name.endswith("mean"):
                b.copy_(torch.randn(b.shape, generator=g))


def build(spec, hidden: int, latent: int = LATENT, embed: int = EMBED, seed: int = 0, ensemble: bool = True):
    """(LogoNet, EnsembleNet or None): LOGO and the 7-member ensemble (each member at LOGO's parameter
    count) with seeded random weights."""
    from logo_fast.model.config import WorldModelConfig
    from logo_fast.model.networks import EnsembleNet, LogoNet, matched_hidden

    cfg = WorldModelConfig(hidden=hidden, latent=latent, agent_embed=embed)
    g = torch.Generator().manual_seed(seed)
    logo = LogoNet(spec, cfg)
    _randomise(logo, g)
    ens = None
    if ensemble:
        ens = EnsembleNet(spec, cfg, matched_hidden(spec, cfg, "member"))
        _randomise(ens, g)
    return logo.eval(), (ens.eval() if ens is not None else None)


def inputs(spec, B: int, device, dtype, seed: int = 1):
    """obs (B, N, D) with padding 0, state (B, S), actions (B, N) int64 | (B, N, act_dim), seeded."""
    g = torch.Generator().manual_seed(seed)
    obs = (torch.randn(B, spec.n_agents, spec.obs_dim, generator=g) * torch.as_tensor(spec.obs_mask()))
    state = torch.randn(B, spec.state_dim, generator=g)
    if spec.discrete:
        act = torch.randint(0, spec.n_actions, (B, spec.n_agents), generator=g).to(device)
    else:
        act = torch.randn(B, spec.n_agents, spec.act_dim, generator=g).to(device, dtype)
    return obs.to(device, dtype), state.to(device, dtype), act


# ---- the old eager step (HEAD's LogoNet.local / deduce structure) --------------------------------


def eager_concat_step(meta: ref.StepMeta, w: ref.StepWeights, obs, state, actions) -> dict:
    """The step before the split algebra: every agent's encoder input is the concatenation
    [o_i, one-hot joint action, s, e_i] (N copies of the action and state), one matmul each layer.
    A step from a real state: a hybrid model runs its delta head."""
    meta, w = ref.resolve_state_form(meta, w, state_is_prediction=False)
    if meta.state_target != "delta":
        raise ValueError(f"eager_concat_step states the delta form only, not {meta.state_target!r}")
    D = meta.obs_dim
    obs_n, state_n, act = ref.normalise(meta, w, obs, state, actions)
    B, N, _ = obs_n.shape
    a_in = ref.joint_action_onehot(meta, act, obs_n.dtype)
    parts = [obs_n, a_in[:, None].expand(B, N, -1), state_n[:, None].expand(B, N, -1)]
    if w.embed.shape[-1]:
        parts.append(w.embed.expand(B, N, -1))
    z = ref.mlp(w.encoder, torch.cat(parts, -1))
    head = ref.mlp(w.obs_head, z)
    aux = ref.mlp(w.aux_head, ref.pool_latents(meta, z, w.pool_query))
    mu = head[..., :D] * w.obs_target_mask
    next_obs = (obs + w.dobs_mean + w.dobs_std * mu) * w.obs_mask
    next_obs_n = (next_obs - w.obs_mean) / w.obs_std * w.obs_mask
    s, r, t, a = ref.deduce(meta, w, mu, next_obs_n, state_n, act)
    next_state = state + w.dstate_mean + w.dstate_std * s
    aux_state = state + w.dstate_mean + w.dstate_std * aux
    u = torch.linalg.vector_norm((aux_state - next_state) * w.u_scale, dim=-1)
    return {"next_obs": next_obs, "next_state": next_state, "aux_state": aux_state,
            "reward": w.reward_mean + w.reward_std * r, "term_logit": t, "avail_logits": a, "u": u}


# ---- analytic cost --------------------------------------------------------------------------------


def step_flops(meta: ref.StepMeta, hidden: int, latent: int = LATENT) -> int:
    """Matmul FLOPs per row of the restructured step (2 x multiply-adds)."""
    N, D, S, H, L = meta.n_agents, meta.obs_dim, meta.state_dim, hidden, latent
    n_out = 2 + N * meta.n_actions
    ctx = S * H + (0 if meta.n_actions else N * meta.act_dim * H)
    agent = D * H + H * H + H * L + L * H + H * D + 2 * D * H
    glob = L * H + H * S + H * H + H * S + H * n_out
    return 2 * (ctx + N * agent + glob)


def min_bytes(meta: ref.StepMeta, n_params: int, B: int, elem: int) -> int:
    """Inputs + outputs once per row, every weight once (``n_params`` of ``elem`` bytes)."""
    N, D, S = meta.n_agents, meta.obs_dim, meta.state_dim
    act = N * 8 if meta.n_actions else N * meta.act_dim * elem
    row = (N * D + S) * elem + act + (N * D + 2 * S + 3 + N * meta.n_actions) * elem
    return B * row + n_params * elem


def roofline(flops: float, nbytes: float) -> dict:
    t_c = flops / (PEAK["bf16_tflops"] * 1e12)
    t_m = nbytes / (PEAK["hbm_tbs"] * 1e12)
    return {"t_min_ms": 1e3 * max(t_c, t_m), "bound": "compute" if t_c >= t_m else "memory",
            "intensity": flops / nbytes}


# ---- providers ------------------------------------------------------------------------------------


def provider_fn(name: str, meta: ref.StepMeta, w: ref.StepWeights, ensemble_predict, device: torch.device,
                compile_backend: str = "inductor"):
    """-> (callable(obs, state, act) or None, reason when None)."""
    if name == "eager":
        return functools.partial(eager_concat_step, meta, w), ""
    if name == "reference":
        return functools.partial(ref.logo_step, meta, w), ""
    if name == "compile":
        return torch.compile(functools.partial(ref.logo_step, meta, w), backend=compile_backend, dynamic=False), ""
    if name == "ensemble":
        return (ensemble_predict, "") if ensemble_predict is not None else (None, "n/a (not built)")
    if name.startswith("triton"):
        if device.type != "cuda":
            return None, "n/a (no GPU)"
        from logo_fast.kernels.global_aggregate import logo_step_two_kernel
        from logo_fast.kernels.logo_step import logo_step_fused

        from logo_fast.ops.logo_step import step_path

        path, why = step_path(meta, w, w.encoder.weights[0].dtype)
        want = "fused" if name == "triton_fused" else "two_kernel"
        if path == "reference":
            return None, f"n/a ({why})"
        if want == "fused" and path != "fused":
            return None, f"n/a ({why})"
        fn = logo_step_fused if want == "fused" else logo_step_two_kernel
        return functools.partial(fn, meta, w), ""
    raise ValueError(f"unknown provider {name!r}; expected one of {PROVIDERS}")


def time_ms(fn, args, device: torch.device, min_time: float = 0.2, max_reps: int = 50) -> float:
    """Median milliseconds per call (GPU: triton.testing.do_bench; CPU: perf_counter repetitions)."""
    with torch.no_grad():
        if device.type == "cuda":
            import triton

            return float(triton.testing.do_bench(lambda: fn(*args), quantiles=[0.5, 0.2, 0.8])[0])
        fn(*args)  # warm-up (and compilation)
        times, start = [], time.perf_counter()
        while len(times) < 3 or (time.perf_counter() - start < min_time and len(times) < max_reps):
            t0 = time.perf_counter()
            fn(*args)
            times.append(time.perf_counter() - t0)
        return 1e3 * statistics.median(times)


def time_providers_cpu(fns: dict, args, min_time: float, min_reps: int = 3, max_reps: int = 50) -> dict[str, float]:
    """Median ms per call of every provider, measured round-robin (one call of each in turn), so that
    load from other processes on a shared CPU hits every provider alike and the ratios stay fair."""
    times = {p: [] for p in fns}
    with torch.no_grad():
        for fn in fns.values():
            fn(*args)  # warm-up (and compilation)
        start = time.perf_counter()
        while True:
            for p, fn in fns.items():
                t0 = time.perf_counter()
                fn(*args)
                times[p].append(time.perf_counter() - t0)
            n = len(next(iter(times.values()), []))
            if n >= max_reps or (n >= min_reps and time.perf_counter() - start >= min_time * max(1, len(fns))):
                break
    return {p: 1e3 * statistics.median(t) for p, t in times.items()}


def run(grid: dict, providers, device: torch.device, dtype: torch.dtype, compile_backend: str = "inductor",
        min_time: float = 0.2, discrete: bool = True, shapes: dict | None = None) -> list[dict]:
    rows = []
    elem = torch.tensor([], dtype=dtype).element_size()
    for N in grid["agents"]:
        spec = spec_for(N, discrete, shapes)
        for H in grid["hidden"]:
            logo, ens = build(spec, H, latent=min(LATENT, max(16, H // 2)), embed=EMBED)
            logo, ens = logo.to(device, dtype), (ens.to(device, dtype) if ens is not None else None)
            L = logo.cfg.latent
            w = logo.step_weights()
            fns = {p: provider_fn(p, logo.meta, w, ens.predict if ens is not None else None, device, compile_backend)
                   for p in providers}
            n_params = sum(p.numel() for p in logo.parameters())
            for B in grid["batch"]:
                args = inputs(spec, B, device, dtype)
                flops = step_flops(logo.meta, H, L) * B
                nbytes = min_bytes(logo.meta, n_params, B, elem)
                roof = roofline(flops, nbytes)
                live = {p: fns[p][0] for p in providers if fns[p][0] is not None}
                timed = time_providers_cpu(live, args, min_time) if device.type != "cuda" else {}
                for p in providers:
                    fn, why = fns[p]
                    row = {"provider": p, "agents": N, "hidden": H, "latent": L, "batch": B,
                           "dtype": str(dtype).replace("torch.", ""), "device": device_name(device),
                           "flops": flops, "min_bytes": nbytes, **{f"roofline_{k}": v for k, v in roof.items()}}
                    if fn is None:
                        row["status"] = why
                    else:
                        try:
                            ms = timed[p] if p in timed else time_ms(fn, args, device, min_time)
                        except torch.OutOfMemoryError:
                            row["status"] = "OOM"
                            torch.cuda.empty_cache()
                        else:
                            row |= {"status": "ok", "ms": ms, "rows_per_s": B / (ms / 1e3),
                                    "tflops": flops / (ms / 1e3) / 1e12, "gbs": nbytes / (ms / 1e3) / 1e9}
                            if device.type == "cuda":
                                row["frac_peak_bf16"] = row["tflops"] / PEAK["bf16_tflops"]
                    rows.append(row)
    return rows


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def print_table(rows: list[dict]) -> None:
    head = (f"{'provider':<18} {'N':>3} {'H':>4} {'batch':>7} {'ms':>10} {'rows/s':>11} {'GFLOP':>9} {'MB':>8} "
            f"{'TFLOP/s':>8} {'GB/s':>8} {'%peak':>6} {'H100 roof ms':>12}")
    print(head)
    print("-" * len(head))
    for r in rows:
        common = (f"{r['provider']:<18} {r['agents']:>3} {r['hidden']:>4} {r['batch']:>7} ")
        tail = f"{r['flops'] / 1e9:>9.3f} {r['min_bytes'] / 1e6:>8.2f}"
        if r["status"] != "ok":
            print(common + f"{r['status']:>22} {tail}")
            continue
        frac = f"{100 * r['frac_peak_bf16']:>5.1f}%" if "frac_peak_bf16" in r else f"{'-':>6}"
        print(common + f"{r['ms']:>10.3f} {r['rows_per_s']:>11.3g} {tail} {r['tflops']:>8.4f} {r['gbs']:>8.2f} "
              f"{frac} {r['roofline_t_min_ms']:>12.4f}")


def ratios(rows: list[dict], base: str = "reference") -> dict[str, float]:
    """"reference/<other> N= H= B=" -> ms(reference) / ms(other), for every measured pair."""
    out = {}
    ok = {(r["provider"], r["agents"], r["hidden"], r["batch"]): r["ms"] for r in rows if r["status"] == "ok"}
    for (p, n, h, b), ms in ok.items():
        if p != base and (base, n, h, b) in ok:
            out[f"{base}/{p} N={n} H={h} B={b}"] = ok[(base, n, h, b)] / ms
    return out


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str))
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def environment() -> dict:
    import platform

    try:
        import triton

        tv = triton.__version__
    except Exception:  # noqa: BLE001
        tv = None
    return {"torch": torch.__version__, "triton": tv, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "peak_assumed": PEAK}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="LOGO step providers side by side (see the module docstring).")
    parser.add_argument("--quick", action="store_true", help="small sizes (CPU table in seconds)")
    parser.add_argument("--tiny", action="store_true", help="with --quick: the smallest sizes (the CI smoke test)")
    parser.add_argument("--cpu-goals", action="store_true",
                        help="CPU, one thread: N=27 restructured vs eager and vs ensemble (issue 9's CPU goals)")
    parser.add_argument("--providers", nargs="*", default=list(PROVIDERS))
    parser.add_argument("--agents", type=int, nargs="*", default=None)
    parser.add_argument("--batch", type=int, nargs="*", default=None)
    parser.add_argument("--hidden", type=int, nargs="*", default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default=None,
                        help="default: bfloat16 on GPU, float32 on CPU")
    parser.add_argument("--compile-backend", default="inductor")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: comparable, shared machine)")
    parser.add_argument("--min-time", type=float, default=0.2, help="CPU: seconds of repetitions per measurement")
    parser.add_argument("--json", type=Path, default=None, help="write rows + environment as JSON here")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    bad = [p for p in args.providers if p not in PROVIDERS]
    if bad:
        parser.error(f"unknown providers {bad}; choose from {PROVIDERS}")
    grid = dict(TINY if args.tiny else QUICK if args.quick else FULL)
    providers = list(args.providers)
    if args.cpu_goals:
        grid = {"agents": (27,), "batch": (1024,), "hidden": (128,)}
        providers = ["eager", "reference", "ensemble"]
    for key in ("agents", "batch", "hidden"):
        if getattr(args, key):
            grid[key] = tuple(getattr(args, key))
    rows = run(grid, providers, device, dtype, args.compile_backend, args.min_time)
    print_table(rows)
    rat = ratios(rows)
    if rat:
        print("\ntime of the restructured reference / time of the other provider (issue 9's CPU goals at N=27:"
              " reference/eager <= 0.5, reference/ensemble <= 0.25):")
        for k, v in rat.items():
            print(f"  {k}: {v:.3f}")
    if args.json:
        write_json(args.json, {"environment": environment(), "grid": grid, "providers": providers, "rows": rows,
                               "ratios_ms_reference_over_other": rat, "command": " ".join(sys.argv)})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

