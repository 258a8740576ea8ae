#!/usr/bin/env bash
# World-model accuracy grid behind the README table: `logo-fast wm eval` over seeds on each dataset.
# Resumable: every (seed, model) checkpoint lives under $RUNS and is reused when its data and config
# match, and an interrupted fit resumes from its partial checkpoint, so rerunning the same command
# continues where it stopped. Reports (not checkpoints) are copied to bench/results/wm_accuracy/.
#
#   scripts/wm_accuracy_grid.sh [NAME ...]     # default: every dataset below
#   DATASETS=datasets RUNS=runs/wm_grid SEEDS=0,1,2 STEPS=6000 scripts/wm_accuracy_grid.sh mpe_spread_medium
#   MODELS=logo,joint scripts/wm_accuracy_grid.sh     # a first pass without the (slow) ensemble
set -euo pipefail
cd "$(dirname "$0")/.."
DATASETS=${DATASETS:-datasets}
RUNS=${RUNS:-runs/wm_grid}
SEEDS=${SEEDS:-0,1,2}
STEPS=${STEPS:-6000}
MODELS=${MODELS:-logo,joint,ensemble}
PY=${PY:-.venv/bin/python}
declare -A FILES=(
  [mpe_spread_medium]=mpe_simple_spread_medium_s0.h5
  [smax_2s3z_medium]=smax_2s3z_medium_s0.h5
  [smax_3s_vs_5z_medium]=smax_3s_vs_5z_medium_s0.h5
  [smax_5m_vs_6m_medium]=smax_5m_vs_6m_medium_s0.h5
  [hopper_3x1_medium]=mamujoco_Hopper-3x1_medium_s0.h5
  [halfcheetah_6x1_medium]=mamujoco_HalfCheetah-6x1_medium_s0.h5
)
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(mpe_spread_medium hopper_3x1_medium smax_2s3z_medium smax_3s_vs_5z_medium smax_5m_vs_6m_medium
  halfcheetah_6x1_medium)
for name in "${names[@]}"; do
  file=${FILES[$name]:?unknown dataset name $name}
  OMP_NUM_THREADS=1 "$PY" -m logo_fast.cli wm eval --dataset "$DATASETS/$file" --out "$RUNS/$name" \
    --models "$MODELS" --seeds "$SEEDS" --model.max-steps "$STEPS" --open-loop-from any_step --threads 1 --no-progress
  mkdir -p "bench/results/wm_accuracy/$name"
  cp "$RUNS/$name"/report.{json,md} "$RUNS/$name/error_vs_horizon.png" "bench/results/wm_accuracy/$name/"
done
