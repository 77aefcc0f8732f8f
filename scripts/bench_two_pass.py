"""Cost of exact two-pass tiling vs plain blended tiles on a synthetic photo (figures for
the README / issue notes). Each mode runs in its own process so peak RSS is its own.

    .venv/bin/python scripts/bench_two_pass.py [--mp 12] [--model pynet-v2-mobile-nonorm]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _photo(mp: float):
    import numpy as np

    h = int((mp * 1e6 / (4 / 3)) ** 0.5) // 2 // 36 * 36       # packed rows, 4:3, aligned
    w = h * 4 // 3 // 36 * 36
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sky = 0.2 + 0.6 * (1 - yy / h)
    ground = yy > 0.65 * h
    tex = 0.08 * np.sin(xx / 5.0) * np.cos(yy / 3.0)
    planes = [np.where(ground, 0.2 + tex, sky * f) for f in (1.0, 0.8, 0.55, 0.8)]
    return np.clip(np.stack(planes), 0, 1).astype(np.float32)


def _one(mode: str, model: str, mp: float, block: int) -> dict:
    import numpy as np
    import torch

    from edge_isp.models import create, model_info
    from edge_isp.models.global_context import run_photo
    from edge_isp.runtimes.bundle_runner import open_model
    from edge_isp.runtimes.tiling import run_tiled

    torch.set_num_threads(2)
    packed = _photo(mp)
    net = create(model, seed=0)
    t0 = time.perf_counter()
    if mode == "two-pass":
        run_photo(net, packed, multiple=model_info(model).input_multiple, out_dtype=np.uint8, block=block)
    else:
        runner = open_model(model, (1088, 1920), net=net)
        run_tiled(runner, packed, overlap=32, out_dtype=np.uint8)
    seconds = time.perf_counter() - t0
    return {"mode": mode, "model": model, "block": block if mode == "two-pass" else None, "packed_hw": list(packed.shape[1:]),
            "megapixels": round(packed.shape[1] * packed.shape[2] * 4 / 1e6, 2), "seconds": round(seconds, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mp", type=float, default=12.0)
    ap.add_argument("--model", default="pynet-v2-mobile-nonorm")
    ap.add_argument("--block", type=int, default=512, help="two-pass owned block, packed px")
    ap.add_argument("--one", choices=("two-pass", "blended"))
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_one(args.one, args.model, args.mp, args.block)))
        return
    rows = []
    for mode in ("blended", "two-pass"):
        out = subprocess.run([sys.executable, __file__, "--one", mode, "--mp", str(args.mp), "--model", args.model, "--block", str(args.block)],
                             capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(rows[-1])
    print(f"two-pass / blended time: {rows[1]['seconds'] / rows[0]['seconds']:.2f}x")


if __name__ == "__main__":
    main()
