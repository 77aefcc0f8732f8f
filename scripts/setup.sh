#!/usr/bin/env bash
# One command for a fresh machine: make .venv, install edge-isp with everything, then run
# the main job (a verified INT8 conversion of the built-in default model for NNAPI).
#   bash scripts/setup.sh            # install + main job
#   bash scripts/setup.sh --no-run   # install only
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch==2.13.0 (pinned in pyproject) resolves to the CPU build; see README.
.venv/bin/python -m pip install --quiet -e ".[all]"
# Vendor NPU compilers pin conflicting packages: each gets its own environment
# (~/.cache/edge-isp/toolchains): Vela (Arm Ethos-U) 12 s / ~100 MB, rknn-toolkit2
# (Rockchip) ~2 min / 1.5 GB, LiteRT AOT NPU plugins ~20 s / 340 MB, LiteRT-Torch (PyTorch -> TFLite,
# its numpy/ai-edge-litert pins clash with TensorFlow) ~1 GB. Already installed = no-op.
for toolchain in vela rknn litert-aot litert-torch; do
  .venv/bin/edge-isp toolchain install "$toolchain"
done
echo "edge-isp installed in .venv ($(du -sh .venv | cut -f1))"
if [ "${1:-}" != "--no-run" ]; then
  .venv/bin/edge-isp models
  .venv/bin/edge-isp convert --target nnapi-int8 --overwrite   # rerun: replaces only its own bundle
fi
