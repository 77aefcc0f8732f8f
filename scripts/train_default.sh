#!/usr/bin/env bash
# Reproduce the shipped default model (edge_isp/assets/default_isp.pt, card DEFAULT_MODEL.md):
# pynet-v2-mobile-nonorm with zero padding, trained from scratch on synthetic pairs
# (packaged photos unprocessed into noisy RGGB RAW), 1 CPU thread, seed 0.
# Afterwards the best checkpoint is exported into the package (see DEFAULT_MODEL.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-runs/default}
"$PY" -m edge_isp.training pynet-v2-mobile-nonorm -O padding=zero \
    --recipe default --data synthetic --steps 2400 --batch-size 16 --crop 128 \
    --seed 0 --threads 1 --device cpu --val-every 200 --val-draws 16 \
    --checkpoint-every 100 --max-minutes 48 --out "$OUT" --quiet
