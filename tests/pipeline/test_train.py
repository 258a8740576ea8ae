"""The training pipeline on tiny budgets: ratio of synthetic rows, config files, and resume after a real kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from logo_fast.pipeline.train import TrainArgs, load_config, train

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mpe_data(tmp_path_factory) -> Path:
    """40 MPE simple_spread episodes (1,000 steps) written once for the module."""
    from logo_fast.data.collect import CollectArgs, run_collect

    path = tmp_path_factory.mktemp("data") / "mpe_simple_spread_medium_s0.h5"
    run_collect(CollectArgs(env="mpe:simple_spread", quality="medium", seed=0, out=str(path), n_episodes=40,
                            progress=False))
    return path


def _tiny(dataset: Path, out: Path, **kw) -> dict:
    """Settings of a run that takes a few seconds on one CPU thread (as a JSON-able dict)."""
    base = {
        "env": "mpe:simple_spread", "dataset": str(dataset), "updates": 400, "batch_size": 32,
        "rollout_every": 100, "rollout_starts": 16, "horizon": 3, "replay_capacity": 500,
        "eval_every": 200, "eval_episodes": 8, "checkpoint_every": 50, "log_every": 50, "out": str(out),
        "wm": {"hidden": 32, "latent": 16, "epochs": 2, "max_steps": 40, "batch_size": 64},
        "macql": {"hidden": 32, "mixer_embed": 8}, "bc": {"hidden": 32}, "progress": "log",
        "random_return": -25.0, "expert_return": -10.0,
    }
    base.update(kw)
    return base


class _Spy:
    """Wraps a learner and records where each batch's rows came from."""

    def __init__(self, inner):
        self.inner, self.sources = inner, []

    def update(self, batch):
        self.sources.append(batch["source"].clone())
        return self.inner.update(batch)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_synthetic_rows_reach_the_learner_in_the_configured_ratio(mpe_data, tmp_path, monkeypatch):
    import logo_fast.learners as learners

    spies = []
    real_factory = learners.LEARNERS["macql"]

    def spy_factory(*a, **kw):
        spies.append(_Spy(real_factory(*a, **kw)))
        return spies[-1]

    monkeypatch.setitem(learners.LEARNERS, "macql", spy_factory)
    cfg = _tiny(mpe_data, tmp_path / "run", updates=60, real_ratio=0.25, batch_size=40, eval_every=60,
                checkpoint_every=60, progress="none")
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    report = train(load_config(str(path)))
    (spy,) = spies
    src = torch.stack(spy.sources)  # (updates, batch)
    assert src.shape == (60, 40)
    # round(40 * 0.25) = 10 real rows, 30 synthetic, in every batch once rollouts exist (from update 0)
    assert (src.sum(1) == 30).all()
    assert report["last_train_row"]["synthetic_fraction"] == pytest.approx(0.75)

    spies.clear()
    cfg_none = {**cfg, "world_model": "none", "out": str(tmp_path / "none")}
    path.write_text(json.dumps(cfg_none))
    train(load_config(str(path)))
    assert int(torch.stack(spies[0].sources).sum()) == 0  # no world model: real rows only


def test_config_file_fills_the_args_and_flags_override(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"env": "smax:2s3z", "updates": 123, "macql": {"cql_alpha": 3.0}}))
    args = load_config(str(path), overrides=TrainArgs(updates=77, seed=5))
    assert (args.env, args.updates, args.seed, args.macql.cql_alpha) == ("smax:2s3z", 77, 5, 3.0)
    assert args.macql.hidden == TrainArgs().macql.hidden
    path.write_text(json.dumps({"updatez": 1, "macql": {"alpha": 1}}))
    with pytest.raises(ValueError) as err:
        load_config(str(path))
    assert "updatez" in str(err.value) and "alpha" in str(err.value)
    with pytest.raises(ValueError) as err:
        train(TrainArgs(updates=0, world_model="none", wm_checkpoint="nope.pt", env="mpe:nothing"))
    msg = str(err.value)
    assert "updates" in msg and "wm_checkpoint" in msg and "nothing" in msg


def test_packaged_configs_load():
    from logo_fast.pipeline.train import CONFIG_DIR

    names = sorted(p.name for p in CONFIG_DIR.glob("*.json") if not p.name.startswith("table_"))
    assert "mpe_simple_spread.json" in names
    for name in names:
        args = load_config(name)
        assert args.problems() == [] or all("does not exist" in p for p in args.problems()), name


def _cmd(config: Path) -> list[str]:
    return [sys.executable, "-m", "logo_fast.cli", "train", "--config", str(config)]


@pytest.mark.slow
def test_resume_after_kill_9_matches_an_uninterrupted_run(mpe_data, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    configs = {}
    for name in ("straight", "killed"):
        configs[name] = tmp_path / f"{name}.json"
        configs[name].write_text(json.dumps(_tiny(mpe_data, tmp_path / name)))
    done = subprocess.run(_cmd(configs["straight"]), capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(configs["killed"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            cwd=ROOT)
    ckpt = killed_dir / "checkpoint.pt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if ckpt.is_file():
            step = torch.load(ckpt, weights_only=False)["step"]
            if step >= 150:  # past a rollout and an evaluation, well before the end
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed_dir / "report.json").exists()
    at_kill = torch.load(ckpt, weights_only=False)["step"]
    assert at_kill < 400

    again = subprocess.run(_cmd(configs["killed"]), capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from" in again.stdout

    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)
    b = torch.load(ckpt, weights_only=False)
    assert a["step"] == b["step"] == 400
    for part in ("learner", "replay"):
        _assert_same(a[part], b[part], part)
    assert torch.equal(a["rollout_generator"], b["rollout_generator"])
    ra = json.loads((tmp_path / "straight" / "report.json").read_text())
    rb = json.loads((killed_dir / "report.json").read_text())
    assert ra["evals"] == rb["evals"]
    assert [r["loss"] for r in a["rows"]] == [r["loss"] for r in b["rows"]]


def _assert_same(x, y, where):
    if isinstance(x, torch.Tensor):
        assert torch.equal(x, y), where
    elif isinstance(x, dict):
        assert set(x) == set(y), where
        for k in x:
            _assert_same(x[k], y[k], f"{where}.{k}")
    elif isinstance(x, list | tuple):
        assert len(x) == len(y), where
        for i, (u, v) in enumerate(zip(x, y, strict=True)):
            _assert_same(u, v, f"{where}[{i}]")
    elif isinstance(x, np.ndarray):
        assert np.array_equal(x, y), where
    else:
        assert x == y, where


def test_a_checkpoint_from_other_settings_is_refused_or_restarted(mpe_data, tmp_path):
    import dataclasses

    cfg = _tiny(mpe_data, tmp_path / "run", world_model="none", updates=20, eval_every=20, checkpoint_every=10,
                progress="none")
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg))
    args = load_config(str(path))
    train(args)
    more = dataclasses.replace(args, updates=30)  # a longer budget continues the same run
    assert train(more)["n_updates"] == 30
    other = dataclasses.replace(args, macql=dataclasses.replace(args.macql, cql_alpha=0.5))
    with pytest.raises(ValueError, match="other settings.*macql"):
        train(other)
    redone = train(dataclasses.replace(other, restart_on_mismatch=True))
    assert redone["n_updates"] == 20
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["state_key"]["macql"]["cql_alpha"] == 0.5
