"""Shared set-up of the multi-process tests: every launch has a timeout, every rank one thread."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JOB = Path(__file__).with_name("_job.py")
# Every collective in these tests fails after this many seconds instead of hanging CI.
COLLECTIVE_TIMEOUT_S = 60
LAUNCH_TIMEOUT_S = 300  # generous: on a loaded 2-core machine importing torch alone took 15 s


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", LOGO_FAST_DIST_TIMEOUT=str(COLLECTIVE_TIMEOUT_S),
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def torchrun(args: list[str], timeout: float = LAUNCH_TIMEOUT_S) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node 2 ARGS`` with a hard timeout; fails the test with its output."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "--max-restarts", "0", *args]
    try:
        res = subprocess.run(cmd, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"torchrun did not finish within {timeout}s:\n{e.stdout}\n{e.stderr}")
    if res.returncode != 0:
        pytest.fail(f"torchrun failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-8000:]}")
    return res


@pytest.fixture(scope="session")
def two_rank_job(tmp_path_factory):
    """Run tests/distributed/_job.py on 2 gloo ranks once; returns its output folder."""
    from logo_fast.data import make_toy_dataset, save

    out = tmp_path_factory.mktemp("two_rank_job")
    train = make_toy_dataset(n_agents=2, n_episodes=8, episode_len=6, seed=1)
    holdout = make_toy_dataset(n_agents=2, n_episodes=3, episode_len=6, seed=2)
    s, e = train.episode_bounds()
    # the precondition that makes the global batch the whole training split: 8 full episodes of 6
    assert (e - s).tolist() == [6] * 8
    save(train, out / "train.h5")
    save(holdout, out / "holdout.h5")
    torchrun([str(JOB), str(out)])
    return out
