"""examples/augment_vault.py on tiny settings: the command line as a user runs it, and main() on a given vault."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from logo_fast.data import make_toy_dataset, read_augmented
from logo_fast.data.formats.vault import write_vault

pytest.importorskip("tensorstore", reason="vaults need tensorstore (extra: vault)")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "augment_vault.py"
TINY = ["--starts", "12", "--horizon", "3", "--hidden", "16", "--latent", "8", "--epochs", "2", "--max-steps", "20"]


def test_example_writes_a_toy_vault_then_the_augmented_one(tmp_path):
    out = tmp_path / "vaults" / "aug.vlt"
    res = subprocess.run([sys.executable, str(EXAMPLE), "--out", str(out), "--toy-episodes", "6", *TINY],
                         capture_output=True, text=True, cwd=ROOT, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "no --vault given: wrote a toy OG-MARL-layout vault" in res.stdout
    m = re.search(r"wrote (\S+): (\d+) real steps \(\d+ episodes\) \+ (\d+) synthetic transitions", res.stdout)
    assert m, res.stdout
    uid_dir, n_real, n_syn = Path(m.group(1)), int(m.group(2)), int(m.group(3))
    assert uid_dir == out / "Augmented"
    ds, extras = read_augmented(uid_dir)
    assert len(ds) == n_real + n_syn and int(extras["synthetic"].sum()) == n_syn
    assert 12 <= n_syn <= 36
    assert "dropped" in res.stdout  # the toy vault has no final observations, like OG-MARL's
    try:
        import flashbax  # noqa: F401
    except ImportError:
        assert "flashbax is not installed" in res.stdout
    else:
        assert f"flashbax Vault.read(): {n_real + n_syn} steps" in res.stdout


def test_example_main_on_a_given_continuous_vault(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("augment_vault", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "augment_vault", example)  # dataclasses look their module up there
    spec.loader.exec_module(example)
    src = make_toy_dataset(n_agents=3, n_episodes=5, episode_len=8, action_type="continuous", heterogeneous=True,
                           seed=7)
    write_vault(src, tmp_path / "vaults" / "cont.vlt", vault_uid="Medium")
    args = example.AugmentArgs(vault=str(tmp_path / "vaults" / "cont.vlt"), uid="Medium",
                               out=str(tmp_path / "vaults" / "cont_aug.vlt"), starts=10, horizon=2, hidden=16,
                               latent=8, epochs=2, max_steps=20, verify_with_flashbax=False)
    summary = example.main(args)
    assert summary["real_steps"] == len(src)  # final observations stored: nothing trimmed
    ds, extras = read_augmented(summary["vault"])
    np.testing.assert_array_equal(ds.obs[: len(src)], src.obs)
    syn = ds.actions[len(src):]
    assert np.all(syn >= src.action_low - 1e-6) and np.all(syn <= src.action_high + 1e-6)
    assert np.all(syn[:, ~src.spec.act_mask()] == 0), "padded action entries stay zero"
    assert extras["u"][len(src):].min() >= 0 and len(ds) == len(src) + summary["synthetic"]
