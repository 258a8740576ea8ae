"""Generate the project's offline datasets: 8 scenarios x 4 qualities + MPE simple_spread medium.

    python scripts/generate_datasets.py --out datasets                 # everything missing
    python scripts/generate_datasets.py --out datasets --only smax:2s3z --qualities medium
    python scripts/generate_datasets.py --out datasets --train-only     # MaMuJoCo TD3 runs only
    python scripts/generate_datasets.py --out datasets --summary-only   # rebuild SUMMARY.md

Each dataset is ``<out>/<env>_<quality>_s<seed>.h5`` with a ``.manifest.json`` beside it;
existing files are skipped, so the script can be stopped and restarted. MaMuJoCo behaviour
and SMAX behaviour policies come from the policy zoo shipped with the package (trained by
``logo-fast data behaviour``; scenarios without an entry fall back to the scripted policy or a
quick TD3 run of ``--train-minutes``, cached in ``--cache-dir``); ``SUMMARY.md`` (dataset cards:
return distributions, win rates, normalised scores, the behaviour runs) is rewritten after every
dataset.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tyro

from logo_fast.data.collect import QUALITIES, CollectArgs, output_path, run_collect
from logo_fast.data.envs.registry import MAMUJOCO_SCENARIOS, SMAX_SCENARIOS
from logo_fast.files import atomic_path


def default_jobs() -> list[tuple[str, str]]:
    jobs = [("mpe:simple_spread", "medium")]
    for family, scenarios in (("smax", SMAX_SCENARIOS), ("mamujoco", MAMUJOCO_SCENARIOS)):
        for s in scenarios:
            jobs += [(f"{family}:{s}", q) for q in QUALITIES]
    return jobs


@dataclass
class GenerateArgs:
    """Dataset generation for the whole benchmark: 8 scenarios x 4 qualities plus MPE simple_spread medium."""

    out: str = "datasets"
    """Directory for the datasets, their manifests and SUMMARY.md, relative to the working directory."""
    cache_dir: str | None = None
    """Where MaMuJoCo TD3 runs are cached (default: the cache directory inside out)."""
    seed: int = 0
    """Dataset seed."""
    only: list[str] = field(default_factory=list)
    """Env ids (or parts of them) to restrict the run to; empty means all."""
    qualities: list[str] = field(default_factory=lambda: list(QUALITIES))
    """Qualities to produce."""
    train_minutes: float = 10.0
    """Wall-clock budget of each MaMuJoCo TD3 run."""
    n_steps: int | None = None
    """Steps per dataset (default: the collector's per-family default, 100000)."""
    train_only: bool = False
    """Only run (or load) the MaMuJoCo training runs."""
    summary_only: bool = False
    """Only rebuild SUMMARY.md from the manifests in out."""
    progress: bool = False
    """Show progress (a bar on a terminal, a line every 30 s in a pipe or log)."""


def _episode_returns(path: Path) -> np.ndarray:
    """(E,) undiscounted team return of each episode of a dataset file."""
    from logo_fast.data.io import load

    ds = load(path)
    starts, ends = ds.episode_bounds()
    csum = np.concatenate([[0.0], np.cumsum(ds.rewards, dtype=np.float64)])
    return csum[ends] - csum[starts]


def _zoo_line(card: dict) -> str:
    b = card["budget"]
    ck = card["checkpoints"]
    e, m = ck[card["expert"]], ck[card["medium"]]
    score = "return" if "return" in e else "eval_return"
    win = (lambda c: f", win {c['win_rate']:.2f}") if "win_rate" in e else (lambda c: "")
    rnd = card.get("random", {}).get("return") if isinstance(card.get("random"), dict) else card.get("random_return")
    return (
        f"- **{card['env']}** ({card['trainer'].split(' (')[0]}): `{card['command']}`; {b['env_steps']} env steps in "
        f"{b['train_wall_s'] / 60:.0f} min; random {rnd:.3f}; expert = checkpoint at {e['env_step']} steps "
        f"({e[score]:.3f}{win(e)}), medium = checkpoint at {m['env_step']} steps ({m[score]:.3f}{win(m)}); "
        f"medium-replay = checkpoints at {', '.join(str(ck[i]['env_step']) for i in card['replay'])} steps"
    )


def write_summary(out: Path) -> Path:
    """SUMMARY.md: a card per dataset (return distribution, win rate, normalised score) and the behaviour runs."""
    from logo_fast.data.policies.zoo import ZOO_DIR, load_default_entry

    metas = [json.loads(m.read_text()) for m in sorted(out.glob("*.manifest.json"))]
    returns: dict[tuple[str, str], np.ndarray] = {}
    refs: dict[str, tuple[float | None, float | None, str]] = {}
    for meta in metas:
        path = out / Path(meta.get("file", "")).name
        if path.is_file():
            returns[(meta["env"], meta["quality"])] = _episode_returns(path)
    for env in sorted({m["env"] for m in metas}):
        entry = None if env.startswith("mpe:") else load_default_entry(env)
        if entry is not None:
            c = entry.card
            rnd = c["random"]["return"] if isinstance(c.get("random"), dict) else c.get("random_return")
            exp = returns.get((env, "expert"))
            refs[env] = (rnd, None if exp is None else float(exp.mean()), "zoo")
        else:
            refs[env] = (None, None, "scripted")
    rows = []
    for meta in metas:
        env, q = meta["env"], meta["quality"]
        r = returns.get((env, q))
        beh = meta["behaviour"]
        if "policy_source" in beh:
            note = beh["policy_source"].replace("policy zoo: ", "zoo ")
        elif isinstance(beh.get("trainer"), dict):
            t = beh["trainer"]
            note = f"quick TD3 {t['train_wall_s']:.0f}s/{t['env_steps']} steps"
        else:
            note = f"scripted, eps {beh['epsilon']}" if "epsilon" in beh else "scripted"
        if r is None:
            dist = win = norm = "—"
        else:
            p10, p50, p90 = np.percentile(r, [10, 50, 90])
            dist = f"{p10:.3f} / {p50:.3f} / {p90:.3f}"
            # SMAX pays +1 only for a won battle and at most 1 for the enemies' health, so won <=> return > 1.5.
            win = f"{(r > 1.5).mean():.2f}" if env.startswith("smax:") else "—"
            rnd, exp, _ = refs.get(env, (None, None, ""))
            norm = f"{100 * (r.mean() - rnd) / (exp - rnd):.0f}" if rnd is not None and exp and exp != rnd else "—"
        ret = meta["episode_return"]
        rows.append(
            f"| {env} | {q} | {meta['n_steps']} | {meta['n_episodes']} | {ret['mean']:.3f} ± {ret['std']:.3f} | "
            f"{dist} | {win} | {norm} | {meta['generation_wall_s']:.0f} | {note} |"
        )
    zoo_lines = [_zoo_line(json.loads(c.read_text())) for c in sorted(ZOO_DIR.glob("*/card.json"))]
    text = (
        "# logo_fast datasets\n\n"
        "Generated by `scripts/generate_datasets.py` (collector: `logo_fast.data.collect`). Returns are\n"
        "undiscounted team returns per episode; `p10 / median / p90` their distribution; `win` the share of\n"
        "SMAX battles won; `norm` = 100 (mean - random) / (expert - random) with the random policy's return\n"
        "from the behaviour run's card and the expert dataset's mean return (CFCQL/OMIGA's scale), where\n"
        "the scenario has a trained behaviour policy. `gen s` is wall time on the shared 2-core machine.\n\n"
        "| env | quality | steps | episodes | return mean ± std | p10 / median / p90 | win | norm | gen s "
        "| behaviour |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        "## Behaviour policies (the policy zoo shipped in `logo_fast/data/policies/zoo/`)\n\n"
        "Expert = the run's best checkpoint, medium = the checkpoint closest to half the expert's score,\n"
        "medium-replay = equal shares of episodes from the run's checkpoints up to medium (uniform random\n"
        "actions for a TD3 run's random warm-up), mixed = half medium-replay, half expert. SMAX policies\n"
        "sample from their softmax; TD3 actors act with Gaussian noise std 0.1. Scores in the cards:\n"
        "SMAX, the mean return and win rate of the sampled policy over one training update's battles;\n"
        "MaMuJoCo, the deterministic evaluation return.\n\n" + ("\n".join(zoo_lines) or "(none yet)") + "\n"
    )
    plots = write_plots(out, returns)
    if plots:
        text += "\n" + "".join(f"![{p.stem}]({p.name})\n" for p in plots)
    path = out / "SUMMARY.md"
    with atomic_path(path, ".md") as tmp:
        tmp.write_text(text)
    return path


def write_plots(out: Path, returns: dict[tuple[str, str], np.ndarray]) -> list[Path]:
    """returns.png (the return distribution of each quality, per scenario) and zoo.png (the behaviour runs' curves)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from logo_fast.data.policies.zoo import ZOO_DIR

    written = []
    envs = sorted({e for e, _ in returns})
    if envs:
        cols = min(3, len(envs))
        rows = -(-len(envs) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3 * rows), squeeze=False)
        for ax, env in zip(axes.flat, envs, strict=False):
            names = [q for q in QUALITIES if (env, q) in returns]
            ax.violinplot([returns[(env, q)] for q in names], showmedians=True)
            ax.set_xticks(range(1, len(names) + 1), names, fontsize=8)
            ax.set_title(env, fontsize=9)
        for ax in list(axes.flat)[len(envs) :]:
            ax.axis("off")
        fig.suptitle("episode-return distribution per dataset quality", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / "returns.png", dpi=100)
        plt.close(fig)
        written.append(out / "returns.png")
    cards = [json.loads(c.read_text()) for c in sorted(ZOO_DIR.glob("*/card.json"))]
    if cards:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        for c in cards:
            ck = c["checkpoints"]
            if "curve" in c:  # SMAX: win rate along training
                axes[0].plot([p["env_step"] for p in c["curve"]], [p["win_rate"] for p in c["curve"]], label=c["env"])
            else:
                axes[1].plot(
                    [p["env_step"] for p in ck], [p["eval_return"] for p in ck], marker="o", ms=2, label=c["env"]
                )
            for role, mk in (("expert", "*"), ("medium", "s")):
                p = ck[c[role]]
                ax = axes[0] if "curve" in c else axes[1]
                ax.plot(p["env_step"], p["win_rate"] if "curve" in c else p["eval_return"], mk, color="k", ms=7)
        axes[0].set(xlabel="environment steps (all battles)", ylabel="win rate (sampled policy)", title="SMAX MAPPO")
        axes[1].set(xlabel="environment steps", ylabel="deterministic eval return", title="MaMuJoCo TD3")
        for ax in axes:
            ax.legend(fontsize=7)
        fig.suptitle("behaviour runs (star: expert checkpoint, square: medium)", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / "zoo.png", dpi=100)
        plt.close(fig)
        written.append(out / "zoo.png")
    return written


def main(args: GenerateArgs) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = args.cache_dir or str(out / "cache")
    if args.summary_only:
        print(write_summary(out))
        return
    jobs = [
        (e, q)
        for e, q in default_jobs()
        if q in args.qualities and (not args.only or any(o == e or o in e for o in args.only))
    ]
    if args.train_only:
        from logo_fast.data.policies.td3 import TD3Config, train_or_load

        for env in dict.fromkeys(e for e, _ in jobs if e.startswith("mamujoco:")):
            t = time.perf_counter()
            result = train_or_load(env, args.seed, TD3Config(train_minutes=args.train_minutes), cache, args.progress)
            s = result.summary()
            print(
                f"{env}: {s['env_steps']} steps in {s['train_wall_s']}s, expert {s['expert_checkpoint']}, "
                f"medium {s['medium_checkpoint']}, random {s['random_return']:.1f} ({time.perf_counter() - t:.0f}s)",
                flush=True,
            )
        return
    for env, quality in jobs:
        cargs = CollectArgs(
            env=env,
            quality=quality,
            seed=args.seed,
            out=str(out),
            n_steps=args.n_steps,
            cache_dir=cache,
            train_minutes=args.train_minutes,
            progress=args.progress,
        )
        path = output_path(cargs)
        if path.exists():
            print(f"skip {path} (exists)", flush=True)
            continue
        t = time.perf_counter()
        run_collect(cargs)
        print(f"done {path} in {time.perf_counter() - t:.0f}s", flush=True)
        write_summary(out)


if __name__ == "__main__":
    main(tyro.cli(GenerateArgs))
