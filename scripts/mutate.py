"""Mutation testing of logo_fast's core with mutmut 3 (``make mutate``); writes bench/results/mutation/.

mutmut writes its mutants into ``mutants/`` of the directory it runs in, so this script never runs
it in the working tree: each group of files gets a fresh copy of the tree under ``--workdir``
(default /tmp/logo_fast_mutate), whose ``[tool.mutmut]`` is rewritten to mutate only that group's
files and to select only the fast tests that cover them (GROUPS below). mutmut then maps every
mutated function to the tests that call it and runs only those per mutant.

CPU is scarce here, so the run is bounded: one mutmut worker (``--max-children 1``), one group at a
time, and a wall-time budget (``--budget-s``, default 900) split between the groups. Mutants are
drawn in a seeded random order and run in chunks until a group's share of the budget is spent; the
report says how many of each file's mutants were run (a sample, when not all). ``--sample N`` fixes the
subset: the first N of that order, the same mutants on every run with the same seed and files.

Report: ``report.json`` (every run mutant's status, survivors' diffs) and ``report.md`` (per file
killed / survived / timeout / no tests, kill rate vs the goal, survivors with the reason each is
equivalent or left). Reasons are kept by hand in ``survivor_reasons.json`` (mutant name -> the
mutated line and the reason); a reason is attached only while the mutant's diff still shows that line.

Usage: python scripts/mutate.py [--groups forward,rollout,replay] [--budget-s 900] [--seed 0] [--sample 60]
                                [--merge]
       python scripts/mutate.py --rerun-survivors --groups ops
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results" / "mutation"
MUTMUT_REQUIREMENT = "mutmut>=3.8,<3.9"

# The slow tests left out of every group: Triton's CPU interpreter, subprocess smoke runs, benchmarks.
FAST_K = "not triton and not fused and not kernel and not opcheck and not bench and not script and not gpu"
# group -> files mutated, tests run (fast ones only), goal (fraction of mutants killed, issue 17).
GROUPS: dict[str, dict] = {
    "forward": {
        "files": ["logo_fast/reference/logo_step.py"],
        "tests": ["tests/model/test_logo_forward.py", "tests/strength/test_uncertainty_strength.py",
                  "tests/strength/test_logo_step_restated.py", "tests/ops/test_logo_step.py", "-k", FAST_K],
        "goal": 0.80,
    },
    "rollout": {
        "files": ["logo_fast/model/rollout.py"],
        "tests": ["tests/model/test_rollout.py", "tests/strength/test_rollout_stops.py",
                  "tests/strength/test_rollout_contract.py", "tests/strength/test_rollout_starts.py"],
        "goal": 0.80,
    },
    "replay": {
        "files": ["logo_fast/replay/uncertainty_weighted.py"],
        "tests": ["tests/replay/test_uncertainty_weighted_replay.py", "tests/strength/test_replay_real_uniform.py",
                  "tests/strength/test_replay_contract.py", "tests/strength/test_pinned_seeds.py"],
        "goal": 0.90,
    },
    "networks": {
        "files": ["logo_fast/model/networks/logo.py", "logo_fast/model/networks/world.py",
                  "logo_fast/model/networks/layers.py", "logo_fast/model/networks/losses.py"],
        "tests": ["tests/model/test_logo_forward.py", "tests/strength/test_uncertainty_strength.py",
                  "tests/strength/test_logo_step_restated.py", "tests/strength/test_early_stopping.py",
                  "tests/model/test_logo.py", "tests/model/test_baselines.py",
                  "tests/strength/test_networks_contract.py"],
        "goal": 0.80,
    },
    "ops": {
        "files": ["logo_fast/ops/logo_step.py", "logo_fast/ops/state_disagreement.py",
                  "logo_fast/reference/state_disagreement.py"],
        "tests": ["tests/ops/test_state_disagreement.py", "tests/ops/test_logo_step.py",
                  "tests/strength/test_logo_step_restated.py", "tests/strength/test_ops_contract.py", "-k",
                  # torch.compile cannot trace mutmut's trampolines (ContextVar.get): those tests fail unmutated.
                  # The two dispatch tests run the Triton interpreter on tiny models (~7 s together).
                  f"({FAST_K} and not compile) or test_op_runs_the_fused_kernel_when_triton_is_requested"
                  " or test_op_takes_the_two_kernel_path_for_a_wide_model"],
        "goal": 0.90,
    },
    "sampler_reference": {
        "files": ["logo_fast/reference/weighted_sample.py"],
        "tests": ["tests/ops/test_weighted_sample.py", "tests/strength/test_sampler_reference_strength.py", "-k",
                  "not gpu and not opcheck and not cuda"],
        "goal": 0.90,
    },
    "sampler": {
        "files": ["logo_fast/sampler.py", "logo_fast/ops/weighted_sample.py"],
        "tests": ["tests/replay/test_weighted_sampler.py", "tests/ops/test_weighted_sample.py",
                  "tests/strength/test_sampler_reference_strength.py", "tests/strength/test_sampler_contract.py",
                  # torch.compile cannot trace mutmut's trampolines: the compiled paths are left unmutated-tested
                  "-k", "not gpu and not opcheck and not compile"],
        "goal": 0.90,
    },
}
DEFAULT_GROUPS = "forward,rollout,replay"
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout",
          -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout", -11: "segfault", -9: "segfault",
          None: "not run"}
COPIED = ["logo_fast", "kernels", "tests", "scripts", "bench", "setup.py", "pyproject.toml"]

# Run inside a group's copy: generate the mutants (mutmut's own first phase, nothing is tested) and list them.
_LIST = """
import json, sys
from mutmut.__main__ import create_mutants
from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir, setup_source_paths, walk_mutatable_files
from mutmut.mutation.data import SourceFileMutationData
copy_src_dir(); copy_also_copy_files(); setup_source_paths(); create_mutants(1)
out = {}
for path in walk_mutatable_files():
    m = SourceFileMutationData(path=path); m.load(); out[str(path)] = sorted(m.exit_code_by_key)
json.dump(out, sys.stdout)
"""
# Run inside a group's copy after mutmut: every mutant's exit code, and the diff of the ones asked for.
_COLLECT = """
import json, sys
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.utils.file_utils import walk_mutatable_files
want = set(json.loads(sys.argv[1]))
out = {}
for path in walk_mutatable_files():
    m = SourceFileMutationData(path=path); m.load()
    for name, code in m.exit_code_by_key.items():
        diff = get_diff_for_mutant(name, path=path) if name in want else None
        out[name] = {"file": str(path), "exit_code": code, "diff": diff}
json.dump(out, sys.stdout)
"""


def ensure_mutmut(python: str) -> None:
    if subprocess.run([python, "-c", "import mutmut"], capture_output=True).returncode != 0:
        subprocess.run([python, "-m", "pip", "install", "-q", MUTMUT_REQUIREMENT], check=True)


def _toml_list(items: list[str]) -> str:
    return json.dumps(items)  # a JSON list of strings is a TOML array


def prepare_copy(group: str, workdir: Path) -> Path:
    """A fresh copy of the tree for ``group`` with its [tool.mutmut] section (the shared tree is only read)."""
    dst = workdir / group
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "mutants", ".pytest_cache")
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=ignore, symlinks=True)
        else:
            shutil.copy2(src, dst / name)
    spec = GROUPS[group]
    text = (dst / "pyproject.toml").read_text()
    text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", text).rstrip() + "\n"
    text += (f"\n[tool.mutmut]\nsource_paths = [\"logo_fast\"]\nonly_mutate = {_toml_list(spec['files'])}\n"
             f"pytest_add_cli_args = [\"-p\", \"no:cacheprovider\"]\n"
             f"pytest_add_cli_args_test_selection = {_toml_list(spec['tests'])}\n"
             "also_copy = [\"kernels\", \"scripts\", \"bench\", \"setup.py\"]\n"
             "use_git_change_detection = false\n")
    (dst / "pyproject.toml").write_text(text)
    return dst


def _env() -> dict[str, str]:
    # One thread everywhere: the machine's cores are shared, and tiny tensors run faster on one.
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TORCH_NUM_THREADS="1",
                PYTHONDONTWRITEBYTECODE="1")


def run_group(group: str, python: str, workdir: Path, budget_s: float, seed: int, chunk: int, log,
              only: list[str] | None = None, sample: int | None = None) -> dict:
    """Run ``group``'s mutants (a seeded random order; ``only``: just these, in order) until ``budget_s``.

    ``sample``: run at most this many, the first of the seeded order (a fixed subset for a given seed and file
    set, so a rerun with new tests is scored on the same mutants).
    """
    t0 = time.monotonic()
    dst = prepare_copy(group, workdir)
    mutmut = str(Path(python).with_name("mutmut"))
    listed = subprocess.run([python, "-c", _LIST], cwd=dst, env=_env(), capture_output=True, text=True)
    if listed.returncode != 0:
        raise RuntimeError(f"{group}: listing mutants failed:\n{listed.stderr[-4000:]}")
    by_file = json.loads(listed.stdout.strip().splitlines()[-1])
    names = [n for file_names in by_file.values() for n in file_names]
    order = names[:]
    random.Random(seed).shuffle(order)  # a seeded sample when the budget runs out before the list
    if sample is not None:
        order = order[:sample]
    if only is not None:
        order = [n for n in only if n in set(names)]
    log(f"[{group}] {len(names)} mutants in {len(by_file)} files, {len(order)} to run; budget {budget_s:.0f}s")
    tried: list[str] = []
    while order and time.monotonic() - t0 < budget_s:
        batch, order = order[:chunk], order[chunk:]
        left = budget_s - (time.monotonic() - t0)
        # Its own session, so a chunk over the budget is ended with every worker it forked.
        p = subprocess.Popen([mutmut, "run", "--max-children", "1", *batch], cwd=dst, env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            out, _ = p.communicate(timeout=max(60.0, left + 60.0))
            if p.returncode != 0:
                log(f"[{group}] mutmut exited {p.returncode}:\n{out[-3000:]}")
                if not tried:
                    raise RuntimeError(f"{group}: mutmut failed on its first chunk (see above)")
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            log(f"[{group}] chunk over the budget, stopped (its unfinished mutants count as not run)")
        tried += batch
        log(f"[{group}] {len(tried)}/{len(names)} mutants run, {time.monotonic() - t0:.0f}s")
    got = subprocess.run([python, "-c", _COLLECT, json.dumps(tried)], cwd=dst, env=_env(), capture_output=True,
                         text=True)
    if got.returncode != 0:
        raise RuntimeError(f"{group}: collecting results failed:\n{got.stderr[-4000:]}")
    results = json.loads(got.stdout.strip().splitlines()[-1])
    # A mutant without an exit code was never finished (its chunk ran over the budget): not run.
    mutants = {n: {**results[n], "status": STATUS.get(results[n]["exit_code"], "suspicious")} for n in tried
               if n in results and results[n]["exit_code"] is not None}
    return {"group": group, "files": GROUPS[group]["files"], "tests": GROUPS[group]["tests"],
            "goal": GROUPS[group]["goal"], "total_mutants": {f: len(v) for f, v in by_file.items()},
            "mutants": mutants, "wall_s": round(time.monotonic() - t0, 1), "complete": not order,
            "sample": sample, "seed": seed}


def summarise(group: dict) -> dict[str, dict]:
    per_file: dict[str, dict] = {}
    for f, total in group["total_mutants"].items():
        per_file[f] = {"total": total, "run": 0, "killed": 0, "survived": 0, "timeout": 0, "no tests": 0, "other": 0}
    for m in group["mutants"].values():
        row = per_file[m["file"]]
        row["run"] += 1
        row[m["status"] if m["status"] in row else "other"] += 1
    for row in per_file.values():
        # Timeouts count as killed (the mutant made a test hang or blow up); mutants no test reaches do not.
        scored = row["killed"] + row["timeout"] + row["survived"] + row["no tests"]
        row["kill_rate"] = round((row["killed"] + row["timeout"]) / scored, 4) if scored else None
    return per_file


def _mutated_line(diff: str | None) -> str:
    """The mutation in one line: ``old -> new`` from the diff's first removed and added lines."""
    if not diff:
        return ""
    body = [ln for ln in diff.splitlines() if not ln.startswith(("---", "+++"))]
    minus = [ln[1:].strip() for ln in body if ln.startswith("-")]
    plus = [ln[1:].strip() for ln in body if ln.startswith("+")]
    return f"{minus[0] if minus else ''} -> {plus[0] if plus else ''}"


def write_report(groups: list[dict], budget_s: float, seed: int, started: str, rerun: str | None = None) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    reasons_path = OUT / "survivor_reasons.json"
    reasons = json.loads(reasons_path.read_text()) if reasons_path.exists() else {}
    lines = ["# Mutation testing report (mutmut 3)", "",
             f"Run {started} by `make mutate` (scripts/mutate.py): one worker, seed {seed}, wall budget of the "
             f"latest run {budget_s:.0f} s (each group's own time is in its heading). Kill rate = (killed + "
             "timeout) / (killed + timeout + survived + no tests), over the mutants run. Where `run` < `total` "
             "the mutants run are a seeded random sample (the budget ran out).", ""]
    if rerun:
        lines += [f"Survivors of that run were run again on {rerun} after the tests that close them were added; "
                  "`first status` in report.json keeps what the first run found.", ""]
    for g in groups:
        per_file = summarise(g)
        killed = sum(r["killed"] + r["timeout"] for r in per_file.values())
        scored = sum(r["killed"] + r["timeout"] + r["survived"] + r["no tests"] for r in per_file.values())
        rate = killed / scored if scored else None
        g["per_file"], g["kill_rate"] = per_file, rate
        verdict = "n/a" if rate is None else ("meets" if rate >= g["goal"] else "below")
        # Survivors whose hand-kept reason (for this very mutation) calls them equivalent, for the second score.
        equivalent = sum(1 for n, m in g["mutants"].items() if m["status"] in ("survived", "no tests")
                         and (reasons.get(n) or {}).get("line") == _mutated_line(m["diff"])
                         and reasons[n]["reason"].startswith("equivalent"))
        g["equivalent_survivors"] = equivalent
        sample = f"a seeded sample of {g['sample']}, seed {g.get('seed', seed)}; " if g.get("sample") else ""
        lines += [f"## {g['group']}: kill rate {'n/a' if rate is None else f'{rate:.1%}'} "
                  f"(goal {g['goal']:.0%}, {verdict}); {g['wall_s']:.0f} s", "",
                  f"Mutants run: {sample}{scored} scored, {equivalent} of the survivors equivalent"
                  + (f" (kill rate without them {killed / (scored - equivalent):.1%})" if scored > equivalent else "")
                  + ".", "",
                  f"Tests: `{' '.join(g['tests'])}`", "",
                  "| file | total | run | killed | timeout | survived | no tests | kill rate |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for f, r in per_file.items():
            kr = "n/a" if r["kill_rate"] is None else f"{r['kill_rate']:.1%}"
            lines.append(f"| {f} | {r['total']} | {r['run']} | {r['killed']} | {r['timeout']} | {r['survived']} "
                         f"| {r['no tests']} | {kr} |")
        closed = {n: m for n, m in g["mutants"].items()
                  if m.get("first_status") in ("survived", "no tests") and m["status"] not in ("survived", "no tests")}
        if closed:
            lines += ["", "Survivors of the previous run that the tests added since kill:", ""]
            for n, m in sorted(closed.items()):
                r = reasons.get(n)
                line = _mutated_line(m["diff"])
                why = r["reason"] if r and r.get("line") == line else ""
                lines.append(f"- `{n}` ({m['first_status']} -> {m['status']}): `{line}`{' — ' + why if why else ''}")
        left = {n: m for n, m in g["mutants"].items() if m["status"] in ("survived", "no tests")}
        if left:
            lines += ["", "Survivors:", ""]
            for n, m in sorted(left.items()):
                line = _mutated_line(m["diff"])
                r = reasons.get(n)
                why = r["reason"] if r and r.get("line") == line else "not reviewed yet"
                m["reason"] = why
                lines.append(f"- `{n}` ({m['status']}): `{line}` — {why}")
        lines.append("")
    payload = {"started": started, "budget_s": budget_s, "seed": seed, "rerun": rerun, "groups": groups}
    for name, text in (("report.json", json.dumps(payload, indent=1)), ("report.md", "\n".join(lines))):
        fd, tmp = tempfile.mkstemp(dir=OUT, prefix=f".{name}.")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, OUT / name)


def _mark_closed(group: dict, previous: dict[str, dict]) -> None:
    """Mutants that survived the group's previous run and are killed now get ``first_status`` (the report lists
    them as closed), when the mutation is still the same line (a changed file reuses names for other mutants)."""
    for n, m in group["mutants"].items():
        old = previous.get(n)
        if (old and old["status"] in ("survived", "no tests") and m["status"] not in ("survived", "no tests")
                and _mutated_line(m["diff"]) == _mutated_line(old.get("diff"))):
            m["first_status"] = old["status"]


def rerun_survivors(args, workdir: Path) -> int:
    """Run the last report's survivors again on a fresh copy (new tests) and record each one's new status."""
    prev = json.loads((OUT / "report.json").read_text())
    t0 = time.monotonic()
    groups = prev["groups"]
    wanted = {g.strip() for g in args.groups.split(",")}
    for i, g in enumerate(groups):
        left = [n for n, m in g["mutants"].items() if m["status"] in ("survived", "no tests")]
        if not left or g["group"] not in wanted:
            continue
        share = (args.budget_s - (time.monotonic() - t0)) / (len(groups) - i)
        new = run_group(g["group"], args.python, workdir, share, g.get("seed", args.seed), max(args.chunk, len(left)),
                        lambda s: print(s, file=sys.stderr, flush=True), only=left)
        for n, m in new["mutants"].items():
            old = g["mutants"][n]
            if _mutated_line(m["diff"]) == _mutated_line(old["diff"]):
                g["mutants"][n] = {**m, "first_status": old["status"]}
            else:  # the file changed since: the name now stands for another mutation; keep both, apart
                old["status"] = f"{old['status']} (gone: the code changed since)"
                g["mutants"][f"{n} (after the change)"] = m
        g["tests"] = new["tests"]
        g["wall_s"] = round(g["wall_s"] + new["wall_s"], 1)
    note = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    write_report(groups, prev["budget_s"], prev["seed"], prev["started"], rerun=note)
    print(f"mutate: report in {OUT / 'report.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--groups", default=DEFAULT_GROUPS, help=f"comma-separated, from {list(GROUPS)}")
    ap.add_argument("--budget-s", type=float, default=900.0, help="total wall-time budget, split between groups")
    ap.add_argument("--seed", type=int, default=0, help="order in which mutants are drawn (the sample)")
    ap.add_argument("--chunk", type=int, default=8, help="mutants per mutmut invocation")
    ap.add_argument("--sample", type=int, default=None,
                    help="per group, run at most this many mutants: the first of the seeded order (a fixed subset)")
    ap.add_argument("--workdir", default="/tmp/logo_fast_mutate", help="where the copies of the tree go")
    ap.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"))
    ap.add_argument("--merge", action="store_true",
                    help="keep the other groups of the existing report (replace only the groups run now)")
    ap.add_argument("--rerun-survivors", action="store_true",
                    help="run again only the survivors of the last report (after new tests) and update it")
    args = ap.parse_args(argv)
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    problems = [f"unknown groups {unknown}; known: {list(GROUPS)}"] if unknown else []
    if args.sample is not None and args.sample < 1:
        problems.append(f"--sample must be >= 1, got {args.sample}")
    if args.budget_s <= 0:
        problems.append(f"--budget-s must be > 0, got {args.budget_s}")
    workdir = Path(args.workdir).resolve()
    if workdir == ROOT or ROOT in workdir.parents:
        problems.append(f"--workdir {workdir} is inside the working tree; mutmut must run on a copy")
    if problems:
        raise SystemExit("mutate: bad arguments:\n  - " + "\n  - ".join(problems))
    ensure_mutmut(args.python)
    if args.rerun_survivors:
        return rerun_survivors(args, workdir)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    t0 = time.monotonic()
    done = []
    kept: list[dict] = []
    rerun = None
    before: dict[str, dict] = {}
    if args.merge and (OUT / "report.json").exists():
        prev = json.loads((OUT / "report.json").read_text())
        kept = [g for g in prev["groups"] if g["group"] not in groups]
        before = {g["group"]: g["mutants"] for g in prev["groups"] if g["group"] in groups}
        rerun = prev.get("rerun")
        started = f"{prev['started']} (groups {', '.join(groups)} again at {started})"
    for i, g in enumerate(groups):
        share = (args.budget_s - (time.monotonic() - t0)) / (len(groups) - i)
        done.append(run_group(g, args.python, workdir, share, args.seed, args.chunk,
                              lambda s: print(s, file=sys.stderr, flush=True), sample=args.sample))
        _mark_closed(done[-1], before.get(g, {}))
        # written after every group, so a partial report survives an interruption
        write_report(kept + done, args.budget_s, args.seed, started, rerun=rerun)
    print(f"mutate: report in {OUT / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
