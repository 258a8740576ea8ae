"""The README's "Using the library" example runs as pasted (on a smaller dataset and budget)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Smaller sizes so the test takes seconds; each must occur exactly once, so a README edit that
# drops one is noticed here.
SHRINK = {"n_episodes=200": "n_episodes=40", "epochs=20": "epochs=1", "starts=1024": "starts=64"}

CHECKS = """
assert isinstance(model, LogoWorldModel) and model.spec == ds.spec
assert res.next_obs.shape == (8, *ds.obs.shape[1:]) and res.u.shape == (8,)
assert synthetic["u"].ndim == 1 and len(synthetic["u"]) > 0
assert batch["rewards"].shape == (256,) and int((batch["source"] == 1).sum()) == 128
assert replay.capacity == 1_000_000 and replay.allocated_rows < 10_000  # grown on demand, not a million rows
print("README example ok")
"""


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Using the library", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "no python block under 'Using the library'"
    return match.group(1)


def test_readme_library_example_runs(tmp_path):
    pytest.importorskip("mpe2")
    code = readme_example()
    for old, new in SHRINK.items():
        assert code.count(old) == 1, f"README example no longer contains {old!r}"
        code = code.replace(old, new)
    script = tmp_path / "example.py"
    script.write_text(code + CHECKS)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "README example ok" in proc.stdout
    assert (tmp_path / "datasets" / "spread_medium.h5").is_file() and (tmp_path / "logo.pt").is_file()
