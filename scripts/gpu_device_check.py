"""First-run GPU check for the lent machine as it is: build, smoke, sanitizers, GPU tests, benchmarks, one table.

    python3 scripts/gpu_device_check.py            # on the GPU machine (scripts/gpu_check.sh --device)
    python3 scripts/gpu_device_check.py --dry-run  # here: every step that needs no GPU, the rest listed

Uses the interpreter it runs under (the image's python3: torch 2.11, Triton 3.6, pytest, hypothesis,
scipy; no tyro, no simulators, no package registry): nothing is installed. The extension is built in
place (LOGO_FAST_CUDA=1 LOGO_FAST_CUDA_ARCHS=90), everything runs with PYTHONPATH=., and everything is
written under ${OUT:-bench/results} in at most five files (the device tool brings back eight):

    gpu_check_log.txt        every step's command and output
    gpu_check_summary.json   one entry per step (status, seconds, figures)
    gpu_bench.json           the benchmark figures (written by the bench step)
    gpu_rollout_bench.json   eager vs CUDA-graph rollouts at horizon 15 (the bench_rollout step)
    gpu_env.json             versions, driver, backend_info()

Steps run in order of value and stop starting new ones when the time budget (--budget, 420 s) is
spent; each has its own timeout. The predictions for every figure are in scripts/gpu_predictions.md.
The last lines printed are a short table (the device tool returns the end of the output).

Internal subcommands (run by the steps): --smoke [--small] (CUDA sampler vs CPU, bit for bit),
--bench (timings), --bench-rollout (eager vs graphed rollouts), --import-check (the library and the
GPU tests import without tyro and simulators).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCKED = ("tyro", "mpe2", "mujoco", "jaxmarl", "gymnasium_robotics", "pettingzoo", "jax")
GPU_TESTS = ["tests/ops/test_weighted_sample.py", "tests/replay/test_weighted_sampler.py",
             "tests/replay/test_sampler_properties.py", "tests/replay/test_uncertainty_weighted_replay.py",
             "tests/model/test_graphed_rollout.py"]
TRITON_TESTS = ["tests/ops/test_state_disagreement.py"]


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


# ---- subcommands run inside steps ------------------------------------------------------------
def import_check() -> int:
    """Import the library and collect the GPU tests with tyro and the simulators made unimportable."""
    import importlib.abc

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked: the GPU image does not have it")
            return None

    sys.meta_path.insert(0, Block())
    import logo_fast
    from logo_fast.sampler import WeightedSampler  # noqa: F401

    print("import logo_fast ok:", logo_fast.__version__)
    import pytest

    return int(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *GPU_TESTS]))


def smoke(small: bool) -> int:
    """The CUDA sampler against the CPU one, bit for bit: build, ring extend, update, draws with/without."""
    import torch

    from logo_fast.backend import backend_info
    from logo_fast.ops.weighted_sample import backend_for
    from logo_fast.sampler import WeightedSampler, weighted_sample

    info = backend_info()
    print("cuda backend:", info["cuda"])
    if not info["cuda"]["available"] or backend_for(torch.device("cuda")) != "cuda":
        print("FAIL: the CUDA path is not the backend for CUDA tensors")
        return 1
    g = torch.Generator().manual_seed(0)
    cap = 5000 if small else 300_000
    w = torch.rand(cap + cap // 3, generator=g, dtype=torch.float64) ** 2
    w[torch.rand(w.numel(), generator=g) < 0.3] = 0.0
    cpu, gpu = WeightedSampler(cap), WeightedSampler(cap, device="cuda")
    for s in (cpu, gpu):
        s.extend(w[: cap // 2])
        s.extend(w[cap // 2 :])  # wraps
        s.update(torch.tensor([1, 2, 3, 2]), torch.tensor([5.0, 0.0, 7.0, 0.5], dtype=torch.float64))
    ok = cpu.total() == gpu.total()
    print("totals", cpu.total(), gpu.total(), "equal" if ok else "DIFFER")
    for repl, n in ((True, 4096), (False, 700), (False, 1)):
        a = cpu.sample(n, replacement=repl, generator=torch.Generator().manual_seed(3))
        b = gpu.sample(n, replacement=repl, generator=torch.Generator().manual_seed(3))
        same = b.is_cuda and torch.equal(a, b.cpu())
        print(f"sample n={n} replacement={repl}:", "identical" if same else "DIFFER")
        ok &= same
    # phase B (mass on few items) on both
    conc = torch.full((3000,), 1e-12, dtype=torch.float64)
    conc[:3] = 1.0
    a = weighted_sample(conc, 40, replacement=False, generator=torch.Generator().manual_seed(5))
    b = weighted_sample(conc.cuda(), 40, replacement=False, generator=torch.Generator().manual_seed(5))
    same = torch.equal(a, b.cpu())
    print("without replacement, concentrated mass (phase B):", "identical" if same else "DIFFER")
    ok &= same
    try:
        gpu.update(torch.tensor([0]), torch.tensor([float("nan")]))
        print("FAIL: a NaN update was accepted")
        ok = False
    except ValueError:
        pass
    torch.cuda.synchronize()
    print("SMOKE", "OK" if ok else "FAILED")
    return 0 if ok else 1


def bench(out: Path) -> int:
    """GPU figures: copy bandwidth, 1e8 tree build in GB/s, draws per call, update, determinism, zero weights."""
    import torch

    from logo_fast.ops.weighted_sample import prefix_tree_build
    from logo_fast.reference.weighted_sample import tree_layout
    from logo_fast.sampler import WeightedSampler, weighted_sample

    dev = torch.device("cuda")
    res: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}

    def timed(fn, reps: int) -> float:
        """Median seconds per call, CUDA events, after a warm-up."""
        for _ in range(3):
            fn()
        times = []
        for _ in range(reps):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) / 1e3)
        times.sort()
        return times[len(times) // 2]

    N = 100_000_000
    x = torch.rand(N, dtype=torch.float64, device=dev)
    y = torch.empty_like(x)
    t_copy = timed(lambda: y.copy_(x), 20)
    res["copy_GBps"] = 2 * x.numel() * 8 / t_copy / 1e9  # read + write
    offsets = torch.tensor([0, N])
    _, n_tree = tree_layout(offsets)
    tree = torch.empty(n_tree, dtype=torch.float64, device=dev)
    t_build = timed(lambda: prefix_tree_build(x, offsets, tree), 10)
    res["build_1e8_ms"] = t_build * 1e3
    res["build_1e8_GBps"] = (N + n_tree) * 8 / t_build / 1e9  # weights read once, tree written once
    res["build_fraction_of_copy"] = res["build_1e8_GBps"] / res["copy_GBps"]
    s = WeightedSampler(10_000_000, device=dev)
    s.extend(torch.rand(10_000_000, dtype=torch.float64, device=dev))
    gen = torch.Generator().manual_seed(0)
    for n in (256, 4096):
        res[f"draws_{n}_1e7_us"] = timed(lambda n=n: s.sample(n, generator=gen), 200) * 1e6
    res["draws_256_1e7_without_replacement_us"] = timed(lambda: s.sample(256, replacement=False, generator=gen),
                                                       50) * 1e6
    idx = torch.randint(0, 10_000_000, (256,), device=dev)
    vals = torch.rand(256, dtype=torch.float64, device=dev)
    res["update_256_1e7_us"] = timed(lambda: s.update(idx, vals), 100) * 1e6
    new = torch.rand(100_000, dtype=torch.float64, device=dev)
    res["append_1e5_1e7_us"] = timed(lambda: s.extend(new), 50) * 1e6
    # determinism: five builds of 1e7 float weights
    w7 = torch.rand(10_000_000, dtype=torch.float64, device=dev) ** 3
    off7 = torch.tensor([0, w7.numel()])
    trees = []
    for _ in range(5):
        t = torch.empty(tree_layout(off7)[1], dtype=torch.float64, device=dev)
        prefix_tree_build(w7, off7, t)
        trees.append(t)
    res["builds_bitwise_identical_5x_1e7"] = all(torch.equal(trees[0], t) for t in trees[1:])
    cpu_tree = torch.empty(tree_layout(off7)[1], dtype=torch.float64)
    prefix_tree_build(w7.cpu(), off7, cpu_tree)
    res["gpu_tree_equals_cpu_tree_1e7"] = bool(torch.equal(cpu_tree, trees[0].cpu()))
    # zero weights: 1e7 draws at 50 % zeros
    wz = torch.rand(2_000_000, dtype=torch.float64, device=dev) ** 4
    wz[torch.rand(wz.numel(), device=dev) < 0.5] = 0.0
    dz = weighted_sample(wz, 10_000_000, generator=torch.Generator().manual_seed(1))
    res["zero_weight_draws_in_1e7"] = int((wz[dz] == 0).sum())
    _write_atomic(out / "gpu_bench.json", json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return 0


def bench_rollout(out: Path) -> int:
    """Eager vs CUDA-graph rollouts (``rollout(cuda_graph=True)``) at horizon 15, batch 256 and 4096.

    A LOGO model at the default size (hidden 128, latent 64) on a 6-agent toy task, fitted for a few
    steps (statistics and clip bounds from the data), termination switched off (its logit bias
    -30) so every row runs the whole horizon, as most rows of a good model do. Policy: each
    agent's first available action (on the device). Host-inclusive wall time per rollout (what a
    training loop waits for), median of several, after a warm-up: eager loop; graphed one-shot
    (``rollout(cuda_graph=True)``, warm-up and capture included); graphed replay-only (a kept
    ``GraphedRollout``, captured once). Also checks the graphed transitions against the eager ones.
    """
    import numpy as np
    import torch

    from logo_fast.data import make_toy_dataset
    from logo_fast.model import LogoWorldModel, WorldModelConfig
    from logo_fast.model.graphed_rollout import GraphedRollout

    torch.set_num_threads(1)
    ds = make_toy_dataset(n_agents=6, n_episodes=20, episode_len=25, action_type="discrete", seed=0)
    model = LogoWorldModel(config=WorldModelConfig(device="cuda", max_steps=20, epochs=1)).fit(ds, progress=False)
    with torch.no_grad():
        model.net.ded_outcome.bias[0, 1] = -30.0

    def policy(obs, avail):
        return avail.long().argmax(-1)

    def wall(fn, reps: int) -> float:
        fn()
        times = []
        for _ in range(reps):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        times.sort()
        return times[len(times) // 2]

    res: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "horizon": 15,
                 "n_agents": 6, "hidden": model.config.hidden}
    for B in (256, 4096):
        starts = np.arange(B) % len(ds)
        eager = model.rollout(policy, starts=starts, horizon=15)
        graphed = model.rollout(policy, starts=starts, horizon=15, cuda_graph=True)
        same = list(eager) == list(graphed) and all(eager[k].shape == graphed[k].shape for k in eager)
        res[f"rollout_{B}_same_shapes"] = bool(same)
        res[f"rollout_{B}_transitions"] = int(eager["u"].numel())  # B * 15 when no row stops
        if same:
            res[f"rollout_{B}_max_abs_diff_next_obs"] = float((eager["next_obs"] - graphed["next_obs"]).abs().max())
            res[f"rollout_{B}_same_actions"] = bool(torch.equal(eager["actions"], graphed["actions"]))
        runner = GraphedRollout(model, policy, B, horizon=15)
        runner(starts)  # captures
        res[f"rollout_{B}_eager_ms"] = wall(lambda s=starts: model.rollout(policy, starts=s, horizon=15), 10) * 1e3
        res[f"rollout_{B}_graph_oneshot_ms"] = wall(
            lambda s=starts: model.rollout(policy, starts=s, horizon=15, cuda_graph=True), 5) * 1e3
        res[f"rollout_{B}_graph_replay_ms"] = wall(lambda s=starts, r=runner: r(s), 10) * 1e3
        res[f"rollout_{B}_speedup_replay"] = res[f"rollout_{B}_eager_ms"] / res[f"rollout_{B}_graph_replay_ms"]
        res[f"rollout_{B}_speedup_oneshot"] = res[f"rollout_{B}_eager_ms"] / res[f"rollout_{B}_graph_oneshot_ms"]
    _write_atomic(out / "gpu_rollout_bench.json", json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return 0 if all(res[f"rollout_{B}_same_shapes"] for B in (256, 4096)) else 1


# ---- the driver ------------------------------------------------------------------------------
class Step:
    def __init__(self, name: str, cmd: list[str], gpu: bool, timeout: int, env: dict | None = None,
                 parse=None):
        self.name, self.cmd, self.gpu, self.timeout, self.env, self.parse = name, cmd, gpu, timeout, env or {}, parse


def _sanitizer_errors(text: str) -> dict:
    m = re.search(r"ERROR SUMMARY: (\d+) error", text)
    return {"sanitizer_errors": int(m.group(1)) if m else None}


def _pytest_counts(text: str) -> dict:
    found = dict((k, int(v)) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error)", text))
    return {"pytest": found}


def steps(py: str, out: Path, build: bool) -> list[Step]:
    me = str(Path(__file__).resolve())
    sanitize = shutil.which("compute-sanitizer") or "compute-sanitizer"
    env_test = {"LOGO_FAST_TEST_GPU": "1"}
    gpu_marked = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", *GPU_TESTS]
    result = [
        Step("versions", [py, me, "--versions", "--out", str(out)], False, 60),
    ]
    if build:
        result.append(Step("build", [py, "setup.py", "build_ext", "--inplace"], False, 240,
                           {"LOGO_FAST_CUDA": "1", "LOGO_FAST_CUDA_ARCHS": "90", "MAX_JOBS": str(os.cpu_count() or 4)}))
    result += [
        Step("imports_without_tyro", [py, me, "--import-check"], False, 90),
        Step("smoke", [py, me, "--smoke"], True, 120, {"CUDA_LAUNCH_BLOCKING": "1"}),
        Step("gpu_tests", gpu_marked, True, 180, env_test, _pytest_counts),
        Step("bench", [py, me, "--bench", "--out", str(out)], True, 150),
        Step("bench_rollout", [py, me, "--bench-rollout", "--out", str(out)], True, 150),
    ]
    for tool in ("memcheck", "racecheck", "initcheck"):
        result.append(Step(f"sanitizer_{tool}", [sanitize, "--tool", tool, "--error-exitcode", "9", py, me, "--smoke",
                                                 "--small"], True, 150, {}, _sanitizer_errors))
    result.append(Step("triton_on_gpu", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TRITON_TESTS], True, 120,
                       env_test, _pytest_counts))
    return result


def versions(out: Path) -> int:
    info: dict = {"python": sys.version.split()[0], "executable": sys.executable}
    for mod in ("torch", "triton", "numpy", "scipy", "pytest", "hypothesis"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception as err:  # noqa: BLE001
            info[mod] = f"missing ({type(err).__name__})"
    import torch

    info["torch_cuda"] = torch.version.cuda
    info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    for tool, args in (("nvidia-smi", ["--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]),
                       ("nvcc", ["--version"]), ("compute-sanitizer", ["--version"])):
        exe = shutil.which(tool)
        try:
            run = subprocess.run([exe, *args], capture_output=True, text=True, timeout=30) if exe else None
            info[tool] = run.stdout.strip()[-300:] if run else "not found"
        except Exception as err:  # noqa: BLE001
            info[tool] = f"failed ({err})"
    from logo_fast.backend import backend_info

    info["backends"] = backend_info()
    _write_atomic(out / "gpu_env.json", json.dumps(info, indent=1, default=str))
    print(json.dumps(info, indent=1, default=str))
    return 0


def drive(args) -> int:
    out = Path(os.environ.get("OUT") or (ROOT / "bench" / "results"))
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    log_lines: list[str] = []
    summary: list[dict] = []
    start = time.monotonic()
    for step in steps(py, out, build=not args.no_build):
        entry: dict = {"step": step.name, "gpu": step.gpu}
        if args.dry_run and step.gpu:
            entry.update(status="dry-run", cmd=" ".join(step.cmd))
            summary.append(entry)
            continue
        if time.monotonic() - start > args.budget:
            entry.update(status="skipped (time budget)")
            summary.append(entry)
            continue
        t0 = time.monotonic()
        try:
            res = subprocess.run(step.cmd, cwd=ROOT, env={**env, **step.env}, capture_output=True, text=True,
                                 timeout=step.timeout)
            text, rc = res.stdout + res.stderr, res.returncode
        except subprocess.TimeoutExpired as err:
            text = (err.stdout or b"").decode(errors="replace") if isinstance(err.stdout, bytes) else (err.stdout or "")
            rc = "timeout"
        except FileNotFoundError as err:
            text, rc = str(err), "not found"
        entry.update(status="ok" if rc == 0 else f"FAILED ({rc})", seconds=round(time.monotonic() - t0, 1))
        if step.parse:
            entry.update(step.parse(text))
        summary.append(entry)
        log_lines += [f"===== {step.name}: {' '.join(step.cmd)} -> {entry['status']}", text[-200_000:]]
        _write_atomic(out / "gpu_check_log.txt", "\n".join(log_lines))
        _write_atomic(out / "gpu_check_summary.json", json.dumps(summary, indent=1))
        print(f"[gpu-check] {step.name}: {entry['status']} ({entry['seconds']} s)", flush=True)
    _write_atomic(out / "gpu_check_summary.json", json.dumps(summary, indent=1))
    figures = {}
    for name in ("gpu_bench.json", "gpu_rollout_bench.json"):
        bench_file = out / name
        if bench_file.is_file() and not args.dry_run:
            figures.update(json.loads(bench_file.read_text()))
    print()
    print(f"{'step':<24} {'status':<22} {'s':>6}  details")
    for e in summary:
        details = e.get("pytest") or ({"errors": e["sanitizer_errors"]} if "sanitizer_errors" in e else "")
        print(f"{e['step']:<24} {e['status']:<22} {e.get('seconds', ''):>6}  {details or ''}")
    for key in ("copy_GBps", "build_1e8_GBps", "build_fraction_of_copy", "draws_256_1e7_us", "draws_4096_1e7_us",
                "update_256_1e7_us", "builds_bitwise_identical_5x_1e7", "zero_weight_draws_in_1e7",
                "rollout_256_eager_ms", "rollout_256_graph_replay_ms", "rollout_256_speedup_replay",
                "rollout_4096_eager_ms", "rollout_4096_graph_replay_ms", "rollout_4096_speedup_replay"):
        if key in figures:
            v = figures[key]
            print(f"  {key:<34} {v:.3g}" if isinstance(v, float) else f"  {key:<34} {v}")
    failed = [e["step"] for e in summary if e["status"].startswith("FAILED")]
    print(f"results in {out}; " + (f"FAILED: {', '.join(failed)}" if failed else "no step failed"))
    return 1 if failed else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="run only the steps that need no GPU; list the others")
    ap.add_argument("--no-build", action="store_true", help="use the extension as built (skip setup.py build_ext)")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds after which no new step starts")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--small", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--bench", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--bench-rollout", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--import-check", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--versions", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.smoke:
        return smoke(args.small)
    if args.bench:
        return bench(args.out)
    if args.bench_rollout:
        return bench_rollout(args.out)
    if args.import_check:
        return import_check()
    if args.versions:
        return versions(args.out)
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
