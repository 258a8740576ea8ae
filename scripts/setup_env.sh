#!/usr/bin/env bash
# Create (or update) the project's virtual environment and install logo_fast with its native
# extension. Idempotent: a second run only re-installs what changed. Used by `make demo` and
# `make test`; safe to run by hand.
#
#   VENV=.venv PYTHON=python3 bash scripts/setup_env.sh
#
# On a machine with no NVIDIA GPU the CPU build of torch 2.13.0 is installed first: an unpinned
# torch would pull a multi-GB CUDA build. LOGO_FAST_CUDA / LOGO_FAST_CUDA_ARCHS / MAX_JOBS are
# passed through to the extension build (see setup.py).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
EXTRAS=${LOGO_FAST_EXTRAS:-dev,triton,mpe,mamujoco,smax,vault}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check -q)

if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "[setup] NVIDIA GPU found: installing a CUDA build of torch (2.11-2.14)"
    "${PIP[@]}" install "torch>=2.11,<2.15"
  else
    echo "[setup] no NVIDIA GPU: installing the CPU build of torch 2.13.0"
    "${PIP[@]}" install "torch==2.13.0"
  fi
fi

# Build requirements go in first so the extension builds without an isolated build env
# (faster, and it never re-downloads setuptools/pybind11).
"${PIP[@]}" install "setuptools>=69" wheel "pybind11>=2.12"
echo "[setup] installing logo_fast[$EXTRAS] (editable) and building logo_fast._C"
"${PIP[@]}" install --no-build-isolation -e ".[$EXTRAS]"
"$PY" -c "import logo_fast, logo_fast._C as C; print('[setup] logo_fast', logo_fast.__version__, '| extension CUDA path compiled:', C.compiled_with_cuda())"
