"""The main job on its built-in default: the whole data → world model → replay path on MPE.

    logo-fast demo            (what `make demo` runs)

1. collect a small MPE simple_spread dataset with the project's own collector;
2. split it by whole episodes, fit the LOGO world model and its two baselines (a joint MLP of
   matched size and a 7-member MOPO-style ensemble) on the same split;
3. score all three on the held-out episodes (one-step error, open-loop error over 1..15
   steps, how well each model's uncertainty ranks its own error, step time);
4. roll LOGO out from dataset states under a random policy (no learner yet) and put the
   synthetic transitions, with their uncertainty, into the uncertainty-weighted replay;
5. draw a mixed batch and print a summary; files land in ``--out``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch


@dataclass
class DemoArgs:
    """Collect MPE data, fit LOGO and its baselines, roll out, fill the weighted replay, report."""

    env: str = "mpe:simple_spread"
    """scenario id (any `logo-fast collect` env; the default is the fast one)"""
    quality: str = "medium"
    """behaviour-policy quality of the collected data"""
    episodes: int = 800
    """episodes to collect (MPE simple_spread: 25 steps each)"""
    holdout_fraction: float = 0.2
    """fraction of episodes held out for the accuracy report"""
    models: str = "logo,joint,ensemble"
    """world models to fit and compare, comma-separated"""
    epochs: int = 100
    """training epochs per model (early stopping on an inner holdout usually stops sooner)"""
    max_steps: int = 3000
    """cap on optimiser steps per model"""
    hidden: int = 128
    """LOGO's hidden width; the joint MLP and each ensemble member are sized to match LOGO's parameter count"""
    nll_beta: float = 0.5
    """beta-NLL for the ensemble's Gaussian heads: plain NLL (0) left it 5-70x worse, a straw man"""
    rollout_starts: int = 1024
    """rollouts branched from dataset states"""
    horizon: int = 15
    """rollout length (the paper's best)"""
    C: float = 2.0
    """priority cap of the weighted replay: weight ∝ exp(clip(C - u, 0, C))"""
    batch_size: int = 256
    """size of the mixed batch drawn at the end"""
    seed: int = 0
    """seeds collection, training, rollouts and sampling"""
    out: str = "runs/demo"
    """where the report, plot, checkpoints and summary go"""
    device: str = "cpu"
    """torch device for the models and the replay"""
    threads: int = 1
    """torch CPU threads; these models are small, and on 2 busy cores one thread trained 7-20x faster"""


def _random_policy(generator: torch.Generator):
    """A uniform policy over available actions: stands in for the learner until one exists."""

    def policy(obs: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
        if avail is None:
            raise ValueError("the demo's random policy is for discrete tasks (it needs avail masks)")
        scores = torch.rand(avail.shape, generator=generator).masked_fill(~avail.cpu(), -1.0)
        return scores.argmax(-1).to(obs.device)

    return policy


def run_demo(args: DemoArgs) -> dict[str, Any]:
    from rich.console import Console
    from rich.table import Table

    from ..data.collect import collect
    from ..model.report import evaluate_models
    from ..replay import UncertaintyWeightedReplay

    # The accuracy table has ten columns: give it room even where no terminal reports a width.
    console = Console(width=max(Console().width, 150))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    torch.manual_seed(args.seed)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    console.rule(f"[bold]1/4 collect {args.env} ({args.quality}, {args.episodes} episodes, seed {args.seed})")
    ds = collect(args.env, args.quality, args.seed, n_episodes=args.episodes)
    timings["collect_s"] = time.perf_counter() - t0
    returns = ds.episode_returns()
    console.print(f"{len(ds)} steps, {ds.n_episodes} episodes, return {returns.mean():.2f} ± {returns.std():.2f}")

    console.rule("[bold]2/4 fit world models on the same split, score on held-out episodes")
    train, holdout = ds.split_episodes(args.holdout_fraction, seed=args.seed)
    t0 = time.perf_counter()
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    overrides = {"epochs": args.epochs, "max_steps": args.max_steps, "hidden": args.hidden,
                 "nll_beta": args.nll_beta, "seed": args.seed, "device": args.device}
    report, fitted = evaluate_models(
        train, holdout, models=models, out_dir=out, retrain=True, return_models=True, **overrides
    )
    timings["fit_and_eval_s"] = time.perf_counter() - t0

    console.rule(f"[bold]3/4 LOGO rollouts: {args.rollout_starts} starts × horizon {args.horizon}")
    if "logo" not in fitted:
        raise ValueError("the demo rolls out the LOGO model: include 'logo' in --models")
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    synthetic = fitted["logo"].rollout(
        _random_policy(gen), args.rollout_starts, horizon=args.horizon, generator=gen, dataset=train
    )
    timings["rollout_s"] = time.perf_counter() - t0
    u = synthetic["u"].float()
    console.print(f"{u.numel()} synthetic transitions, u mean {u.mean():.3f}, median {u.median():.3f}, "
                  f"max {u.max():.3f}")

    console.rule("[bold]4/4 uncertainty-weighted replay: half real, half synthetic")
    t0 = time.perf_counter()
    replay = UncertaintyWeightedReplay(train, capacity=max(u.numel(), 1), C=args.C, seed=args.seed,
                                       device=args.device)
    replay.add_synthetic(synthetic)
    batch = replay.sample(args.batch_size)
    timings["replay_s"] = time.perf_counter() - t0
    from_synth = batch["source"] == 1
    u_batch = batch["u"][from_synth].float() if "u" in batch else None
    console.print(f"batch of {args.batch_size}: {int((~from_synth).sum())} real, {int(from_synth.sum())} synthetic"
                  + (f"; synthetic rows' mean u {u_batch.mean():.3f} vs buffer mean {u.mean():.3f}"
                     if u_batch is not None and u_batch.numel() else ""))

    table = Table(title=f"world-model accuracy on held-out {args.env} episodes "
                        "(MSE normalised by the target's variance; lower is better)")
    for col in ("model", "params", "next obs", "next state", "reward", "term. acc", "state err @15",
                "spearman(u, err)", "fit s", "ms / 1k rows"):
        table.add_column(col, justify="right" if col != "model" else "left")
    for name, m in report["models"].items():
        one, ol = m["one_step"], m["open_loop"]
        rho = one.get("spearman_u_state_error")
        table.add_row(
            name, f"{m['n_parameters']:,}", f"{one['obs_nmse']:.4f}", f"{one['state_nmse']:.4f}",
            f"{one['reward_mse'] / max(one['reward_var'], 1e-12):.4f}", f"{one['term_accuracy']:.3f}",
            f"{ol['state_nmse'][-1]:.4f}", "—" if rho is None else f"{rho:.3f}",
            f"{m['train_time_s']:.1f}", f"{m['step_ms_per_1k_rows']:.2f}",
        )
    console.print(table)

    summary = {
        "args": asdict(args),
        "dataset": {"steps": len(ds), "episodes": ds.n_episodes, "return_mean": float(returns.mean()),
                    "return_std": float(returns.std())},
        "rollout": {"transitions": int(u.numel()), "u_mean": float(u.mean()), "u_median": float(u.median())},
        "batch": {"real": int((~from_synth).sum()), "synthetic": int(from_synth.sum())},
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "report_files": report.get("files", {}),
        "torch_threads": torch.get_num_threads(),
    }
    tmp = out / f".summary.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps(summary, indent=1, default=_json_default))
    os.replace(tmp, out / "summary.json")
    console.print("timings: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    console.print(f"wrote {out}/report.md, {out}/report.json, {out}/error_vs_horizon.png, {out}/summary.json")
    return summary


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic | torch.Tensor):
        return x.item()
    return str(x)
