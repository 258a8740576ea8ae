"""``logo-fast data info PATH``: a readable summary of a dataset in any supported format.

Native HDF5 is opened lazily (only flags and rewards are read, plus one chunked pass for
validation), so this works on files larger than memory. The command exits with status 1 when
validation finds problems (they are listed), 2 when the file cannot be read at all.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import tyro
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .formats.vault import read_vault
from .io import detect_format, load, load_extras
from .io.lazy import read_all
from .validate import dataset_problems


@dataclass
class InfoArgs:
    """Summarise a dataset file or directory: sizes, episode returns, metadata, validation problems.

    Exits with status 1 when validation finds problems.
    """

    path: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="PATH")]
    """Dataset: native .h5/.hdf5/.npz, OMIGA-style .h5, OG-MARL vault directory or OMAR-style directory."""
    check: bool = True
    """Validate the data (one chunked pass) and list any problems found; the exit status is then 1."""
    quiet: bool = False
    """Print nothing (the exit status still says whether the data is valid)."""


def _stats(x: np.ndarray) -> dict[str, float] | None:
    if len(x) == 0:
        return None
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):  # invalid data is reported by validation
        return {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()), "max": float(x.max())}


def _size_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _manifest(path: Path) -> tuple[Path | None, dict | None]:
    base = path.parent if path.is_file() else path
    for candidate in (base / f"{path.stem}.manifest.json", base / "manifest.json", path.parent / "manifest.json"):
        if candidate.is_file():
            try:
                return candidate, json.loads(candidate.read_text())
            except ValueError as err:
                return candidate, {"error": f"unreadable manifest: {err}"}
    return None, None


def run_info(args: InfoArgs) -> dict[str, Any]:
    """Load ``args.path`` (lazily for native HDF5), print a summary with rich, return the same numbers.

    Returns a dict with: path, format, file_size_bytes, env, spec, n_steps, n_episodes,
    episode_return and episode_length ({mean, std, min, max} or None), n_terminal,
    n_truncated, n_terminal_and_truncated, has_final_obs, metadata, manifest_path, manifest,
    problems (validation messages: [] when valid, None when ``check`` is off), and for augmented data
    n_synthetic and synthetic_u ({mean, std, min, max}).
    """
    path = Path(args.path)
    fmt = detect_format(path)
    ds = load(path, lazy=fmt == "hdf5", validate=False)
    try:
        return _summarise(args, path, fmt, ds)
    finally:
        if hasattr(ds.obs, "file"):
            ds.obs.file.close()


def info_main(args: InfoArgs) -> int:
    """The command: ``run_info``, then exit status 1 when validation found problems, else 0."""
    return 1 if run_info(args)["problems"] else 0


def _summarise(args: InfoArgs, path: Path, fmt: str, ds) -> dict[str, Any]:
    terminals = read_all("terminals", ds.terminals).astype(bool)
    truncations = read_all("truncations", ds.truncations).astype(bool)
    rewards = read_all("rewards", ds.rewards).astype(np.float64)
    ends = np.flatnonzero(terminals | truncations) + 1
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    returns = np.add.reduceat(rewards, starts) if len(ends) else np.zeros(0)
    lengths = ends - starts
    manifest_path, manifest = _manifest(path)
    info: dict[str, Any] = {
        "path": str(path),
        "format": fmt,
        "file_size_bytes": _size_bytes(path),
        "env": ds.spec.env,
        "spec": ds.spec.to_dict(),
        "n_steps": len(ds),
        "n_episodes": int(len(ends)),
        "episode_return": _stats(returns),
        "episode_length": _stats(lengths),
        "n_terminal": int((terminals & ~truncations).sum()),
        "n_truncated": int((truncations & ~terminals).sum()),
        "n_terminal_and_truncated": int((terminals & truncations).sum()),
        "has_final_obs": ds.final_obs is not None,
        "metadata": ds.metadata,
        "manifest_path": None if manifest_path is None else str(manifest_path),
        "manifest": manifest,
        "problems": dataset_problems(ds) if args.check else None,
    }
    extras = load_extras(path) if fmt in ("hdf5", "npz") else {}
    if fmt == "vault" and "augmented" in ds.metadata:
        extras = read_vault(path, with_extras=True)[1]
    if "synthetic" in extras and "u" in extras:
        synthetic = np.asarray(extras["synthetic"]).astype(bool)
        info["n_synthetic"] = int(synthetic.sum())
        info["synthetic_u"] = _stats(np.asarray(extras["u"])[synthetic])
    if not args.quiet:
        _print(info)
    return info


def _fmt_stats(s: dict[str, float] | None) -> str:
    if s is None:
        return "-"
    return f"{s['mean']:.4g} ± {s['std']:.3g}  [min {s['min']:.4g}, max {s['max']:.4g}]"


def _fmt_size(n: int) -> str:
    if n <= 0:
        return "0 B"
    unit = min(int(math.log(n, 1024)), 4)
    return f"{n / 1024**unit:.1f} {('B', 'KiB', 'MiB', 'GiB', 'TiB')[unit]}"


def _print(info: dict[str, Any]) -> None:
    spec = info["spec"]
    actions = (
        f"discrete, {spec['n_actions']} per agent"
        if spec["action_type"] == "discrete"
        else f"continuous, act_dim {spec['act_dim']} {tuple(spec['agent_act_dims'])}"
    )
    table = Table(title=f"dataset {info['path']}", show_header=False, title_justify="left")
    table.add_column(style="bold cyan")
    table.add_column()
    rows = [
        ("format", f"{info['format']}, {_fmt_size(info['file_size_bytes'])}"),
        ("env", info["env"] or "-"),
        ("agents", str(spec["n_agents"])),
        ("obs_dim", f"{spec['obs_dim']} per agent {tuple(spec['agent_obs_dims'])}"),
        ("state_dim", str(spec["state_dim"])),
        ("actions", actions),
        ("steps", f"{info['n_steps']:,}"),
        ("episodes", f"{info['n_episodes']:,}"),
        ("episode return", _fmt_stats(info["episode_return"])),
        ("episode length", _fmt_stats(info["episode_length"])),
        ("ends", f"{info['n_terminal']:,} terminal, {info['n_truncated']:,} truncated"),
        ("final obs", "yes" if info["has_final_obs"] else "no (episode-end steps have no next step)"),
    ]
    if "n_synthetic" in info:
        rows.append(("synthetic", f"{info['n_synthetic']:,} steps, u {_fmt_stats(info['synthetic_u'])}"))
    meta = {k: v for k, v in info["metadata"].items() if not isinstance(v, (dict, list))}
    if meta:
        rows.append(("metadata", ", ".join(f"{k}={v}" for k, v in sorted(meta.items()))))
    if info["manifest"] is not None:
        flat = {k: v for k, v in info["manifest"].items() if not isinstance(v, (dict, list))}
        rows.append(("manifest", f"{info['manifest_path']}\n" + ", ".join(f"{k}={v}" for k, v in sorted(flat.items()))))
    for key, value in rows:
        table.add_row(key, Text(value))  # Text: brackets in values are not rich markup
    console = Console()
    console.print(table)
    if info["problems"]:
        console.print(f"[bold red]{len(info['problems'])} validation problem(s):[/]")
        for p in info["problems"]:
            console.print(Text(f"  - {p}", style="red"))
    elif info["problems"] == []:
        console.print("[green]valid[/]")
