"""World-model accuracy report: LOGO vs the joint MLP vs the ensemble on held-out episodes.

    logo-fast wm eval --dataset PATH --models logo,joint,ensemble --seeds 0,1,2 --out DIR

Every model is trained on the same training episodes (each early-stops on its own inner
holdout carved from them) and scored on episodes none of them saw:

- one-step error per component: local obs, global state, reward (MSE; obs and state also as
  normalised MSE, the MSE of each feature divided by its variance over the held-out data,
  averaged), termination accuracy (and recall on the true terminal steps), next-avail accuracy
- open-loop error at horizons 1..H: from held-out episode starts, the model is fed its own
  predictions and the logged actions; normalised state/obs MSE per horizon
- Spearman correlation between each model's uncertainty u and its true one-step state error
  (null for the joint model, which has no uncertainty)
- training time, and step time per 1k rows (median of repeated timed ``step`` calls)

With several seeds every figure is reported as mean ± std over them (``aggregate_reports``).
Writes DIR/report.json, DIR/report.md (markdown tables) and DIR/error_vs_horizon.png over all
seeds, and per seed DIR/seed<k>/ with that seed's report and <model>.pt checkpoints, which later
runs reuse only when they were trained on the same data and config (``--retrain`` trains again);
an interrupted fit resumes from DIR/seed<k>/<model>.partial.pt. The metrics are in ``metrics.py``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.io import load
from ..data.schema import OfflineDataset
from ..files import atomic_path
from .base import model_class
from .config import WorldModelConfig
from .metrics import one_step_metrics, open_loop_metrics, open_loop_starts, step_time_ms_per_1k, variances

KNOWN_MODELS = ("logo", "joint", "ensemble")

# CPU-friendly sizes for the in-process demo (a ~5k-step MPE dataset trains all three in seconds).
DEMO_OVERRIDES = dict(hidden=64, latent=32, agent_embed=4, batch_size=256, epochs=40, patience=4)


@dataclass
class EvalArgs:
    """Train (or reuse) world models on a dataset and report their accuracy on held-out episodes, over seeds."""

    dataset: str
    """Dataset path in any format logo_fast.data.load reads."""
    models: str = "logo,joint,ensemble"
    """Comma-separated models to compare: logo, joint, ensemble."""
    out: str = "wm_eval"
    """Output directory: report.json, report.md and error_vs_horizon.png over all seeds, and seed<k>/ with each seed's report and checkpoints."""  # noqa: E501
    seeds: str = ""
    """Comma-separated seeds, e.g. 0,1,2: every figure becomes a mean +- std over them (empty = --model.seed alone). A seed sets the models' initialisation and minibatch order; the held-out episodes stay the same."""  # noqa: E501
    split_seed: int = 0
    """Seeds which episodes are held out for the report."""
    holdout_fraction: float = 0.1
    """Episodes held out for the report (never trained on)."""
    max_episodes: int = 0
    """Use only the first this many episodes (0 = all)."""
    horizon: int = 15
    """Longest open-loop horizon."""
    max_eval_rows: int = 20_000
    """Held-out transitions scored for one-step error (a seeded random subset beyond this)."""
    max_open_loop_starts: int = 2_000
    """Open-loop starts (a seeded random subset beyond this)."""
    open_loop_from: str = "episode_start"
    """Open-loop starts: episode_start (first steps of held-out episodes) or any_step."""
    threads: int = 1
    """torch CPU threads (0 = torch's default); these models are small and train fastest on one thread."""
    retrain: bool = False
    """Train again even when a checkpoint of the same data and config exists."""
    resume: bool = True
    """Continue an interrupted fit from its partial checkpoint (seed<k>/<model>.partial.pt) when its data and config match."""  # noqa: E501
    progress: bool = True
    """Show training progress bars."""
    model: WorldModelConfig = dataclasses.field(default_factory=WorldModelConfig)
    """World-model configuration shared by every model (the baselines are sized to LOGO's parameter count)."""


def _model_path(out_dir: Path | None, kind: str) -> Path | None:
    return None if out_dir is None else out_dir / f"{kind}.pt"


_SELECTION_RULES = {
    "state_obs": "early stopping and the kept weights follow the normalised next-state + next-obs holdout error "
                 "(rollout mode)",
    "weighted": "early stopping and the kept weights follow the weighted training losses on the holdout "
                "(rollout mode)",
}


def _checkpoint_mismatch(path: Path, kind: str, train_ds: OfflineDataset, cfg: WorldModelConfig,
                         ignore: tuple[str, ...] = ("device",)) -> str | None:
    """Why the checkpoint at ``path`` may not stand in for a fit of ``kind`` on ``train_ds`` with ``cfg``, or None."""
    from .checkpoint import read_checkpoint
    from .fingerprint import dataset_fingerprint

    try:
        m = read_checkpoint(path, expected_kind=kind, spec=train_ds.spec)["manifest"]
    except ValueError as e:
        return str(e).splitlines()[0]
    saved, fp = m.get("data_fingerprint"), dataset_fingerprint(train_ds)
    if saved != fp:
        return f"trained on other data (fingerprint {saved}, this data {fp})"
    ours = {k: v for k, v in cfg.to_dict().items() if k not in ignore}
    # A field added after the checkpoint was written loads with its default (WorldModelConfig.from_dict),
    # which reproduces the old behaviour: compare it as that default.
    defaults = WorldModelConfig().to_dict()
    theirs = {k: m["config"].get(k, defaults[k]) for k in ours}
    diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    if diff:
        return "trained with another config (" + ", ".join(f"{k}: {theirs.get(k)!r} -> {ours.get(k)!r}"
                                                          for k in diff[:6]) + ")"
    return None


def _fit_or_reuse(cls, name: str, train_ds: OfflineDataset, cfg: WorldModelConfig, out: Path | None,
                  progress: bool, retrain: bool, resume: bool):
    """-> (model, reused): the checkpoint at out/<name>.pt when it matches this data and config, else a fit."""
    path = _model_path(out, name)
    if path is not None and path.is_file() and not retrain:
        why = _checkpoint_mismatch(path, name, train_ds, cfg)
        if why is None:
            print(f"wm eval: reusing {path} (same data and config; --retrain trains again)")
            return cls.load(str(path), spec=train_ds.spec, device=cfg.device), True
        print(f"wm eval: retraining {name}: {path} was {why}")
    partial = None if path is None else path.with_suffix(".partial.pt")
    resume_from = None
    if partial is not None and partial.is_file():
        # A resumed fit takes its budget (epochs, max_steps, patience) and device from this run (see fit()).
        why = (_checkpoint_mismatch(partial, name, train_ds, cfg, ("device", "epochs", "max_steps", "patience"))
               if resume and not retrain else "not resumed")
        if why is None:
            print(f"wm eval: resuming {name} from {partial}")
            resume_from = str(partial)
        else:
            print(f"wm eval: starting {name} afresh ({partial}: {why})")
    model = cls(config=cfg).fit(train_ds, progress=progress, resume_from=resume_from,
                                checkpoint_path=None if partial is None else str(partial))
    if path is not None:
        model.save(str(path))
        partial.unlink(missing_ok=True)
    return model, False


def evaluate_models(
    train_ds: OfflineDataset,
    holdout_ds: OfflineDataset,
    models: tuple[str, ...] | list[str] = KNOWN_MODELS,
    config: WorldModelConfig | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    horizon: int = 15,
    max_eval_rows: int = 20_000,
    max_open_loop_starts: int = 2_000,
    open_loop_from: str = "episode_start",
    retrain: bool = False,
    return_models: bool = False,
    resume: bool = True,
    **overrides: Any,
) -> dict[str, Any] | tuple[dict[str, Any], dict[str, Any]]:
    """Fit each model on ``train_ds`` and score it on ``holdout_ds``; return the report dict.

    config:    base WorldModelConfig (default: ``WorldModelConfig()``), then ``overrides``
               applied (e.g. ``hidden=64, epochs=20``; ``logo_fast.model.report.DEMO_OVERRIDES``
               are sizes that train all three models on ~5k MPE steps in seconds on a CPU)
    out_dir:   when set, checkpoints go to out_dir/<model>.pt and are reused on later calls only
               when they were trained on the same data (fingerprint) with the same config (unless
               ``retrain``); report.json / report.md / error_vs_horizon.png are written there
    resume:    continue a fit interrupted mid-way from out_dir/<model>.partial.pt (same data and config)
    open_loop_from: "episode_start" or "any_step" (see ``open_loop_starts``)
    return_models: also return {name: fitted model}
    """
    from ..data.validate import validate_dataset
    from .transitions import TransitionStore, TransitionTable

    unknown = [m for m in models if m not in KNOWN_MODELS]
    if unknown or not models:
        raise ValueError(f"evaluate_models: unknown models {unknown} (known: {list(KNOWN_MODELS)})")
    validate_dataset(train_ds)
    validate_dataset(holdout_ds)
    train_ds.spec.check_compatible(holdout_ds.spec)
    cfg = (config or WorldModelConfig()).replace(**overrides)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    store = TransitionStore(holdout_ds)
    table = TransitionTable(store)
    if len(table) == 0:
        raise ValueError("evaluate_models: the holdout set has no transition with a next observation")
    gen = torch.Generator().manual_seed(cfg.seed + 11)
    positions = torch.randperm(len(table), generator=gen)[:max_eval_rows].sort().values
    eval_table = TransitionTable(store)
    eval_table.rows = table.rows[positions]
    var = variances(eval_table)
    n_ep = holdout_ds.n_episodes
    ol_starts, ol_ends = open_loop_starts(holdout_ds, open_loop_from, max_open_loop_starts, cfg.seed + 13)

    report: dict[str, Any] = {
        "dataset": {"env": train_ds.spec.env, "spec": train_ds.spec.to_dict(), "train_steps": len(train_ds),
                    "train_episodes": train_ds.n_episodes, "holdout_steps": len(holdout_ds),
                    "holdout_episodes": n_ep, "eval_rows": int(positions.numel()),
                    "open_loop_starts": int(len(ol_starts)), "open_loop_from": open_loop_from},
        "config": cfg.to_dict(),
        "selection": _SELECTION_RULES[cfg.select_by] + (
            "; LOGO's hybrid state head adds its absolute head's next-state error"
            if cfg.deductive_state == "hybrid" else ""),
        "horizons": list(range(1, horizon + 1)),
        "torch_threads": torch.get_num_threads(),
        "models": {},
    }
    fitted = {}
    for name in models:
        cls = model_class(name)
        model, reused = _fit_or_reuse(cls, name, train_ds, cfg, out, progress, retrain, resume)
        fitted[name] = model
        ts = model.train_state
        entry: dict[str, Any] = {
            "kind": name,
            "has_uncertainty": cls.has_uncertainty,
            "n_parameters": model.num_parameters(),
            "reused_checkpoint": reused,
            "train_time_s": None if ts is None else round(float(ts.train_time_s), 3),
            "train_steps": None if ts is None else ts.step,
            "best_inner_holdout": None if ts is None or ts.best_score is None else float(ts.best_score.mean()),
        }
        entry["one_step"] = one_step_metrics(model, eval_table, torch.arange(len(eval_table)), var)
        entry["open_loop"] = open_loop_metrics(model, store, ol_starts, ol_ends, horizon, var)
        entry["step_ms_per_1k_rows"] = step_time_ms_per_1k(model, eval_table)
        if name == "ensemble":
            entry["elites"] = model.elites
        report["models"][name] = entry
    if out is not None:
        write_report(report, out)
        report["files"] = {k: str(out / f) for k, f in
                           (("json", "report.json"), ("markdown", "report.md"), ("plot", "error_vs_horizon.png"))}
    return (report, fitted) if return_models else report


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        return f"{x:.{digits}g}"
    return str(x)


def markdown_report(report: dict[str, Any]) -> str:
    d = report["dataset"]
    lines = [
        f"# World-model accuracy: {d['env'] or 'dataset'}",
        "",
        f"Trained on {d['train_steps']} steps ({d['train_episodes']} episodes); scored on {d['eval_rows']} held-out "
        f"transitions from {d['holdout_episodes']} unseen episodes; open loop from {d['open_loop_starts']} "
        f"held-out starts ({d.get('open_loop_from', 'episode_start')}) with the logged actions. "
        f"nMSE = MSE / per-feature variance of the held-out data "
        f"(1.0 = predicting the mean). torch threads: {report.get('torch_threads')}.",
        "",
        "| model | params | train s | steps | step ms / 1k rows | obs nMSE | state nMSE | reward MSE "
        "| term acc | term recall | avail acc | Spearman(u, state err) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines.insert(3, f"Model selection: {report.get('selection', '—')}.")
    lines.insert(4, "")
    for name, m in report["models"].items():
        o = m["one_step"]
        lines.append(
            f"| {name} | {m['n_parameters']:,} | {_fmt(m['train_time_s'], 3)} | {_fmt(m['train_steps'])} "
            f"| {_fmt(m['step_ms_per_1k_rows'], 3)} | {_fmt(o['obs_nmse'])} | {_fmt(o['state_nmse'])} "
            f"| {_fmt(o['reward_mse'])} | {_fmt(o['term_accuracy'])} | {_fmt(o['term_recall'])} "
            f"| {_fmt(o.get('avail_accuracy'))} | {_fmt(o['spearman_u_state_error'], 3)} |")
    hs = report["horizons"]
    picks = [h for h in (1, 2, 5, 10, 15) if h <= len(hs)]
    lines += ["", "Open-loop state nMSE by horizon:", "",
              "| model | " + " | ".join(f"h={h}" for h in picks) + " |",
              "|---|" + "---|" * len(picks)]
    for name, m in report["models"].items():
        curve = m["open_loop"]["state_nmse"]
        lines.append(f"| {name} | " + " | ".join(_fmt(curve[h - 1] if h - 1 < len(curve) else None)
                                                  for h in picks) + " |")
    lines += ["", "Open-loop obs nMSE by horizon:", "",
              "| model | " + " | ".join(f"h={h}" for h in picks) + " |", "|---|" + "---|" * len(picks)]
    for name, m in report["models"].items():
        curve = m["open_loop"]["obs_nmse"]
        lines.append(f"| {name} | " + " | ".join(_fmt(curve[h - 1] if h - 1 < len(curve) else None)
                                                  for h in picks) + " |")
    reward_var = next(iter(report["models"].values()))["one_step"]["reward_var"]
    lines += ["", f"Held-out reward variance: {_fmt(reward_var)} (a reward MSE at this level is no better than "
                  "predicting the mean).", ""]
    return "\n".join(lines)


def plot_error_vs_horizon(report: dict[str, Any], path: Path) -> None:
    """One seed's open-loop curves: the seed-summary plot with no spread."""
    as_summary = {"dataset": report["dataset"], "seeds": [report["config"]["seed"]], "models": {
        name: {"open_loop": {k: {"mean": m["open_loop"][k], "std": [0.0] * len(m["open_loop"][k])}
                             for k in ("state_nmse", "obs_nmse")}}
        for name, m in report["models"].items()}}
    plot_summary(as_summary, path)


def write_report(report: dict[str, Any], out: Path) -> None:
    with atomic_path(out / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=float))
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(markdown_report(report))
    plot_error_vs_horizon(report, out / "error_vs_horizon.png")


# One-step metrics summarised over seeds (mean, std, values), in the order the summary table shows them.
SUMMARY_METRICS = ("state_nmse", "obs_nmse", "reward_nmse", "term_accuracy", "avail_accuracy",
                   "spearman_u_state_error")


def _stats(values: list[float | None]) -> dict[str, Any]:
    v = [x for x in values if x is not None]
    if not v:
        return {"mean": None, "std": None, "values": values}
    return {"mean": float(np.mean(v)), "std": float(np.std(v)), "values": values}


def aggregate_reports(reports: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """Per-seed reports of ``evaluate_models`` -> one summary: every figure as mean, std and per-seed values."""
    first = reports[0]
    out: dict[str, Any] = {"dataset": first["dataset"], "config": first["config"], "selection": first["selection"],
                           "seeds": seeds, "horizons": first["horizons"], "torch_threads": first["torch_threads"],
                           "models": {}}
    for name, m0 in first["models"].items():
        per = [r["models"][name] for r in reports]
        entry: dict[str, Any] = {"kind": name, "has_uncertainty": m0["has_uncertainty"],
                                 "n_parameters": m0["n_parameters"],
                                 "train_time_s": _stats([m["train_time_s"] for m in per]),
                                 "step_ms_per_1k_rows": _stats([m["step_ms_per_1k_rows"] for m in per]),
                                 "one_step": {k: _stats([m["one_step"].get(k) for m in per]) for k in SUMMARY_METRICS},
                                 "open_loop": {}}
        for key in ("state_nmse", "obs_nmse"):
            H = min(len(m["open_loop"][key]) for m in per)
            curves = np.array([m["open_loop"][key][:H] for m in per])
            entry["open_loop"][key] = {"mean": curves.mean(0).tolist(), "std": curves.std(0).tolist()}
        out["models"][name] = entry
    return out


def _pm(s: dict[str, Any], digits: int = 4) -> str:
    if s["mean"] is None:
        return "—"
    return f"{s['mean']:.{digits}g} ± {s['std']:.2g}"


def markdown_summary(summary: dict[str, Any]) -> str:
    """The seed summary as markdown: one-step table, open-loop table, the selection rule."""
    d = summary["dataset"]
    seeds = summary["seeds"]
    lines = [
        f"# World-model accuracy: {d['env'] or 'dataset'} ({len(seeds)} seed{'s' * (len(seeds) > 1)}: "
        f"{', '.join(map(str, seeds))})",
        "",
        f"Trained on {d['train_steps']} steps ({d['train_episodes']} episodes); scored on {d['eval_rows']} held-out "
        f"transitions from {d['holdout_episodes']} unseen episodes; open loop from {d['open_loop_starts']} held-out "
        f"starts ({d.get('open_loop_from')}) with the logged actions. nMSE = MSE / per-feature variance of the "
        f"held-out data (1.0 = predicting the mean). Every figure is mean ± std over the seeds. "
        f"Model selection: {summary['selection']}. torch threads: {summary['torch_threads']}.",
        "",
        "| model | params | train s | step ms / 1k rows | state nMSE | obs nMSE | reward nMSE | term acc "
        "| avail acc | Spearman(u, state err) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in summary["models"].items():
        o = m["one_step"]
        lines.append(f"| {name} | {m['n_parameters']:,} | {_pm(m['train_time_s'], 3)} "
                     f"| {_pm(m['step_ms_per_1k_rows'], 3)} | {_pm(o['state_nmse'])} | {_pm(o['obs_nmse'])} "
                     f"| {_pm(o['reward_nmse'], 3)} | {_pm(o['term_accuracy'], 3)} | {_pm(o['avail_accuracy'], 3)} "
                     f"| {_pm(o['spearman_u_state_error'], 3)} |")
    hs = summary["horizons"]
    picks = [h for h in (1, 2, 5, 10, 15) if h <= len(hs)]
    for key, title in (("state_nmse", "state"), ("obs_nmse", "obs")):
        lines += ["", f"Open-loop {title} nMSE by horizon (mean ± std over seeds):", "",
                  "| model | " + " | ".join(f"h={h}" for h in picks) + " |", "|---|" + "---|" * len(picks)]
        for name, m in summary["models"].items():
            c = m["open_loop"][key]
            cells = [(f"{c['mean'][h - 1]:.4g} ± {c['std'][h - 1]:.2g}" if h - 1 < len(c["mean"]) else "—")
                     for h in picks]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_summary(summary: dict[str, Any], path: Path) -> None:
    """Open-loop error vs horizon, mean over seeds with a ±1 std band (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((axes[0], "state_nmse", "global state"), (axes[1], "obs_nmse", "local observations")):
        for name, m in summary["models"].items():
            mean, std = np.array(m["open_loop"][key]["mean"]), np.array(m["open_loop"][key]["std"])
            h = np.arange(1, len(mean) + 1)
            ax.plot(h, mean, marker="o", ms=3, label=name)
            ax.fill_between(h, np.maximum(mean - std, 1e-12), mean + std, alpha=0.2)
        ax.set_yscale("log")
        ax.set_xlabel("open-loop horizon (steps)")
        ax.set_ylabel("nMSE (held-out)")
        n = len(summary["seeds"])
        ax.set_title(f"{title}: {summary['dataset']['env']} ({n} seed{'s' * (n > 1)})")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def write_summary(summary: dict[str, Any], out: Path) -> None:
    with atomic_path(out / "report.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=float))
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(markdown_summary(summary))
    plot_summary(summary, out / "error_vs_horizon.png")


def parse_seeds(text: str, default: int) -> list[int]:
    """"0,1,2" -> [0, 1, 2]; "" -> [default]. Raises ValueError naming the option on anything else."""
    if not text.strip():
        return [default]
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--seeds: expected comma-separated integers such as 0,1,2, got {text!r}") from None
    bad = [x for x in seeds if x < 0]
    if bad or not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds: expected distinct integers >= 0, got {text!r}")
    return seeds


def run_eval(args: EvalArgs) -> dict[str, Any]:
    """The ``logo-fast wm eval`` command: load, split by episodes, evaluate per seed, write and print the summary."""
    problems = []
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    unknown = [m for m in models if m not in KNOWN_MODELS]
    if unknown or not models:
        problems.append(f"--models: unknown {unknown or args.models!r} (known: {', '.join(KNOWN_MODELS)})")
    try:
        seeds = parse_seeds(args.seeds, args.model.seed)
    except ValueError as e:
        problems.append(str(e))
    if not 0.0 < args.holdout_fraction < 1.0:
        problems.append(f"--holdout-fraction: must be in (0, 1), got {args.holdout_fraction}")
    if args.horizon < 1:
        problems.append(f"--horizon: must be >= 1, got {args.horizon}")
    if args.open_loop_from not in ("episode_start", "any_step"):
        problems.append(f"--open-loop-from: episode_start or any_step, got {args.open_loop_from!r}")
    if args.threads < 0:
        problems.append(f"--threads: must be >= 0, got {args.threads}")
    if problems:
        raise ValueError("wm eval: " + "; ".join(problems))
    if args.threads:
        torch.set_num_threads(args.threads)
    ds = load(args.dataset)
    if args.max_episodes and args.max_episodes < ds.n_episodes:
        ds = ds.select_episodes(np.arange(args.max_episodes))
    train, hold = ds.split_episodes(args.holdout_fraction, args.split_seed)
    out = Path(args.out)
    reports = []
    for seed in seeds:
        cfg = args.model.replace(seed=seed)
        print(f"wm eval: seed {seed} ({len(reports) + 1}/{len(seeds)})")
        rep = evaluate_models(train, hold, models, cfg, out_dir=out / f"seed{seed}", progress=args.progress,
                              horizon=args.horizon, max_eval_rows=args.max_eval_rows,
                              max_open_loop_starts=args.max_open_loop_starts, open_loop_from=args.open_loop_from,
                              retrain=args.retrain, resume=args.resume)
        rep["dataset"]["path"] = args.dataset
        write_report(rep, out / f"seed{seed}")
        reports.append(rep)
    summary = aggregate_reports(reports, seeds)
    write_summary(summary, out)
    print(markdown_summary(summary))
    print(f"wrote {out}/report.json, report.md, error_vs_horizon.png (per seed: {out}/seed<k>/)")
    return summary
