"""The first-run GPU check (scripts/gpu_device_check.py) as far as a CPU allows: its dry run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_device_check_dry_run_runs_every_cpu_step_and_lists_the_gpu_ones(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "scripts/gpu_device_check.py",
                          "--dry-run", "--no-build"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = {e["step"]: e for e in json.loads((tmp_path / "gpu_check_summary.json").read_text())}
    # the CPU steps ran and passed, among them the import of the library and the GPU tests without tyro
    assert summary["versions"]["status"] == "ok" and summary["imports_without_tyro"]["status"] == "ok"
    gpu_steps = {"smoke", "gpu_tests", "bench", "bench_rollout", "sanitizer_memcheck", "sanitizer_racecheck",
                 "sanitizer_initcheck", "triton_on_gpu"}
    assert {k for k, e in summary.items() if e["status"] == "dry-run"} == gpu_steps
    assert all(summary[k]["gpu"] for k in gpu_steps)
    env_info = json.loads((tmp_path / "gpu_env.json").read_text())
    assert "torch" in env_info and "backends" in env_info
    # at most eight files come back from the device machine
    assert len(list(tmp_path.iterdir())) <= 8
    # the table is printed last
    tail = res.stdout.strip().splitlines()
    assert tail[-1].startswith("results in") and any(line.startswith("step") for line in tail[-15:])
