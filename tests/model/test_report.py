"""The accuracy report: metrics, files, checkpoint reuse, the CLI entry point."""

from __future__ import annotations

import json

import pytest

from logo_fast.data import make_toy_dataset
from logo_fast.model import WorldModelConfig
from logo_fast.model.report import EvalArgs, evaluate_models, markdown_report, markdown_summary, run_eval

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
    args = EvalArgs(dataset=str(path), models="logo,joint", out=str(tmp_path / "out"), seeds="0,1", horizon=3,
                    holdout_fraction=0.25, progress=False,
                    model=WorldModelConfig(epochs=1, hidden=16, latent=8, batch_size=32))
    rep = run_eval(args)
    assert set(rep["models"]) == {"logo", "joint"} and rep["seeds"] == [0, 1]
    one = rep["models"]["logo"]["one_step"]
    assert one["avail_accuracy"]["mean"] is None  # continuous task: no avail head
    per_seed = [json.loads((tmp_path / "out" / f"seed{k}" / "report.json").read_text()) for k in (0, 1)]
    values = [r["models"]["logo"]["one_step"]["state_nmse"] for r in per_seed]
    assert one["state_nmse"]["values"] == values
    assert one["state_nmse"]["mean"] == pytest.approx(sum(values) / 2)
    assert one["state_nmse"]["std"] == pytest.approx(abs(values[0] - values[1]) / 2)
    assert values[0] != values[1], "different seeds train different models"
    md = markdown_summary(rep)
    assert "Open-loop state nMSE" in md and " ± " in md and "Model selection:" in md
    assert "Open-loop state nMSE" in markdown_report(per_seed[0])
    for f in ("report.json", "report.md", "error_vs_horizon.png"):
        assert (tmp_path / "out" / f).stat().st_size > 0


def test_stale_checkpoints_are_retrained_and_say_why(tmp_path, capsys):
    """A checkpoint is reused only for the same data and config; otherwise the model is retrained (and says so)."""
    a = make_toy_dataset(n_agents=2, n_episodes=8, episode_len=10, action_type="discrete", seed=5)
    b = make_toy_dataset(n_agents=2, n_episodes=8, episode_len=10, action_type="discrete", seed=6)
    over = {**SMALL, "epochs": 1}
    kw = dict(models=("logo",), out_dir=tmp_path, progress=False, horizon=2)
    first = evaluate_models(*a.split_episodes(0.25, 0), **kw, **over)
    assert not first["models"]["logo"]["reused_checkpoint"]
    same = evaluate_models(*a.split_episodes(0.25, 0), **kw, **over)
    assert same["models"]["logo"]["reused_checkpoint"] and "reusing" in capsys.readouterr().out
    other_data = evaluate_models(*b.split_episodes(0.25, 0), **kw, **over)
    assert not other_data["models"]["logo"]["reused_checkpoint"]
    assert "other data" in capsys.readouterr().out
    other_cfg = evaluate_models(*b.split_episodes(0.25, 0), **kw, **{**over, "hidden": 24})
    assert not other_cfg["models"]["logo"]["reused_checkpoint"]
    assert other_cfg["models"]["logo"]["n_parameters"] != other_data["models"]["logo"]["n_parameters"]
    assert "hidden: 32 -> 24" in capsys.readouterr().out


def test_interrupted_fit_resumes_from_its_partial_checkpoint(tmp_path, capsys):
    """A partial checkpoint (as a killed run leaves it) is resumed; the result equals an uninterrupted fit."""
    from logo_fast.model import LogoWorldModel

    ds = make_toy_dataset(n_agents=2, n_episodes=8, episode_len=10, action_type="discrete", seed=5)
    train, hold = ds.split_episodes(0.25, 0)
    cfg = WorldModelConfig(**{**SMALL, "epochs": 4, "eval_every": 2})
    full = evaluate_models(train, hold, models=("logo",), config=cfg, out_dir=tmp_path / "full", progress=False,
                           horizon=2)
    # What a run killed after its first evaluations leaves behind: the partial checkpoint only.
    (tmp_path / "cut").mkdir()
    LogoWorldModel(config=cfg.replace(max_steps=2)).fit(train, progress=False,
                                                         checkpoint_path=str(tmp_path / "cut" / "logo.partial.pt"))
    resumed = evaluate_models(train, hold, models=("logo",), config=cfg, out_dir=tmp_path / "cut", progress=False,
                              horizon=2)
    assert "resuming logo" in capsys.readouterr().out
    assert not (tmp_path / "cut" / "logo.partial.pt").exists()
    assert resumed["models"]["logo"]["one_step"] == full["models"]["logo"]["one_step"]


def test_unknown_model_name(discrete_ds):
    train, hold = discrete_ds.split_episodes(0.3, 0)
    with pytest.raises(ValueError, match="unknown models"):
        evaluate_models(train, hold, models=("logo", "mopo"), progress=False)
