"""Scaling of logo_fast.distributed on this machine: 1 vs 2 processes (gloo on CPU, NCCL on GPUs).

    python bench/bench_distributed.py [--steps 40] [--batch 512] [--rounds 3] [--json out.json]

launches itself under torchrun twice (``--nproc-per-node 1``, then 2) and prints:

- world-model training throughput (transitions / s) of ``fit_distributed`` at the same global
  batch, one thread per process, and the speed-up of 2 processes over 1;
- the cost of one ``ShardedWeightedSampler.sample(256)`` against the local ``WeightedSampler``
  draw it wraps, for two buffer sizes per rank: the difference is the all-gather of shard totals
  and the split, and should not grow with the buffer;
- data-parallel learner updates per second (``--learner-batch``, global): discrete MACQL at its
  default sizes drawing half real, half synthetic rows from a ``ShardedReplay`` (20 000 synthetic
  rows in all), gradients averaged by ``data_parallel``: what ``logo-fast train`` runs per update.

``--parts learner`` (or ``wm``, ``sampler``, comma-separated) measures only those.

Each launch is short (seconds; ``--steps`` bounds it). On a shared machine the numbers move with
the load: run it twice and report both. On a GPU node, ``--device cuda`` uses NCCL and one GPU per
process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from logo_fast.distributed import init_distributed

    ctx = init_distributed(timeout_s=120)
    parts = set(args.parts.split(","))
    out = {"world_size": ctx.world_size, "threads_per_process": args.threads}
    if "learner" in parts:
        out["learner"] = learner_updates(args, ctx)
    if parts & {"wm", "sampler"}:
        out.update(wm_and_sampler(args, ctx, parts))
    everyone = ctx.all_gather_object(out)
    if ctx.is_main:
        Path(args.result).write_text(json.dumps(everyone))
    if ctx.active:
        torch.distributed.destroy_process_group()


def learner_updates(args, ctx) -> dict:
    """Median updates / s of data-parallel discrete MACQL (sample from ShardedReplay + update) at the global batch."""
    import torch

    from logo_fast.data import make_toy_dataset
    from logo_fast.distributed import ShardedReplay, data_parallel
    from logo_fast.learners import MACQLDiscrete
    from logo_fast.replay import UncertaintyWeightedReplay

    ds = make_toy_dataset(n_agents=3, n_episodes=400, episode_len=25, seed=0)
    learner = MACQLDiscrete(ds.spec)
    learner.fit_normalizer(torch.as_tensor(ds.obs), torch.as_tensor(ds.state))
    per_rank = 20_000 // ctx.world_size
    if ctx.world_size == 1:  # what `logo-fast train` runs without torchrun: no hook, the plain replay
        replay = UncertaintyWeightedReplay(ds, capacity=per_rank, C=2.0, real_ratio=0.5, seed=0)
    else:
        data_parallel(learner, ctx)
        replay = ShardedReplay(ds, capacity=per_rank, C=2.0, real_ratio=0.5, seed=0, ctx=ctx)
    # synthetic rows: real rows with random uncertainties (the learner's cost does not depend on their values)
    template = UncertaintyWeightedReplay(ds, capacity=1, C=2.0, real_ratio=1.0, seed=ctx.rank)
    rows = {k: v for k, v in template.sample(per_rank).items() if k in replay.fields}
    rows["u"] = torch.rand(per_rank, generator=torch.Generator().manual_seed(ctx.rank)) * 3
    replay.add_synthetic(rows)

    def update():
        learner.update(replay.sample(args.learner_batch))

    for _ in range(10):
        update()
    t = _median_time(update, args.learner_updates)
    return {"global_batch": args.learner_batch, "updates_per_s": 1.0 / t,
            "rows_per_rank": args.learner_batch // ctx.world_size}


def wm_and_sampler(args, ctx, parts) -> dict:
    import torch

    from logo_fast.data import make_toy_dataset
    from logo_fast.distributed import ShardedWeightedSampler, fit_distributed
    from logo_fast.model import LogoWorldModel, WorldModelConfig
    from logo_fast.sampler import WeightedSampler

    ds = make_toy_dataset(n_agents=3, n_episodes=400, episode_len=25, seed=0)
    cfg = WorldModelConfig(batch_size=args.batch, max_steps=args.steps, eval_every=10**9, max_holdout_rows=256,
                           seed=0, device=args.device)

    def fit(steps: int, batch: int) -> float:
        model = LogoWorldModel(config=cfg.replace(max_steps=steps, batch_size=batch))
        fit_distributed(model, ds, progress=False)
        return model.train_state.train_time_s

    def step_time(batch: int) -> float:
        fit(3, batch)  # warm-up: allocator, first-call dispatch
        t_short, t_long = fit(3, batch), fit(3 + args.steps, batch)
        # the difference cancels set-up and the one holdout evaluation at the last step
        return max(t_long - t_short, 1e-9) / args.steps

    out = {}
    if "wm" in parts:
        step_s = step_time(args.batch)
        out.update(global_batch=args.batch, step_ms=1e3 * step_s, transitions_per_s=args.batch / step_s)
    if "wm" in parts and ctx.world_size == 1:
        # one process at half the batch: the compute each of 2 ranks does, with no communication
        out["half_batch_step_ms"] = 1e3 * step_time(args.batch // 2)

    if "sampler" not in parts:
        return out
    sampler_rows = []
    device = ctx.device if args.device == "cuda" else "cpu"
    for size in (10_000, 1_000_000):
        g = torch.Generator().manual_seed(ctx.rank)
        weights = torch.rand(size, generator=g, dtype=torch.float64) + 0.01
        sharded = ShardedWeightedSampler(capacity=size, seed=0, device=device)
        sharded.extend(weights)
        local = WeightedSampler(size, device=device)
        local.extend(weights)
        gen = torch.Generator(device=local.device).manual_seed(1)
        n = 256
        for _ in range(20):  # warm-up both
            sharded.sample(n)
            local.sample(n // ctx.world_size, generator=gen)
        share = n // ctx.world_size
        t_sharded = _median_time(lambda s=sharded, n=n: s.sample(n), args.repeats)
        # what each rank would draw anyway: its n / W share, locally
        t_local = _median_time(lambda s=local, k=share, g=gen: s.sample(k, generator=g), args.repeats)
        sampler_rows.append({"rows_per_rank": size, "draws": n, "sharded_us": 1e6 * t_sharded,
                             "local_us": 1e6 * t_local, "extra_us": 1e6 * (t_sharded - t_local)})
    out["sampler"] = sampler_rows
    two = torch.zeros(2, dtype=torch.float64)
    for _ in range(20):
        ctx.all_gather(two)
    # the collective alone (what the sharded draw adds, besides a W-way multinomial)
    out["all_gather_us"] = 1e6 * _median_time(lambda: ctx.all_gather(two), args.repeats)
    return out


def launch(nproc: int, args, result: Path) -> list[dict]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           "--max-restarts", "0", __file__, "--worker", "--result", str(result), "--steps", str(args.steps),
           "--batch", str(args.batch), "--threads", str(args.threads), "--repeats", str(args.repeats),
           "--device", args.device, "--parts", args.parts, "--learner-batch", str(args.learner_batch),
           "--learner-updates", str(args.learner_updates)]
    # PYTHONFAULTHANDLER: a worker that aborts in C++ still prints where its Python stack was
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(ROOT), PYTHONFAULTHANDLER="1")
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, timeout=args.timeout)
    return json.loads(result.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=40, help="timed optimiser steps per run")
    p.add_argument("--batch", type=int, default=512, help="global batch (equal for 1 and 2 processes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--repeats", type=int, default=200, help="timed sampler draws per size")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--timeout", type=float, default=300, help="seconds a launch may take before it is killed")
    p.add_argument("--nprocs", default="1,2", help="process counts to compare")
    p.add_argument("--parts", default="wm,sampler,learner", help="what to measure (comma-separated)")
    p.add_argument("--learner-batch", type=int, default=256, help="global learner batch (real + synthetic)")
    p.add_argument("--learner-updates", type=int, default=100, help="timed learner updates per run")
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat the launches (alternating their order) and report every round and the median")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    import tempfile

    counts = [int(x) for x in args.nprocs.split(",")]
    rounds: list[dict[int, list[dict]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            # alternate the order, so a drift in the machine's load does not favour one count
            order = counts if i % 2 == 0 else counts[::-1]
            got = {k: launch(k, args, Path(tmp) / f"r{i}_{k}.json") for k in order}
            rounds.append({k: got[k] for k in counts})
    runs = rounds[0]
    first = runs[min(runs)][0]
    if "learner" in first:
        print(f"data-parallel MACQL (discrete, default sizes), global batch {args.learner_batch}, "
              f"{args.threads} thread(s) per process")
        for k, ranks in runs.items():
            r = ranks[0]["learner"]
            print(f"  {k} process(es): {r['updates_per_s']:8.1f} updates/s  "
                  f"x{r['updates_per_s'] / first['learner']['updates_per_s']:.2f}")
    if "transitions_per_s" in first:
        for i, r in enumerate(rounds):
            if len(rounds) > 1:
                print(f"round {i + 1} of {len(rounds)}:")
            _print_wm(args, r)
        if len(rounds) > 1:
            lo, hi = min(counts), max(counts)
            ratios = [r[hi][0]["transitions_per_s"] / r[lo][0]["transitions_per_s"] for r in rounds]
            print(f"speed-up of {hi} over {lo} process(es) per round: " + ", ".join(f"x{x:.2f}" for x in ratios)
                  + f"; median x{statistics.median(ratios):.2f}")
    if "sampler" in first:
        _print_sampler(runs)
    if args.json:
        out = {str(k): v for k, v in runs.items()}
        if len(rounds) > 1:
            out["rounds"] = [{str(k): v for k, v in r.items()} for r in rounds]
        Path(args.json).write_text(json.dumps(out, indent=1))


def _print_wm(args, runs) -> None:
    base = runs[min(runs)][0]["transitions_per_s"]
    print(f"world-model training, global batch {args.batch}, {args.threads} thread(s) per process, "
          f"device {args.device}")
    for k, ranks in runs.items():
        r = ranks[0]
        print(f"  {k} process(es): {r['step_ms']:8.1f} ms/step  {r['transitions_per_s']:10.0f} transitions/s  "
              f"x{r['transitions_per_s'] / base:.2f}")
        if "half_batch_step_ms" in r:
            print(f"  1 process at batch {args.batch // 2} (one rank's compute share): "
                  f"{r['half_batch_step_ms']:.1f} ms/step")


def _print_sampler(runs) -> None:
    print("sharded sampler, 256 draws per global batch (rank 0; extra = sharded - local draw of n/W)")
    for k, ranks in runs.items():
        for s in ranks[0]["sampler"]:
            print(f"  {k} process(es), {s['rows_per_rank']:>9,} rows/rank: sharded {s['sharded_us']:7.1f} us, "
                  f"local {s['local_us']:7.1f} us, extra {s['extra_us']:7.1f} us")
    for k, ranks in runs.items():
        print(f"  {k} process(es): one all-gather of 2 float64 per rank alone: {ranks[0]['all_gather_us']:.1f} us")


if __name__ == "__main__":
    main()
