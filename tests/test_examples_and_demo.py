"""The runnable entry points a new user meets: the drop-in example and the demo job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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
    args = DemoArgs(episodes=20, updates=40, batch_size=32, rollout_every=20, rollout_starts=16, horizon=3,
                    wm_max_steps=30, hidden=32, eval_every=40, eval_episodes=8, data_dir=str(tmp_path / "data"),
                    out=str(out))
    summary = run_demo(args)
    assert [m["method"] for m in summary["methods"]] == ["MACQL + LOGO", "MACQL", "BC"]
    assert summary["dataset"]["episodes"] == 18  # 20 collected, a tenth held out for the world-model error
    logo, alone, bc = summary["methods"]
    assert logo["wm_state_nmse"] is not None and alone["wm_state_nmse"] is None
    for m in summary["methods"]:
        assert np.isfinite(m["return_mean"]) and m["return_std"] >= 0
        run = json.loads((Path(m["run_dir"]) / "report.json").read_text())
        assert run["n_updates"] == 40 and run["final"]["episodes"] == 8
    for name in ("report.md", "report.json", "learning_curves.png", "summary.json"):
        assert (out / name).is_file(), name
    assert "MACQL + LOGO" in (out / "report.md").read_text()


def test_demo_rejects_bad_arguments_before_any_work(tmp_path):
    from logo_fast.pipeline.demo import DemoArgs, run_demo

    with pytest.raises(ValueError) as err:
        run_demo(DemoArgs(models="logo,mopo", updates=0, env="mamujoco:Hopper-3x1", out=str(tmp_path / "o")))
    msg = str(err.value)
    assert "mopo" in msg and "updates" in msg and "discrete" in msg
    assert not (tmp_path / "o").exists()


def test_demo_command_prints_its_table_naming_macql(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "logo_fast.cli", "demo", "--episodes", "20", "--updates", "20", "--batch-size", "32",
         "--rollout-every", "10", "--rollout-starts", "8", "--horizon", "2", "--wm-max-steps", "20", "--hidden", "16",
         "--eval-every", "20", "--eval-episodes", "8", "--data-dir", str(tmp_path / "d"), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, cwd=ROOT, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "MACQL + LOGO" in res.stdout and "behaviour data" in res.stdout
    assert str(tmp_path / "o" / "report.md") in res.stdout.replace("\n", "")
