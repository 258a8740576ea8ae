"""The runnable entry points a new user meets: the drop-in example and the demo job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_drop_in_example_runs_and_mixes_real_and_synthetic():
    res = subprocess.run([sys.executable, str(ROOT / "examples" / "drop_in.py")], capture_output=True, text=True,
                         cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "synthetic transitions, mean uncertainty u =" in res.stdout
    assert "'source': (256,)" in res.stdout


@pytest.mark.slow
def test_demo_end_to_end_on_a_tiny_budget(tmp_path):
    from logo_fast.pipeline.demo import DemoArgs, run_demo

    out = tmp_path / "demo"
    summary = run_demo(DemoArgs(episodes=24, epochs=2, rollout_starts=16, horizon=3, batch_size=32, out=str(out)))
    assert summary["dataset"]["episodes"] == 24
    assert summary["batch"] == {"real": 16, "synthetic": 16}
    assert 0 < summary["rollout"]["transitions"] <= 16 * 3
    for name in ("report.md", "report.json", "error_vs_horizon.png", "summary.json", "logo.pt"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert set(report["models"]) == {"logo", "joint", "ensemble"}
