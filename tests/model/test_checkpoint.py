"""Checkpoints: atomic save, identical outputs after load, spec/kind mismatches, resume."""

from __future__ import annotations

import os

import pytest
import torch

from logo_fast.data import make_toy_dataset
from logo_fast.model import EnsembleWorldModel, JointWorldModel, LogoWorldModel, load_world_model

from .conftest import small_config


@pytest.mark.parametrize(("cls", "cfg"), [(LogoWorldModel, {}), (LogoWorldModel, {"deductive_state": "hybrid"}),
                                          (JointWorldModel, {}), (EnsembleWorldModel, {})])
def test_save_load_gives_identical_outputs(tmp_path, discrete_ds, cls, cfg):
    model = cls(config=small_config(epochs=2, **cfg)).fit(discrete_ds, progress=False)
    path = tmp_path / "wm.pt"
    model.save(str(path))
    assert sorted(os.listdir(tmp_path)) == ["wm.pt"], "no temp file may be left behind"
    loaded = cls.load(str(path))
    anyk = load_world_model(path)
    assert type(anyk) is cls and loaded.config == model.config and loaded.spec == model.spec
    args = (discrete_ds.obs[:30], discrete_ds.state[:30], discrete_ds.actions[:30], discrete_ds.avail_actions[:30])
    for from_prediction in (False, True):
        a = model.step(*args, state_is_prediction=from_prediction)
        b = loaded.step(*args, state_is_prediction=from_prediction)
        for f in ("next_obs", "next_state", "reward", "terminal_prob", "next_avail", "u"):
            assert torch.equal(getattr(a, f), getattr(b, f)), f
    if cls is EnsembleWorldModel:
        assert loaded.elites == model.elites


def test_manifest_contents(tmp_path, fitted_logo):
    path = tmp_path / "m.pt"
    fitted_logo.save(str(path))
    payload = torch.load(path, weights_only=True)
    m = payload["manifest"]
    assert m["format"] == "logo_fast.world_model" and m["format_version"] == 2 and m["kind"] == "logo"
    assert m["config"]["hidden"] == 32 and m["spec"]["n_agents"] == 3 and m["package_version"]
    assert set(m["normalizers"]) >= {"obs_mean", "obs_std", "state_mean", "state_std", "reward_mean"}
    assert m["rng_state"] is not None and payload["training"]["step"] > 0
    assert payload["training"]["optimizer_state"]["state"], "optimizer state is saved"


def test_mismatched_spec_and_kind_fail_clearly(tmp_path, fitted_logo, continuous_ds):
    path = tmp_path / "wm.pt"
    fitted_logo.save(str(path))
    with pytest.raises(ValueError, match="does not match this dataset") as e:
        LogoWorldModel.load(str(path), spec=continuous_ds.spec)
    assert "action_type" in str(e.value)
    other = make_toy_dataset(n_agents=4, n_episodes=4, episode_len=5, seed=0)
    with pytest.raises(ValueError, match="n_agents: 3 vs 4|n_agents: 4 vs 3"):
        LogoWorldModel(config=small_config()).fit(other, resume_from=str(path), progress=False)
    with pytest.raises(ValueError, match="holds a 'logo' world model, not 'joint'"):
        JointWorldModel.load(str(path))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable world-model checkpoint"):
        LogoWorldModel.load(str(tmp_path / "junk.pt"))
    with pytest.raises(FileNotFoundError):
        LogoWorldModel.load(str(tmp_path / "missing.pt"))


def test_resume_continues_the_same_run(tmp_path, discrete_ds):
    # eval_every divides both lengths and patience is large, so the run is never cut short and
    # the interrupted run's best weights are its last ones (the loss is still falling at step 20).
    cfg = dict(epochs=1000, eval_every=10, patience=100)
    full = LogoWorldModel(config=small_config(max_steps=40, **cfg)).fit(discrete_ds, progress=False)
    first = LogoWorldModel(config=small_config(max_steps=20, **cfg)).fit(discrete_ds, progress=False)
    assert first.train_state.history[-1]["holdout"] == first.train_state.history[-1]["best_holdout"]
    path = tmp_path / "half.pt"
    first.save(str(path))
    resumed = LogoWorldModel(config=small_config(max_steps=40, **cfg)).fit(
        discrete_ds, resume_from=str(path), progress=False)
    assert resumed.train_state.step == 40
    sd_full, sd_res = full.net.state_dict(), resumed.net.state_dict()
    for k in sd_full:
        torch.testing.assert_close(sd_res[k], sd_full[k], rtol=0, atol=0, msg=k)
