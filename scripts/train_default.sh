#!/usr/bin/env bash
# Reproduce the shipped default model: edge_isp/assets/default_isp_pynet_v2_nonorm.pt
# (card: edge_isp/assets/DEFAULT_MODEL.md).
#
# pynet-v2-mobile-nonorm with zero padding, trained from scratch on synthetic pairs
# (packaged photos 'unprocessed' into noisy RGGB RAW; held-out photos never seen), on
# 1 CPU thread, seed 0, in six runs (about 62 + 60 minutes in all):
#   1. main:   recipe 'default' (Adam 1e-3, cosine planned over 2400 steps), stopped after
#              1229 steps (37 min on the shared 2-core machine; validation had plateaued
#              at ~21.3 dB with the LR still high);
#   2. anneal: from the main run's last weights, 600 steps of cosine 3e-4 -> 1e-5 so the
#              LR reaches the end of a schedule;
#   3. colour: 500 steps of cosine 3e-4 -> 1e-5 on the 'colour' synthetic profile. Runs 1-2
#              used the first profile ('v1'), whose pictures of the real RAW samples turned
#              greens and magentas grey (its grey photos include a grass texture, its colour
#              photos have few greens, its cameras are less desaturated than real sensors);
#              the 'colour' profile fixes that;
#   4. highlights: 300 steps of cosine 2e-4 -> 1e-5 on 'colour-hl' ('colour' with exposures
#              up to +1.2 EV): after run 3, clipped white highlights (the test chart) came
#              out magenta; they are common in this profile. Keeps the best held-out PSNR.
#   5. white balance: 800 steps of cosine 2e-4 -> 1e-5 on 'colour-wb' ('colour-hl' with red
#              gains 1.0-2.6 and blue gains 1.0-2.4 instead of 1.6-2.4 / 1.3-2.0): the real
#              samples need gains outside the old ranges (the test chart's sensor a blue gain
#              of ~1.1, the dog's white fur a red gain of ~1.2-1.45), which showed as a
#              lavender chart and pink fur; the network now has to read the illuminant off
#              the picture;
#   6. white-balance mixture: 500 steps of cosine 1e-4 -> 1e-5 on 'colour-wb-mix' (half the
#              cameras typical, half wide), new batches (seed 1): wide gains alone cost ~2 dB
#              on typical cameras and on colour-cast scenes; the mixture keeps a prior for
#              typical cameras. The last weights are shipped.
# Batches are a pure function of (seed, step), so the result is reproducible on CPU.
# Then the best weights are exported as a float16 state dict into the package.
# Re-running a step resumes it from its last.pt (delete the run folder to start over).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
RUNS=${RUNS:-runs}
COMMON=(pynet-v2-mobile-nonorm -O padding=zero --recipe default
        --batch-size 16 --crop 128 --seed 0 --threads 1 --device cpu --val-draws 16
        --checkpoint-every 100 --quiet)

"$PY" -m edge_isp.training "${COMMON[@]}" --data synthetic:v1 --steps 2400 --val-every 200 \
    --stop-after 1229 --out "$RUNS/default"
"$PY" -m edge_isp.training "${COMMON[@]}" --data synthetic:v1 --steps 600 --lr 3e-4 --val-every 100 \
    --init "$RUNS/default/last.pt" --out "$RUNS/default-anneal"
"$PY" -m edge_isp.training "${COMMON[@]}" --data synthetic:colour --steps 500 --lr 3e-4 --val-every 100 \
    --init "$RUNS/default-anneal/last.pt" --out "$RUNS/default-colour"
"$PY" -m edge_isp.training "${COMMON[@]}" --data synthetic:colour-hl --steps 300 --lr 2e-4 --val-every 100 \
    --init "$RUNS/default-colour/last.pt" --out "$RUNS/default-hl"
# The float16 state dict edge-isp ships (run 5 started from the shipped float16 weights of run 4).
export_fp16() {
  "$PY" - "$1" "$2" <<'PYEOF'
import sys
from pathlib import Path
from edge_isp.models.pretrained import export_weights
export_weights(Path(sys.argv[1]), Path(sys.argv[2]))
print(f"wrote {sys.argv[2]} ({Path(sys.argv[2]).stat().st_size / 1e6:.2f} MB)")
PYEOF
}
export_fp16 "$RUNS/default-hl/best.pt" "$RUNS/default-hl/shipped-fp16.pt"
"$PY" -m edge_isp.training "${COMMON[@]}" --data synthetic:colour-wb --steps 800 --lr 2e-4 --val-every 100 \
    --init "$RUNS/default-hl/shipped-fp16.pt" --out "$RUNS/default-wb"
# The same options with --seed 1 (the last --seed wins): new batches.
"$PY" -m edge_isp.training "${COMMON[@]}" --seed 1 --data synthetic:colour-wb-mix --steps 500 --lr 1e-4 \
    --val-every 100 --init "$RUNS/default-wb/last.pt" --out "$RUNS/default-wbmix"
export_fp16 "$RUNS/default-wbmix/last.pt" "edge_isp/assets/default_isp_pynet_v2_nonorm.pt"
# Held-out figures for the card (32 fixed draws, seed 0; the classical ISP as baseline):
"$PY" -m edge_isp.cli eval default --draws 32 --per-image --no-store
