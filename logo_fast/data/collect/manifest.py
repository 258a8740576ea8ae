"""The dataset's metadata and manifest: sizes, return statistics, behaviour, versions; the summary table."""

from __future__ import annotations

import importlib.metadata
import platform
from dataclasses import asdict
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from .args import CollectArgs
from .plan import Plan


def package_versions(packages: tuple[str, ...]) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("numpy", "torch", *packages):
        try:
            out[name] = importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            try:
                out[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                out[name] = "not installed"
    return out


def return_stats(returns: list[float]) -> dict[str, float]:
    r = np.asarray(returns, dtype=np.float64)
    return {"mean": float(r.mean()), "std": float(r.std()), "min": float(r.min()), "max": float(r.max())}


def build_metadata(args: CollectArgs, plan: Plan, returns, steps: int, episodes: int, wall: float) -> dict[str, Any]:
    everything = [r for rs in returns.values() for r in rs]
    return {
        "env": args.env,
        "quality": args.quality,
        "seed": args.seed,
        "n_steps": steps,
        "n_episodes": episodes,
        "episode_return": return_stats(everything),
        "episode_return_by_part": {k: {**return_stats(v), "episodes": len(v)} for k, v in returns.items()},
        "behaviour": plan.behaviour,
        "env_info": plan.env_info,
        "spec": plan.spec.to_dict(),
        "args": asdict(args),
        "versions": package_versions(tuple(plan.env_info["packages"])),
        "generation_wall_s": round(wall, 2),
        "collector": "logo_fast.data.collect v1",
    }


def print_summary(meta: dict[str, Any]) -> None:
    r = meta["episode_return"]
    table = Table(title=f"{meta['env']} {meta['quality']} (seed {meta['seed']})", show_header=False)
    table.add_row("file", f"{meta['file']} ({meta['file_bytes'] / 1e6:.1f} MB)")
    table.add_row("size", f"{meta['n_steps']} steps, {meta['n_episodes']} episodes")
    table.add_row("episode return", f"mean {r['mean']:.3f}  std {r['std']:.3f}  min {r['min']:.3f}  max {r['max']:.3f}")
    for part, s in meta["episode_return_by_part"].items():
        table.add_row(f"  {part}", f"{s['episodes']} episodes, mean {s['mean']:.3f}")
    table.add_row("generation time", f"{meta['generation_wall_s']:.1f} s")
    Console().print(table)
