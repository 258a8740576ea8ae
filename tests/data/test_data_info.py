"""`data info`: the summary numbers match the dataset, for every format, and invalid data is reported."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tyro

from logo_fast.data import export_augmented, make_toy_dataset, save
from logo_fast.data.formats.omar import write_omar
from logo_fast.data.formats.vault import write_vault
from logo_fast.data.info import InfoArgs, run_info


def _expected(ds):
    starts, ends = ds.episode_bounds()
    returns = ds.episode_returns()
    lengths = ends - starts
    return returns, lengths


def test_info_numbers_match_dataset(tmp_path, capsys):
    ds = make_toy_dataset(n_episodes=9, episode_len=12, action_type="continuous", heterogeneous=True, seed=4)
    path = save(ds, tmp_path / "toy.h5")
    manifest = {"seed": 4, "policy": "heuristic", "git": "abc"}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    info = run_info(InfoArgs(path=str(path)))
    returns, lengths = _expected(ds)
    assert info["format"] == "hdf5" and info["env"] == "toy:landmark"
    assert info["n_steps"] == len(ds) and info["n_episodes"] == ds.n_episodes == 9
    assert info["episode_return"]["mean"] == pytest.approx(returns.mean())
    assert info["episode_return"]["std"] == pytest.approx(returns.std())
    assert info["episode_return"]["min"] == pytest.approx(returns.min())
    assert info["episode_return"]["max"] == pytest.approx(returns.max())
    assert info["episode_length"]["mean"] == pytest.approx(lengths.mean())
    assert info["episode_length"]["max"] == lengths.max()
    assert info["n_terminal"] == int(ds.terminals.sum()) and info["n_truncated"] == int(ds.truncations.sum())
    assert info["n_terminal"] + info["n_truncated"] == 9
    assert info["file_size_bytes"] == path.stat().st_size
    assert info["manifest"] == manifest and info["problems"] == []
    assert info["spec"]["agent_obs_dims"] == [6, 8, 10]
    out = capsys.readouterr().out
    assert "toy:landmark" in out and "valid" in out and f"{len(ds)}" in out and "policy=heuristic" in out


def test_info_reports_problems_instead_of_failing(tmp_path, capsys):
    ds = make_toy_dataset()
    ds.rewards[3] = np.inf
    ds.actions[0, 0] = 7
    path = save(ds, tmp_path / "bad.npz", validate=False)
    info = run_info(InfoArgs(path=str(path)))
    assert len(info["problems"]) == 2
    assert info["problems"][0].startswith("rewards: 1 non-finite")
    assert "2 validation problem(s)" in capsys.readouterr().out
    assert run_info(InfoArgs(path=str(path), check=False, quiet=True))["problems"] is None
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("fmt", ["vault", "omar"])
def test_info_on_directories(tmp_path, fmt):
    ds = make_toy_dataset(n_episodes=5)
    path = write_vault(ds, tmp_path / "t.vlt") if fmt == "vault" else write_omar(ds, tmp_path / "t_omar")
    info = run_info(InfoArgs(path=str(path), quiet=True))
    assert info["format"] == fmt and info["n_steps"] == len(ds) and info["n_episodes"] == 5
    assert info["file_size_bytes"] == sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    assert info["problems"] == []


@pytest.mark.parametrize("fmt", ["hdf5", "vault"])
def test_info_on_augmented_data(tmp_path, fmt):
    real = make_toy_dataset(n_episodes=3)
    rng = np.random.default_rng(0)
    K = 4
    idx = rng.integers(0, len(real), size=K)
    u = np.array([0.1, 0.2, 0.3, 0.6], np.float32)
    syn = {
        "obs": real.obs[idx], "state": real.state[idx], "actions": real.actions[idx],
        "rewards": real.rewards[idx], "terminals": np.zeros(K, bool),
        "next_obs": real.obs[idx], "next_state": real.state[idx], "u": u,
        "avail_actions": real.avail_actions[idx], "next_avail": real.avail_actions[idx],
    }  # fmt: skip
    path = export_augmented(real, syn, tmp_path / ("a.h5" if fmt == "hdf5" else "a.vlt"), format=fmt)
    info = run_info(InfoArgs(path=str(path), quiet=True))
    assert info["n_synthetic"] == K and info["n_episodes"] == real.n_episodes + K
    assert info["synthetic_u"]["max"] == pytest.approx(0.6) and info["synthetic_u"]["mean"] == pytest.approx(0.3)


def test_info_args_parse_with_tyro():
    args = tyro.cli(InfoArgs, args=["data/x.h5", "--no-check"])
    assert args == InfoArgs(path="data/x.h5", check=False)
