"""Convert one model to every target and print time, peak memory, size and PSNR vs PyTorch.

    .venv/bin/python scripts/measure_conversions.py pynet-v2-mobile --input-size 320x480

Each conversion runs in its own process so peak memory is that conversion's alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from edge_isp.converters import list_targets


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--input-size", default=None)
    ap.add_argument("--targets", default=",".join(t.name for t in list_targets()))
    ap.add_argument("--extra", default="", help="extra convert arguments, e.g. '--keep-float norm'")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for target in args.targets.split(","):
            cmd = [sys.executable, "-m", "edge_isp.cli", "convert", args.model, "--target", target,
                   "-o", str(Path(tmp) / target), "--json", *args.extra.split()]
            if args.input_size:
                cmd += ["--input-size", args.input_size]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                rows.append((target, "FAILED", proc.stderr.strip().splitlines()[-1][:160]))
                print(rows[-1], flush=True)
                continue
            m = json.loads(proc.stdout)
            rows.append((target, f"{m['conversion']['time_s']:.1f} s", f"{m['conversion']['peak_rss_mb']:.0f} MB",
                         f"{m['artifact']['size_bytes'] / 1e6:.2f} MB", f"{m['verification']['psnr_db']:.1f} dB",
                         f"{m['verification']['max_abs_err']:.2e}"))
            print(" | ".join(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
