#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build with CUDA, run the GPU-marked tests and the benchmarks,
# and write JSON results (device name, torch/Triton versions) under bench/results/.
#
#   make gpu-check                        # a fresh venv, torch and every extra from the registry
#   bash scripts/gpu_check.sh --device    # the lent GPU machine as it is: its python3, no install,
#                                         # results under ${OUT:-bench/results} (make gpu-check-device)
#   bash scripts/gpu_check.sh --device --dry-run   # here: everything but the GPU parts
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--device" ]; then
  shift
  exec "${PYTHON:-python3}" scripts/gpu_device_check.py "$@"
fi
VENV=${VENV:-.venv}
export LOGO_FAST_CUDA=1 LOGO_FAST_TEST_GPU=1
bash scripts/setup_env.sh
PY="$VENV/bin/python"
"$PY" -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-check needs a CUDA GPU visible to torch')"
"$PY" -m logo_fast.backend

tag=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0).replace(' ', '_'))")
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results
mkdir -p "$out"
"$PY" - "$out/env_${tag}_${stamp}.json" <<'PYEOF'
import json, platform, sys, torch
try:
    import triton
    tv = triton.__version__
except Exception:
    tv = None
import logo_fast
info = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
        "triton": tv, "python": platform.python_version(), "logo_fast": logo_fast.__version__,
        "backends": logo_fast.backend_info()}
open(sys.argv[1], "w").write(json.dumps(info, indent=1, default=str))
print("wrote", sys.argv[1])
PYEOF
"$PY" -m pytest -m gpu -q tests
"$PY" -m pytest -q bench --benchmark-enable --benchmark-json="$out/bench_${tag}_${stamp}.json"
"$PY" -m logo_fast.kernels.aot --json > "$out/aot_${tag}_${stamp}.json"
echo "results in $out/*_${tag}_${stamp}.json"
