"""The accuracy report: metrics, files, checkpoint reuse, the CLI entry point."""

from __future__ import annotations

import json

import pytest

from logo_fast.data import make_toy_dataset
from logo_fast.model.report import EvalArgs, evaluate_models, markdown_report, run_eval

from .conftest import SMALL


@pytest.mark.slow
def test_evaluate_models_writes_report_and_reuses_checkpoints(tmp_path, discrete_ds):
    train, hold = discrete_ds.split_episodes(0.3, 0)
    over = {**SMALL, "epochs": 2}
    rep, models = evaluate_models(train, hold, config=None, out_dir=tmp_path, progress=False, horizon=4,
                                  return_models=True, **over)
    assert set(rep["models"]) == {"logo", "joint", "ensemble"}
    for name, m in rep["models"].items():
        o = m["one_step"]
        assert o["obs_nmse"] >= 0 and o["state_nmse"] >= 0 and 0 <= o["term_accuracy"] <= 1
        assert 0 <= o["avail_accuracy"] <= 1
        assert 1 <= len(m["open_loop"]["state_nmse"]) <= 4
        assert m["step_ms_per_1k_rows"] > 0 and m["train_time_s"] > 0 and not m["reused_checkpoint"]
        assert (o["spearman_u_state_error"] is None) == (name == "joint")
        assert (tmp_path / f"{name}.pt").is_file()
    assert rep["models"]["ensemble"]["elites"] == models["ensemble"].elites
    for f in ("report.json", "report.md", "error_vs_horizon.png"):
        assert (tmp_path / f).stat().st_size > 0
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["models"]["logo"]["one_step"]["state_nmse"] == rep["models"]["logo"]["one_step"]["state_nmse"]
    assert "| logo |" in (tmp_path / "report.md").read_text()
    again = evaluate_models(train, hold, models=("logo",), out_dir=tmp_path, progress=False, horizon=4, **over)
    assert again["models"]["logo"]["reused_checkpoint"]
    assert again["models"]["logo"]["one_step"] == rep["models"]["logo"]["one_step"]


def test_run_eval_cli_args(tmp_path):
    from logo_fast.data.io import save

    ds = make_toy_dataset(n_agents=2, n_episodes=8, episode_len=10, action_type="continuous", seed=5)
    path = save(ds, tmp_path / "toy.h5")
    args = EvalArgs(dataset=str(path), models="logo,joint", out=str(tmp_path / "out"), epochs=1, hidden=16,
                    latent=8, batch_size=32, horizon=3, holdout_fraction=0.25, progress=False)
    rep = run_eval(args)
    assert set(rep["models"]) == {"logo", "joint"}
    assert "avail_accuracy" not in rep["models"]["logo"]["one_step"]
    assert "Open-loop state nMSE" in markdown_report(rep)


def test_unknown_model_name(discrete_ds):
    train, hold = discrete_ds.split_episodes(0.3, 0)
    with pytest.raises(ValueError, match="unknown models"):
        evaluate_models(train, hold, models=("logo", "mopo"), progress=False)
