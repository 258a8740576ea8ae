"""The main job on its built-in default: does LOGO's synthetic data make MACQL better? (MPE simple_spread)

    logo-fast demo            (what `make demo` runs; about 4 minutes on one CPU thread)

1. collect a medium-quality MPE simple_spread dataset (``--episodes`` episodes) unless it is on disk;
2. train, each on the same data and seed with ``logo_fast.pipeline.train``:
     MACQL + LOGO   MACQL on half real, half LOGO-synthetic batches (uncertainty-weighted)
     MACQL          the same learner on the real data alone
     BC             behaviour cloning, the floor
   (``--models logo,joint,ensemble`` adds MACQL with the other world models);
3. score every policy in the real environment and print one table: return ± std over the
   evaluation episodes, the normalised score (0 random, 100 the scripted expert), the world
   model's held-out one-step error, wall time; the behaviour data's own return is the first row.

World-model accuracy on its own (LOGO vs joint vs ensemble, open-loop error, calibration of u)
is ``logo-fast wm eval``. Every run resumes from its checkpoint when the demo is rerun.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

WORLD_MODELS = ("logo", "joint", "ensemble")


@dataclass
class DemoArgs:
    """Train MACQL with and without LOGO's synthetic data, and BC, on MPE; score them in the real environment."""

    env: str = "mpe:simple_spread"
    """scenario id (a discrete task: MPE or SMAX)"""
    quality: str = "medium"
    """behaviour-policy quality of the data"""
    episodes: int = 800
    """episodes in the demo's dataset (collected once into data_dir; MPE: 25 steps each)"""
    data_dir: str = "datasets"
    """where the demo's dataset is kept"""
    models: str = "logo"
    """world models to pair with MACQL, comma-separated (logo, joint, ensemble)"""
    baselines: bool = True
    """also train MACQL alone and BC"""
    updates: int = 4000
    """learner updates per method"""
    batch_size: int = 256
    """rows per learner update"""
    rollout_every: int = 500
    """learner updates between world-model rollouts"""
    rollout_starts: int = 512
    """rollouts branched from dataset states each time"""
    horizon: int = 15
    """rollout length (the paper's best)"""
    wm_max_steps: int = 2000
    """cap on world-model optimiser steps"""
    hidden: int = 128
    """hidden width of the world model and of the MACQL Q network"""
    cql_alpha: float = 1.0
    """weight of MACQL's CQL regulariser"""
    eval_every: int = 1000
    """learner updates between evaluations"""
    eval_episodes: int = 48
    """real-environment episodes per evaluation"""
    seed: int = 0
    """seeds collection, world model, learners, rollouts, sampling and evaluation"""
    out: str = "runs/demo"
    """where each method's run folder and the demo's report go"""
    device: str = "cpu"
    """torch device"""
    threads: int = 1
    """torch CPU threads; these models are small, and on 2 busy cores one thread is fastest"""

    def methods(self) -> list[tuple[str, str, str]]:
        """(label, learner, world model) of every run, in table order."""
        runs = [(f"MACQL + {m.upper() if m == 'logo' else m}", "macql", m) for m in _models(self.models)]
        if self.baselines:
            runs += [("MACQL", "macql", "none"), ("BC", "bc", "none")]
        return runs

    def problems(self) -> list[str]:
        out = []
        if not self.env.startswith(("mpe:", "smax:")):
            out.append(f"env must be a discrete task (mpe:... or smax:...), got {self.env!r}")
        models = _models(self.models)
        bad = [m for m in models if m not in WORLD_MODELS]
        if bad:
            out.append(f"models: unknown world model(s) {bad}; choose from {', '.join(WORLD_MODELS)}")
        if len(set(models)) != len(models):
            out.append(f"models lists a world model twice: {self.models!r}")
        if not models and not self.baselines:
            out.append("nothing to run: give --models or keep the baselines")
        for k in ("episodes", "updates", "batch_size", "rollout_every", "rollout_starts", "horizon",
                  "wm_max_steps", "hidden", "eval_every", "eval_episodes"):
            if getattr(self, k) < 1:
                out.append(f"{k} must be >= 1, got {getattr(self, k)}")
        if self.episodes < 10:
            out.append(f"episodes must be >= 10 (a tenth is held out), got {self.episodes}")
        if self.cql_alpha < 0:
            out.append(f"cql_alpha must be >= 0, got {self.cql_alpha}")
        if self.threads < 0:
            out.append(f"threads must be >= 0, got {self.threads}")
        return out


def _models(text: str) -> list[str]:
    return [m.strip().lower() for m in text.split(",") if m.strip() and m.strip().lower() != "none"]


def _train_args(args: DemoArgs, dataset: Path, learner: str, wm: str, out: Path):
    from .train import TrainArgs

    base = TrainArgs()
    return TrainArgs(
        env=args.env, quality=args.quality, dataset=str(dataset), method=learner, world_model=wm,
        wm=dataclasses.replace(base.wm, hidden=args.hidden, max_steps=args.wm_max_steps, epochs=100),
        macql=dataclasses.replace(base.macql, hidden=args.hidden, cql_alpha=args.cql_alpha, gamma=0.95),
        updates=args.updates, batch_size=args.batch_size, rollout_every=args.rollout_every,
        rollout_starts=args.rollout_starts, horizon=args.horizon,
        replay_capacity=args.rollout_starts * args.horizon * 4,  # the last ~4 rollouts
        eval_every=args.eval_every, eval_episodes=args.eval_episodes, checkpoint_every=args.eval_every,
        log_every=max(1, args.updates // 8), seed=args.seed, out=str(out), device=args.device, threads=args.threads,
        restart_on_mismatch=True,  # a run folder left by other demo settings is redone, not an error
    )


def run_demo(args: DemoArgs) -> dict[str, Any]:
    from rich.console import Console
    from rich.table import Table

    from ..data.collect import CollectArgs, run_collect
    from .train import train

    problems = args.problems()
    if problems:
        raise ValueError("invalid demo arguments:\n  - " + "\n  - ".join(problems))
    console = Console(width=max(Console().width, 110))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    dataset = Path(args.data_dir) / f"{args.env.replace(':', '_')}_{args.quality}_s{args.seed}_e{args.episodes}.h5"
    runs = args.methods()
    console.rule(f"[bold]1/{len(runs) + 1} data: {args.env} {args.quality}, {args.episodes} episodes")
    t0 = time.perf_counter()
    if not dataset.exists():
        dataset.parent.mkdir(parents=True, exist_ok=True)
        run_collect(CollectArgs(env=args.env, quality=args.quality, seed=args.seed, out=str(dataset),
                                n_episodes=args.episodes, progress=False))
    else:
        console.print(f"using {dataset}")
    collect_s = time.perf_counter() - t0

    reports: dict[str, dict[str, Any]] = {}
    for i, (label, learner, wm) in enumerate(runs):
        slug = learner + ("" if wm == "none" else f"_{wm}")
        console.rule(f"[bold]{i + 2}/{len(runs) + 1} {label}")
        t0 = time.perf_counter()
        rep = train(_train_args(args, dataset, learner, wm, out / slug))
        rep["demo_wall_s"] = time.perf_counter() - t0
        reports[label] = rep

    first = next(iter(reports.values()))
    data_row = first["dataset"]
    table = Table(title=f"policies on {args.env} ({args.quality} data, {data_row['episodes']} training episodes), "
                        f"{args.eval_episodes} evaluation episodes, seed {args.seed}")
    for col in ("method", "return", "± std", "normalised", "world-model error", "wall s"):
        table.add_column(col, justify="left" if col == "method" else "right")
    table.add_row("behaviour data", f"{data_row['return_mean']:.2f}", f"{data_row['return_std']:.2f}",
                  _fmt(data_row.get("normalised"), ".1f"), "—", "—")
    rows = []
    for label, rep in reports.items():
        f = rep["final"]
        err = (rep["world_model"] or {}).get("holdout_error") if rep["world_model"] else None
        table.add_row(label, f"{f['return_mean']:.2f}", f"{f['return_std']:.2f}", _fmt(f.get("normalised"), ".1f"),
                      "—" if err is None else f"{err['state_nmse']:.4f}", f"{rep['demo_wall_s']:.1f}")
        rows.append({"method": label, "return_mean": f["return_mean"], "return_std": f["return_std"],
                     "normalised": f.get("normalised"), "wm_state_nmse": None if err is None else err["state_nmse"],
                     "wall_s": rep["demo_wall_s"], "run_dir": rep["args"]["out"]})
    console.print(table)
    console.print("normalised: 100 * (return - random) / (expert - random), random and expert "
                  f"(scripted heuristic) measured in the environment: {first['references']['random']:.2f} / "
                  f"{first['references']['expert']:.2f}; world-model error: held-out one-step next-state nMSE")

    summary = {
        "args": asdict(args),
        "dataset": {"path": str(dataset), **data_row},
        "references": first["references"],
        "methods": rows,
        "timings_s": {"collect": round(collect_s, 2), "total": round(time.perf_counter() - t_all, 2)},
    }
    _write(out / "summary.json", json.dumps(summary, indent=1, default=str))
    _write(out / "report.json", json.dumps(summary, indent=1, default=str))
    _write(out / "report.md", _markdown(args, summary))
    _plot(out, reports, data_row)
    console.print(f"total {summary['timings_s']['total']:.0f} s; report: {out / 'report.md'} "
                  f"(also report.json, learning_curves.png; one run folder per method)")
    return summary


def _fmt(x: float | None, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _markdown(args: DemoArgs, s: dict[str, Any]) -> str:
    d = s["dataset"]
    lines = [f"# logo-fast demo: {args.env}, {args.quality} data", "",
             f"{d['episodes']} training episodes ({d['steps']} steps); {args.updates} learner updates per method, "
             f"batch {args.batch_size}; rollouts {args.rollout_starts} starts x horizon {args.horizon} every "
             f"{args.rollout_every} updates; {args.eval_episodes} evaluation episodes; seed {args.seed}.", "",
             "| method | return | ± std | normalised | world-model error | wall s |", "|---|---|---|---|---|---|",
             f"| behaviour data | {d['return_mean']:.2f} | {d['return_std']:.2f} | {_fmt(d.get('normalised'), '.1f')} "
             "| — | — |"]
    for r in s["methods"]:
        lines.append(f"| {r['method']} | {r['return_mean']:.2f} | {r['return_std']:.2f} | "
                     f"{_fmt(r['normalised'], '.1f')} | {_fmt(r['wm_state_nmse'], '.4f')} | {r['wall_s']:.1f} |")
    ref = s["references"]
    lines += ["", f"Normalised = 100 (return - random) / (expert - random) with random {ref['random']:.2f} and "
              f"expert {ref['expert']:.2f} ({ref['expert_source']}). One seed: differences within about one "
              "standard error (std / sqrt(episodes)) are noise.", "", "![learning curves](learning_curves.png)", ""]
    return "\n".join(lines)


def _plot(out: Path, reports: dict[str, dict[str, Any]], data_row: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for label, rep in reports.items():
        ev = rep["evals"]
        ax.plot([e["step"] for e in ev], [e["return_mean"] for e in ev], marker="o", label=label)
    ax.axhline(data_row["return_mean"], color="gray", ls="--", label="behaviour data")
    ax.set_xlabel("learner updates")
    ax.set_ylabel("return in the real environment")
    ax.legend()
    fig.tight_layout()
    tmp = out / f".learning_curves.tmp{os.getpid()}.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out / "learning_curves.png")


