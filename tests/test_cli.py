"""The real ``logo-fast`` entry point, run in a subprocess as a user would: exit codes, one-line errors,
signals, temp files, progress output in a pipe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from logo_fast import __version__
from logo_fast.data import make_toy_dataset, save

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "logo_fast.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LOGO_FAST_DEBUG", "LOGO_FAST_PROGRESS")}
    env.update(COLUMNS="200", OMP_NUM_THREADS="1", **extra)
    return env


def run_cli(*args: str, cwd: Path = ROOT, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, env=_env(**env), timeout=timeout)


def assert_one_error(proc: subprocess.CompletedProcess, *needles: str, max_lines: int = 4) -> None:
    """Exit status 2, a short stderr starting 'logo-fast CMD: error:', no traceback, every needle in it."""
    err = proc.stderr
    assert proc.returncode == 2, (proc.returncode, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= max_lines, err
    assert lines[0].startswith("logo-fast ") and ": error: " in lines[0], err
    for needle in needles:
        assert needle in err, (needle, err)


# ---- value errors: one line, the option named, exit 2 ------------------------------------------
@pytest.mark.parametrize(
    "args,needles",
    [
        (["collect", "--seed", "-1", "--n-episodes", "1"], ["--seed must be >= 0"]),
        (["collect", "--n-episodes", "0"], ["--n-episodes must be >= 1"]),
        (["collect", "--env", "bogus:x"], ["--env: unknown env id 'bogus:x'"]),
        (["collect", "--out", "/proc/x.h5", "--n-episodes", "1"], ["--out: cannot create files in /proc"]),
        (["collect", "--out", "x.csv"], ["--out: 'x.csv' must be a directory or end in"]),
        (["data", "info", "/nonexistent/data.h5"], ["/nonexistent/data.h5 does not exist"]),
    ],
    ids=["seed", "n-episodes", "env", "out-proc", "out-suffix", "missing-file"],
)
def test_value_errors_are_one_line_naming_the_option(args, needles):
    assert_one_error(run_cli(*args), *needles)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a build/machine without CUDA")
def test_cuda_device_without_cuda_is_one_line():
    proc = run_cli("demo", "--device", "cuda")
    assert_one_error(proc, "--device cuda:", "CUDA")
    assert "collect" not in proc.stdout  # refused before any work


def test_traceback_on_request():
    for proc in (run_cli("collect", "--seed", "-1", "--traceback"), run_cli("collect", "--seed", "-1",
                                                                             LOGO_FAST_DEBUG="1")):
        assert proc.returncode == 2
        assert "Traceback (most recent call last)" in proc.stderr and "--seed must be >= 0" in proc.stderr


def test_tyro_parse_errors_still_exit_2():
    proc = run_cli("collect", "--no-such-option")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


# ---- version, groups, usage ---------------------------------------------------------------------
def test_version_and_group_listings():
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"logo-fast {__version__}"
    for group, sub in (("data", "info"), ("wm", "eval")):
        proc = run_cli(group)
        assert proc.returncode == 0, proc.stderr
        assert f"logo-fast {group} SUBCOMMAND" in proc.stdout and f"\n  {sub} " in proc.stdout
    proc = run_cli("data", "nope")
    assert proc.returncode == 2 and "unknown subcommand 'nope'" in proc.stderr and "info" in proc.stderr
    proc = run_cli("nope")
    assert proc.returncode == 2 and "unknown command" in proc.stderr


# ---- data info: exit status and damaged files ---------------------------------------------------
@pytest.fixture
def toy_file(tmp_path):
    ds = make_toy_dataset(n_agents=2, n_episodes=30, episode_len=20, seed=0)
    return save(ds, tmp_path / "toy.h5")


def test_data_info_exit_status(tmp_path, toy_file):
    proc = run_cli("data", "info", str(toy_file))
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout
    ds = make_toy_dataset(n_agents=2, n_episodes=3, seed=0)
    ds.obs[1, 0, 0] = np.nan
    bad = save(ds, tmp_path / "nan.h5", validate=False)
    proc = run_cli("data", "info", str(bad))
    assert proc.returncode == 1, proc.stderr
    assert "1 validation problem" in proc.stdout and "obs: 1 non-finite" in proc.stdout
    assert run_cli("data", "info", str(bad), "--quiet").returncode == 1


def _corrupt_first_chunk(path: Path, name: str) -> None:
    with h5py.File(path, "r") as h5:
        info = h5[name].id.get_chunk_info(0)
    with open(path, "r+b") as f:
        f.seek(info.byte_offset + info.size // 3)
        f.write(b"\xff" * max(8, info.size // 3))


def test_damaged_files_name_file_and_field(tmp_path, toy_file):
    gz = tmp_path / "gz.h5"
    gz.write_bytes(toy_file.read_bytes())
    _corrupt_first_chunk(gz, "obs")
    no_state = tmp_path / "no_state.h5"
    no_state.write_bytes(toy_file.read_bytes())
    with h5py.File(no_state, "a") as h5:
        del h5["state"]
    bad_spec = tmp_path / "bad_spec.h5"
    bad_spec.write_bytes(toy_file.read_bytes())
    with h5py.File(bad_spec, "a") as h5:
        h5.attrs["spec"] = "{not json"
    for path, needles in (
        (gz, ["gz.h5", "'obs'", "cannot be read"]),
        (no_state, ["no_state.h5", "['state'] missing"]),
        (bad_spec, ["bad_spec.h5", "attribute 'spec' is not valid JSON"]),
    ):
        assert_one_error(run_cli("data", "info", str(path)), *needles)
        # The library raises the same single ValueError (lazily and eagerly).
        from logo_fast.data import load

        for lazy in (False, True):
            with pytest.raises(ValueError) as err:
                ds = load(path, lazy=lazy)
                if lazy:
                    ds.obs.file.close()
            assert all(n in str(err.value) for n in needles), str(err.value)


# ---- collect: signals, temp files, progress in a pipe -------------------------------------------
def _default_sigint() -> None:
    # A test run started in the background (nohup, `&` in a script) inherits SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler: give the child the terminal's default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_collect(out: Path, n_episodes: int = 100_000, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*CLI, "collect", "--env", "mpe:simple_spread", "--quality", "expert", "--n-episodes", str(n_episodes),
         "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_env(**env),
        preexec_fn=_default_sigint,
    )


def _temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def _wait_for_temp(proc: subprocess.Popen, directory: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if directory.is_dir() and _temps(directory):
            time.sleep(0.3)  # well inside the collection loop
            return
        if proc.poll() is not None:
            raise AssertionError(f"collect ended early: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("collect never created its temp file")


@pytest.mark.parametrize("sig,code,word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_signal_during_collect_leaves_no_temp_file(tmp_path, sig, code, word):
    pytest.importorskip("mpe2")
    out = tmp_path / "data.h5"
    proc = _start_collect(out)
    _wait_for_temp(proc, tmp_path)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3 and word in err, err[-3000:]
    assert _temps(tmp_path) == [] and not out.exists()


def test_kill_9_leftover_is_swept_by_the_next_write(tmp_path):
    pytest.importorskip("mpe2")
    out = tmp_path / "data.h5"
    proc = _start_collect(out)
    _wait_for_temp(proc, tmp_path)
    proc.kill()
    proc.communicate(timeout=30)
    stale = _temps(tmp_path)
    assert len(stale) == 1 and stale[0].startswith(".data.h5.")  # kill -9 cannot be caught
    other = tmp_path / ".other.h5.0123456789ab.tmp.h5"  # another target's temp is not ours to remove
    other.write_bytes(b"x")
    done = run_cli("collect", "--env", "mpe:simple_spread", "--quality", "expert", "--n-episodes", "2",
                   "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    assert _temps(tmp_path) == [other.name] and out.exists()


def test_progress_in_a_pipe_is_lines_and_quiet_is_silent(tmp_path):
    pytest.importorskip("mpe2")
    proc = run_cli("collect", "--env", "mpe:simple_spread", "--quality", "expert", "--n-episodes", "40",
                   "--batch-size", "1", "--out", str(tmp_path / "a.h5"), LOGO_FAST_PROGRESS_INTERVAL="0")
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "\x1b[" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("expert:")]
    assert len(lines) >= 3 and lines[-1].startswith("expert: 40/40 ep"), proc.stderr
    assert "episode return" in proc.stdout  # the summary table
    manifest = json.loads((tmp_path / "a.manifest.json").read_text())
    assert manifest["n_episodes"] == 40
    quiet = run_cli("collect", "--env", "mpe:simple_spread", "--quality", "expert", "--n-episodes", "4",
                    "--out", str(tmp_path / "b.h5"), "--quiet")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == "", (quiet.stdout, quiet.stderr)


def test_closed_pipe_is_not_an_error():
    """`logo-fast --help | head -1`: the reader leaves early; no traceback, no error message."""
    proc = subprocess.Popen([*CLI, "collect", "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env=_env())
    proc.stdout.close()  # nobody reads: the first write that does not fit the pipe fails
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "error" not in err, err
    assert proc.returncode == 141  # the pipe was closed before the child (still starting up) wrote
