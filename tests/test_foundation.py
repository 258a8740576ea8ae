"""The package, its build and backend selection, as a new user meets them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import logo_fast
from logo_fast.backend import BackendUnavailableError, backend_info, choose_backend
from tests.conftest import triton_available

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, env: dict | None = None, cwd: Path | str = ROOT) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, cwd=cwd)


def test_import_is_cheap_and_lazy():
    res = _run(
        "import sys, logo_fast; heavy = [m for m in ('torch', 'triton', 'jax', 'mujoco', 'logo_fast._C') "
        "if m in sys.modules]; print(heavy)"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_backend_info_has_every_backend_with_a_reason():
    info = backend_info()
    for name in ("torch", "triton", "cuda", "extension"):
        assert isinstance(info[name]["available"], bool)
        assert info[name]["reason"]
    assert info["torch"]["available"]
    # the README's set-up builds the extension, so here it must be loaded
    assert info["extension"]["available"], info["extension"]["reason"]
    if not torch.cuda.is_available():
        assert not info["cuda"]["available"] and not info["triton"]["available"]
        assert "GPU" in info["cuda"]["reason"] or "without CUDA" in info["cuda"]["reason"]


def test_backend_module_prints_a_summary():
    res = subprocess.run([sys.executable, "-m", "logo_fast.backend"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    for name in ("torch", "triton", "cuda", "extension"):
        assert name in res.stdout


def test_auto_picks_extension_on_cpu_and_explicit_requests_are_checked(monkeypatch):
    monkeypatch.setenv("LOGO_FAST_BACKEND", "auto")
    assert choose_backend("op", "cpu", ("torch", "extension")) == "extension"
    assert choose_backend("op", "cpu", ("torch", "triton")) == "torch"
    monkeypatch.setenv("LOGO_FAST_BACKEND", "torch")
    assert choose_backend("op", "cpu", ("torch", "extension")) == "torch"
    monkeypatch.setenv("LOGO_FAST_BACKEND", "cuda")
    if backend_info()["cuda"]["available"]:
        assert choose_backend("op", "cpu", ("torch", "extension")) == "extension"  # the CUDA path's CPU twin
    else:  # an explicit cuda request never silently runs the C++ CPU path
        with pytest.raises(BackendUnavailableError, match="LOGO_FAST_BACKEND=cuda cannot run op on cpu"):
            choose_backend("op", "cpu", ("torch", "extension"))
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailableError, match="cannot run op on cuda"):
            choose_backend("op", "cuda", ("torch", "cuda"))
    monkeypatch.setenv("LOGO_FAST_BACKEND", "triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailableError, match="Triton"):
            choose_backend("op", "cpu", ("torch", "triton"))
    with pytest.raises(BackendUnavailableError, match="no triton implementation"):
        choose_backend("op", "cpu", ("torch",))
    monkeypatch.setenv("LOGO_FAST_BACKEND", "fastest")
    with pytest.raises(ValueError, match="LOGO_FAST_BACKEND must be one of"):
        choose_backend("op", "cpu", ("torch",))


def test_cli_lists_commands_and_rejects_unknown_ones():
    exe = [sys.executable, "-m", "logo_fast.cli"]
    res = subprocess.run(exe, capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0 and "wm eval" in res.stdout and "collect" in res.stdout
    res = subprocess.run([*exe, "frobnicate"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 2 and "unknown command" in res.stderr
    res = subprocess.run([*exe, "backend", "--json"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert set(json.loads(res.stdout)) >= {"torch", "triton", "cuda", "extension"}


def test_public_names_resolve():
    assert logo_fast.__version__
    for name in ("backend_info", "DatasetSpec", "state_disagreement"):
        assert getattr(logo_fast, name) is not None
    with pytest.raises(AttributeError):
        logo_fast.not_a_thing  # noqa: B018


def _source_copy(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info")
    for name in ("logo_fast", "kernels", "csrc"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    return src


def _build_wheel(src: Path, out: Path, **env) -> Path:
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(src)],
        capture_output=True, text=True, env={**os.environ, "MAX_JOBS": "2", **env},
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (wheel,) = out.glob("logo_fast-*.whl")
    return wheel


@pytest.mark.slow
def test_wheels_hold_extension_kernels_and_data_and_cuda_0_builds_cpu_only(tmp_path):
    src = _source_copy(tmp_path)
    cpu_wheel = _build_wheel(src, tmp_path / "cpu", LOGO_FAST_CUDA="0")
    names = zipfile.ZipFile(cpu_wheel).namelist()
    assert any(n.startswith("logo_fast/_C") and n.endswith(".so") for n in names), names
    assert "logo_fast/kernels/state_disagreement.py" in names
    assert "logo_fast/kernels/aot.py" in names
    assert "logo_fast/py.typed" in names
    assert not any(n.startswith("kernels/") for n in names), "kernels must ship under logo_fast only"

    site = tmp_path / "site"
    zipfile.ZipFile(cpu_wheel).extractall(site)
    res = _run(
        f"import logo_fast, logo_fast._C as C; assert logo_fast.__file__.startswith({str(site)!r}); "
        "print(C.compiled_with_cuda(), repr(C.cuda_archs()))",
        env={"PYTHONPATH": str(site)}, cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "''"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").exists(), reason="no nvcc")
def test_cuda_1_build_compiles_the_cuda_path(tmp_path):
    src = _source_copy(tmp_path)
    wheel = _build_wheel(src, tmp_path / "cuda", LOGO_FAST_CUDA="1", LOGO_FAST_CUDA_ARCHS="90")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    res = _run("import logo_fast._C as C; print(C.compiled_with_cuda(), C.cuda_archs())",
               env={"PYTHONPATH": str(site)}, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["True", "90"]


def test_failing_nvcc_is_an_error_with_cuda_1_and_a_cpu_build_with_auto(tmp_path):
    src = _source_copy(tmp_path)
    fake = tmp_path / "fake_cuda" / "bin" / "nvcc"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\necho 'fake nvcc: broken on purpose' >&2\nexit 1\n")
    fake.chmod(0o755)

    def build(mode: str, tag: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "setup.py", "build_ext", "--build-temp", str(tmp_path / tag / "t"),
             "--build-lib", str(tmp_path / tag / "l")],
            capture_output=True, text=True, cwd=src,
            env={**os.environ, "LOGO_FAST_CUDA": mode, "CUDA_HOME": str(fake.parents[1])},
        )

    required = build("1", "required")
    assert required.returncode != 0
    assert "LOGO_FAST_CUDA=1 and nvcc failed" in required.stdout + required.stderr
    fallback = build("auto", "auto")
    assert fallback.returncode == 0, fallback.stderr[-2000:]
    assert "CUDA path skipped: nvcc failed" in fallback.stderr
    assert list((tmp_path / "auto" / "l" / "logo_fast").glob("_C*.so"))


@pytest.mark.slow
@pytest.mark.skipif(not triton_available(), reason="Triton not installed")
def test_every_kernel_compiles_for_h100_without_spills():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    res = subprocess.run([sys.executable, "-m", "logo_fast.kernels.aot", "--arch", "90", "--json"],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    results = json.loads(res.stdout)
    assert results, "no kernel configurations were compiled"
    for r in results:
        assert r["spill_bytes"] == 0 and r["registers"] <= 255, r
        assert r["static_shared_bytes"] <= 227 * 1024, r
