#!/usr/bin/env bash
# Reproduces the bundled demo weights in src/advsr/models/weights/ (see the README there).
# Trained on the `samples` set with chelsea and china held out for validation; CPU, seed 0.
set -euo pipefail
cd "$(dirname "$0")/.."
ADVSR=${ADVSR:-.venv/bin/advsr}
W=src/advsr/models/weights
common=(--data samples --holdout chelsea --holdout china --batch 16 --steps 3000 --lr 1e-3
        --seed 0 --val-every 500 --device cpu)
for model in demo-edsr demo-carn-m; do
  "$ADVSR" train-sr --model "$model" --scale 2 --patch 32 --out "$W/${model}_x2.safetensors" "${common[@]}"
  "$ADVSR" train-sr --model "$model" --scale 4 --patch 24 --out "$W/${model}_x4.safetensors" "${common[@]}"
done
rm -f "$W"/*.state.safetensors
