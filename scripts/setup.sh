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
# Vendor NPU compilers pin conflicting packages: each gets its own small environment
# (~/.cache/edge-isp/toolchains). Vela (Arm Ethos-U) is 12 s and ~100 MB.
.venv/bin/edge-isp toolchain install vela
echo "edge-isp installed in .venv ($(du -sh .venv | cut -f1))"
if [ "${1:-}" != "--no-run" ]; then
  .venv/bin/edge-isp models
  .venv/bin/edge-isp convert --target nnapi-int8
fi
