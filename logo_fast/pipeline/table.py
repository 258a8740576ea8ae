"""The experiment table: scenarios x qualities x methods x seeds, one ``logo-fast train`` process per cell.

    logo-fast table --config logo_fast/configs/table_medium.json            run what is missing, render
    logo-fast table --config ... --dry-run                                  list the commands only
    logo-fast table --config ... --render-only                              re-render docs/results.md

The grid file (JSON) names the scenario configs (files in ``logo_fast/configs/`` or paths), the
qualities, the methods (``bc``, ``macql``, ``macql+joint``, ``macql+ensemble``, ``macql+logo``),
the seeds, and ``train``: flags applied to every run (e.g. ``{"updates": 20000, "data_dir":
"datasets"}``). Each cell runs as its own process (at most ``parallel`` at a time) in its own
folder, so a killed table resumes: finished cells are in the store (one JSON line each) and are
skipped; unfinished ones rerun the same command, which resumes from the run's checkpoint.
A stored cell counts as finished only while the settings it ran with (the run's resolved
``TrainArgs``, recorded with it) equal what its command resolves to now: a changed default (e.g.
LOGO's deductive state head) makes it stale, and the table reruns it from scratch instead of
reusing it. Only fresh cells appear in ``docs/results.md`` as numbers; the rest say "not run" or
"stale".
``notes`` (optional): markdown paragraphs rendered at the end of the page, for what was measured
around the grid (ablations with their commands, what limits a method).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.envs.registry import parse_env_id
from .train import TrainArgs, load_config, resolve_config_path

# method -> (learner, world model, extra train flags merged over the grid's "train" ones)
METHODS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "bc": ("bc", "none", {}), "macql": ("macql", "none", {}), "macql+joint": ("macql", "joint", {}),
    "macql+ensemble": ("macql", "ensemble", {}),
    # the default LOGO: both deductive state heads (the delta from a real start state, the absolute
    # state once the state is a prediction)
    "macql+logo": ("macql", "logo", {}),
    # ablations of the state head: the delta form alone (the default before the hybrid head), the absolute one alone
    "macql+logo-delta": ("macql", "logo", {"wm": {"deductive_state": "delta"}}),
    "macql+logo-abs": ("macql", "logo", {"wm": {"deductive_state": "absolute"}}),
}
METHOD_LABELS = {"bc": "BC", "macql": "MACQL", "macql+joint": "MACQL + joint MLP",
                 "macql+ensemble": "MACQL + ensemble", "macql+logo": "MACQL + LOGO",
                 "macql+logo-delta": "MACQL + LOGO, delta state only",
                 "macql+logo-abs": "MACQL + LOGO, absolute state only"}
# TrainArgs fields that say where a run reads and writes or how it reports, not what it computes:
# a finished cell stays valid when only these differ.
_PLACE_FIELDS = frozenset({"config", "out", "data_dir", "threads", "progress", "log_every", "resume",
                           "restart_on_mismatch", "tensorboard", "checkpoint_every", "rollout_cuda_graph"})
_SECTIONS = frozenset({"wm", "macql", "macql_continuous", "bc"})  # TrainArgs' nested configs
# Caveats about a scenario's data that the "Data:" line (which names the expert's source) does not say.
DATA_NOTES = {
    "mamujoco": "expert = the zoo TD3 policy's best checkpoint, scored deterministically; the datasets act "
                "with exploration noise (std 0.1), so the expert dataset's own mean return is lower.",
}


@dataclass
class TableArgs:
    """Run the comparison grid (each cell its own `logo-fast train` process) and render docs/results.md."""

    config: str = "table_medium.json"
    """grid file (JSON); a bare name is looked up in logo_fast/configs/"""
    parallel: int = 0
    """runs at a time (0: the grid file's value, default 2)"""
    dry_run: bool = False
    """print the command of every missing cell and stop"""
    render_only: bool = False
    """only re-render the results page from the store"""
    results: str = ""
    """markdown file to write (empty: the grid file's results_md, default docs/results.md)"""


@dataclass
class Cell:
    """One run of the grid."""

    scenario: str
    """stem of the scenario config file, e.g. mpe_simple_spread"""
    quality: str
    """dataset quality"""
    method: str
    """a key of METHODS, e.g. macql+logo"""
    seed: int
    """the run's seed"""
    env: str
    """scenario id, e.g. mpe:simple_spread"""
    run_dir: Path
    """the run's folder (checkpoints, report, log.txt)"""
    command: list[str]
    """the process to start (python -m logo_fast.cli train ...)"""

    @property
    def key(self) -> str:
        return f"{self.scenario}/{self.quality}/{self.method}/s{self.seed}"


def _flags(d: dict[str, Any], prefix: str = "") -> list[str]:
    """{"updates": 5, "wm": {"max_steps": 3}} -> ["--updates", "5", "--wm.max-steps", "3"] (tyro's spelling)."""
    out = []
    for k, v in d.items():
        name = f"{prefix}{k.replace('_', '-')}"
        if isinstance(v, dict):
            out += _flags(v, name + ".")
        elif isinstance(v, bool):
            out.append(f"--{name}" if v else f"--no-{name}" if "." not in name else f"--{name[:name.rfind('.') + 1]}"
                       f"no-{name[name.rfind('.') + 1:]}")
        elif v is None:
            out += [f"--{name}", "None"]
        else:
            out += [f"--{name}", str(v)]
    return out


def load_grid(path: str) -> tuple[dict[str, Any], list[Cell]]:
    """The grid file and its cells; one ValueError listing every problem (before any run starts)."""
    p = resolve_config_path(path)
    if not p.is_file():
        raise ValueError(f"grid file {path!r} not found")
    grid = json.loads(p.read_text())
    problems = []
    for key in ("scenarios", "qualities", "methods", "seeds"):
        if not isinstance(grid.get(key), list) or not grid.get(key):
            problems.append(f"{key}: expected a non-empty list")
    unknown = [m for m in grid.get("methods", []) if m not in METHODS]
    if unknown:
        problems.append(f"methods: unknown {unknown}; choose from {sorted(METHODS)}")
    extra = set(grid) - {"comment", "scenarios", "qualities", "methods", "seeds", "train", "runs_dir", "store",
                         "results_md", "parallel", "notes"}
    if not isinstance(grid.get("notes", []), list) or not all(isinstance(x, str) for x in grid.get("notes", [])):
        problems.append("notes: expected a list of markdown paragraphs (strings)")
    if extra:
        problems.append(f"unknown keys {sorted(extra)}")
    train = grid.get("train", {})
    runs_dir = Path(grid.get("runs_dir", "runs/table"))
    defaults = TrainArgs()
    cells = []
    for scen in grid.get("scenarios", []) if not problems else []:
        sp = resolve_config_path(scen)
        stem = Path(scen).stem
        try:
            file_cfg = json.loads(sp.read_text()) if sp.is_file() else None
        except json.JSONDecodeError as err:
            problems.append(f"scenario {scen}: not valid JSON ({err})")
            continue
        if file_cfg is None:
            problems.append(f"scenario config {scen!r} not found")
            continue
        for q in grid["qualities"]:
            for m in grid["methods"]:
                learner, wm, extra = METHODS[m]
                merged = {**train, **{k: {**train.get(k, {}), **v} if isinstance(v, dict) else v
                                      for k, v in extra.items()}}
                for seed in grid["seeds"]:
                    run_dir = runs_dir / f"{stem}_{q}" / m.replace("+", "_") / f"s{seed}"
                    flags = {"quality": q, "method": learner, "world_model": wm, "seed": seed, **merged,
                             "out": str(run_dir)}
                    # A flag equal to the built-in default cannot override the file (see train.py):
                    # refuse such a grid instead of silently running the file's value.
                    problems += [f"{scen}: train flag {k}={v!r} equals the built-in default, so it cannot "
                                 f"override the file's {f!r}; change the file" for k, v, f in
                                 _shadowed(flags, file_cfg, defaults)]
                    cmd = [sys.executable, "-m", "logo_fast.cli", "train", "--config", str(sp), *_flags(flags)]
                    cells.append(Cell(stem, q, m, int(seed), file_cfg.get("env", defaults.env), run_dir, cmd))
    if not problems:
        for c in cells[:: max(1, len(grid["methods"]) * len(grid["seeds"]))]:
            try:  # each scenario/quality once: the merged config must be a valid TrainArgs
                args = load_config(c.command[5], overrides=_parse_flags(c))
                problems += [f"{c.key}: {x}" for x in args.problems() if "does not exist" not in x]
            except ValueError as err:
                problems.append(f"{c.key}: {err}")
    if problems:
        raise ValueError(f"invalid grid {p}:\n  - " + "\n  - ".join(dict.fromkeys(problems)))
    grid["_path"] = str(p)
    return grid, cells


def _shadowed(flags: dict[str, Any], file_cfg: dict[str, Any], defaults: Any, prefix: str = ""):
    """(name, flag value, file value) for every flag that equals the built-in default but not the file."""
    for k, v in flags.items():
        if k not in file_cfg:
            continue
        if isinstance(v, dict) and isinstance(file_cfg[k], dict):
            yield from _shadowed(v, file_cfg[k], getattr(defaults, k, None), f"{prefix}{k}.")
        elif file_cfg[k] != v and getattr(defaults, k, object()) == v:
            yield f"{prefix}{k}", v, file_cfg[k]


def _parse_flags(cell: Cell) -> TrainArgs:
    import tyro

    return tyro.cli(TrainArgs, args=cell.command[6:])


def display_command(cell: Cell) -> str:
    """The cell's command as a user types it (``logo-fast train ...``)."""
    parts = ["logo-fast", *cell.command[3:]]
    parts[3] = _short(parts[3])
    return " ".join(shlex.quote(x) for x in parts)


def _short(path: str) -> str:
    """A path relative to the working directory when it lies below it (the repository root), else as is."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def resolved_args(cell: Cell) -> dict[str, Any]:
    """The settings the cell's command runs with (its config file, the flags, every default), as JSON values."""
    args = load_config(cell.command[5], overrides=_parse_flags(cell))
    return json.loads(json.dumps(dataclasses.asdict(args), default=str))


def _sections_read(args: dict[str, Any]) -> set[str]:
    """The config sections a run reads: its learner's (the continuous MACQL on MaMuJoCo) and the world
    model's when it has one. A default changed in a section it does not read leaves it valid."""
    try:
        continuous = parse_env_id(args["env"])[0] == "mamujoco"
    except ValueError:  # no registered scenario (e.g. a dataset file alone): count both MACQL sections
        return set(_SECTIONS)
    learner = {"bc": {"bc"}, "macql": {"macql_continuous" if continuous else "macql"}}.get(args["method"], _SECTIONS)
    return set(learner) | ({"wm"} if args.get("world_model", "none") != "none" else set())


def _differences(ran: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the fields set in both whose values differ (fields one side lacks, i.e. settings
    added or removed since the run, are not compared; nor are the sections the run does not read)."""
    out = []
    unread = _SECTIONS - _sections_read(now) if not prefix else set()
    for k in sorted(set(ran) & set(now)):
        if not prefix and (k in _PLACE_FIELDS or k in unread):
            continue
        a, b = ran[k], now[k]
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} then, {b!r} now")
    return out


def fresh_cells(cells: list[Cell], store: dict[str, dict[str, Any]]) -> tuple[dict[str, dict[str, Any]],
                                                                              dict[str, str]]:
    """-> (fresh records by key, stale cells' reasons by key) for the cells found in ``store``.

    A record is fresh when the settings it ran with (``args``; for records written before the
    store kept them, the run folder's report.json) equal the cell's ``resolved_args`` now."""
    fresh, stale = {}, {}
    for c in cells:
        rec = store.get(c.key)
        if rec is None:
            continue
        ran = rec.get("args")
        if ran is None:  # an older store: the run's own report says what it ran with
            report = c.run_dir / "report.json"
            ran = json.loads(report.read_text()).get("args") if report.is_file() else None
        if ran is None:
            stale[c.key] = "its settings were not recorded"
            continue
        diff = _differences(ran, resolved_args(c))
        if diff:
            stale[c.key] = "settings changed (" + "; ".join(diff[:4]) + ("; ..." if len(diff) > 4 else "") + ")"
        else:
            fresh[c.key] = rec
    return fresh, stale


def read_store(path: Path) -> dict[str, dict[str, Any]]:
    """Finished cells by key (a torn last line from a kill is ignored)."""
    out = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            out[rec["key"]] = rec
    return out


def _append(path: Path, rec: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(rec, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _record(cell: Cell, report: dict[str, Any], wall: float) -> dict[str, Any]:
    return {"key": cell.key, "scenario": cell.scenario, "env": cell.env, "quality": cell.quality,
            "method": cell.method, "seed": cell.seed, "command": display_command(cell),
            "final": report["final"], "dataset": report["dataset"], "references": report["references"],
            "world_model": report["world_model"], "budget": report["budget"], "wall_s": round(wall, 1),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "args": report.get("args")}


def run_cells(cells: list[Cell], store: Path, parallel: int, log=print) -> None:
    """Run every cell not in ``store`` or stale there, ``parallel`` processes at a time; append each finished one.

    A stale cell reruns from scratch (``--restart-on-mismatch``: its run folder's checkpoints were
    written with the old settings); its new record replaces the old one."""
    done, stale = fresh_cells(cells, read_store(store))
    for key, why in stale.items():
        log(f"stale {key}: {why}; it runs again")
    todo = [c for c in cells if c.key not in done]
    log(f"{len(done)} of {len(cells)} cells already in {store}; {len(todo)} to run, {parallel} at a time")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    running: list[tuple[Cell, subprocess.Popen, float, Any]] = []
    failures = []
    try:
        while todo or running:
            while todo and len(running) < parallel:
                c = todo.pop(0)
                c.run_dir.mkdir(parents=True, exist_ok=True)
                logf = open(c.run_dir / "log.txt", "a")  # noqa: SIM115 - closed when the process ends
                cmd = c.command + (["--restart-on-mismatch"] if c.key in stale else [])
                running.append((c, subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env),
                                time.perf_counter(), logf))
                log(f"start {c.key}")
            time.sleep(0.5)
            for item in list(running):
                c, proc, t0, logf = item
                if proc.poll() is None:
                    continue
                running.remove(item)
                logf.close()
                wall = time.perf_counter() - t0
                report_path = c.run_dir / "report.json"
                if proc.returncode == 0 and report_path.is_file():
                    rec = _record(c, json.loads(report_path.read_text()), wall)
                    _append(store, rec)
                    f = rec["final"]
                    log(f"done  {c.key}: return {f['return_mean']:.3f} ({wall:.0f} s)")
                else:
                    failures.append(c.key)
                    log(f"FAILED {c.key} (exit {proc.returncode}); see {c.run_dir / 'log.txt'}")
    finally:
        for _c, proc, _, logf in running:  # a stopped table stops its runs; they resume next time
            proc.terminate()
            proc.wait()
            logf.close()
    if failures:
        log(f"{len(failures)} cells failed: {', '.join(failures)}")


def render(grid: dict[str, Any], cells: list[Cell], store: dict[str, dict[str, Any]]) -> str:
    """The results page: one table per scenario x quality, mean ± std over seeds, "not run" where missing
    and "stale" where the stored cells ran with other settings than their commands resolve to now."""
    store, stale = fresh_cells(cells, store)
    lines = ["# Results: offline MARL policies with and without world-model data", "",
             f"Generated by `logo-fast table --config {_short(grid['_path'])}` from "
             f"`{grid.get('store', 'runs/table/results.jsonl')}`. Every number is the final greedy policy's mean "
             "return in the real environment (mean ± std over seeds of each run's evaluation mean); "
             "normalised = 100 (return - random) / (expert - random). Cells that were not run say so.", ""]
    by_block: dict[tuple[str, str], list[Cell]] = {}
    for c in cells:
        by_block.setdefault((c.scenario, c.quality), []).append(c)
    for (_scenario, q), block in by_block.items():
        env = block[0].env
        recs = [store[c.key] for c in block if c.key in store]
        lines += [f"## {env} — {q} data", ""]
        if recs:
            r0 = recs[0]
            d, ref = r0["dataset"], r0["references"]
            lines.append(f"Data: {d['episodes']} training episodes ({d['steps']} steps), behaviour return "
                         f"{d['return_mean']:.3f} ± {d['return_std']:.3f}"
                         + (f" (normalised {d['normalised']:.1f})" if d.get("normalised") is not None else "")
                         + f"; random {ref['random']:.3f}, expert {_fmt(ref['expert'], '.3f')} "
                         f"({ref['expert_source']}).")
            b = r0["budget"]
            lines.append(f"Budget per run: {b['updates']} learner updates, batch {b['batch_size']}; rollouts "
                         f"{b['rollout_starts']} starts × horizon {b['horizon']} every {b['rollout_every']} updates, "
                         f"real ratio {b['real_ratio']}; world model ≤ {b['wm_max_steps']} steps; "
                         f"{b['eval_episodes']} evaluation episodes.")
        note = DATA_NOTES.get(env) or DATA_NOTES.get(env.split(":")[0])
        if note:
            lines.append(f"Note: {note}")
        smax = env.startswith("smax:")
        head = ("| method | return | normalised |" + (" win rate |" if smax else "")
                + " wm error | seeds | wall s / run |")
        lines += ["", head, "|" + "---|" * (head.count("|") - 1)]
        for m in grid["methods"]:
            mc = [c for c in block if c.method == m]
            got = [store[c.key] for c in mc if c.key in store]
            if not got:
                what = "stale" if any(c.key in stale for c in mc) else "not run"
                lines.append(f"| {METHOD_LABELS[m]} | {what} | {what} |" + (f" {what} |" if smax else "")
                             + f" — | 0/{len(mc)} | — |")
                continue
            ret = [g["final"]["return_mean"] for g in got]
            norm = [g["final"]["normalised"] for g in got if g["final"].get("normalised") is not None]
            win = [g["final"]["win_rate"] for g in got if g["final"].get("win_rate") is not None]
            errs = [g["world_model"]["holdout_error"]["state_nmse"] for g in got
                    if g.get("world_model") and g["world_model"].get("holdout_error")]
            cells_txt = [_pm(ret, ".3f"), _pm(norm, ".1f") if norm else "—"]
            if smax:
                cells_txt.append(_pm(win, ".2f") if win else "—")
            cells_txt += [_pm(errs, ".4f") if errs else "—", f"{len(got)}/{len(mc)}",
                          f"{np.mean([g['wall_s'] for g in got]):.0f}"]
            lines.append(f"| {METHOD_LABELS[m]} | " + " | ".join(cells_txt) + " |")
        lines += ["", "<details><summary>commands</summary>", "", "```"]
        for c in block:
            lines.append(display_command(c) + ("" if c.key in store else "   # stale" if c.key in stale else
                                               "   # not run"))
        lines += ["```", "", "</details>", ""]
    if grid.get("notes"):  # what the grid's author measured around it (ablations, what limits a method)
        lines += ["## Notes", ""]
        for paragraph in grid["notes"]:
            lines += [paragraph, ""]
    return "\n".join(lines)


def _fmt(x: float | None, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def _pm(xs: list[float], spec: str) -> str:
    if len(xs) == 1:
        return format(xs[0], spec)
    return f"{format(float(np.mean(xs)), spec)} ± {format(float(np.std(xs)), spec)}"


def run_table(args: TableArgs) -> int:
    grid, cells = load_grid(args.config)
    store = Path(grid.get("store", "runs/table/results.jsonl"))
    results = Path(args.results or grid.get("results_md", "docs/results.md"))
    parallel = args.parallel or int(grid.get("parallel", 2))
    if parallel < 1:
        raise ValueError(f"parallel must be >= 1, got {parallel}")
    if args.dry_run:
        done, _ = fresh_cells(cells, read_store(store))
        for c in cells:
            if c.key not in done:
                print(display_command(c))
        return 0
    if not args.render_only:
        run_cells(cells, store, parallel)
    results.parent.mkdir(parents=True, exist_ok=True)
    tmp = results.with_name(f".{results.name}.tmp{os.getpid()}")
    tmp.write_text(render(grid, cells, read_store(store)))
    os.replace(tmp, results)
    print(f"wrote {results}")
    return 0


