"""One run, one table: each host runtime FP32 / INT8, the edge-isp runner vs the runtime called
directly, and a 12 MP RAW -> 8-bit PNG end to end (issue #16).

    .venv/bin/python benchmarks/side_by_side.py                     # convert once, then measure
    .venv/bin/python benchmarks/side_by_side.py --rounds 40 --json side_by_side.json
    .venv/bin/python benchmarks/side_by_side.py --targets openvino-int8 --skip-photo

Bundles of the default model (one artifact each: ``--tiling blended``, so the runner and the
raw call run the same graph) are made once under ``--work`` and reused while their manifests
match. The 12 MP photo is the bundled 1920x1080 chart capture mirrored out to 4032x3024
(real sensor data, headerless uint16), processed with the default model's own bundle for
each OpenVINO target (two-pass, as `edge-isp process` does it). Timings are medians of
interleaved runs; run it on a quiet machine and give the machine with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("onnx-fp32", "openvino-fp32", "openvino-int8", "cpu-fp32", "cpu-int8")
# (target, tiling) of the 12 MP rows: two-pass is what `convert` makes for the default model
# (exact); blended (one artifact, overlapping tiles, not exact) is the fast reference.
PHOTO_RUNS = (("openvino-int8", "two-pass"), ("openvino-int8", "blended"), ("openvino-fp32", "two-pass"))
TILE = (544, 960)
PHOTO_HW = (3024, 4032)
CHART = ROOT / "tests" / "data" / "raw" / "openisp_1920x1080_rggb_u16le.raw"
CHART_LAYOUT = {"width": 1920, "height": 1080, "dtype": "uint16", "byte_order": "little", "cfa": "RGGB",
                "black_level": 0, "white_level": 1023}


def bundle_for(target: str, work: Path, tiling: str, size: tuple[int, int] | None) -> Path:
    """The default model's bundle for ``target`` under ``work``: converted unless already there."""
    from edge_isp.converters.bundle import load_bundle
    from edge_isp.converters.pipeline import ConvertOptions, convert
    from edge_isp.errors import EdgeIspError

    out = work / f"{target}-{tiling}"
    try:
        bundle = load_bundle(out)
        if bundle.target == target and (size is None or tuple(bundle.manifest["input"]["mosaic_hw"]) == size):
            return out
    except EdgeIspError:
        pass
    print(f"converting the default model -> {target} ({tiling}) ...", file=sys.stderr, flush=True)
    convert(ConvertOptions(target=target, tiling=tiling, input_size=size, output=out, overwrite=out.exists()))
    return out


def twelve_mp_raw(folder: Path) -> tuple[Path, dict]:
    """The chart capture mirrored out to 4032x3024, plane by plane (the RGGB phase is kept)."""
    mosaic = np.fromfile(CHART, dtype="<u2").reshape(1080, 1920)
    h, w = PHOTO_HW
    big = np.empty((h, w), np.uint16)
    for dy in (0, 1):
        for dx in (0, 1):
            plane = mosaic[dy::2, dx::2]
            big[dy::2, dx::2] = np.pad(plane, ((0, h // 2 - plane.shape[0]), (0, w // 2 - plane.shape[1])),
                                       mode="symmetric")
    path = folder / f"chart12mp_{w}x{h}_rggb_u16le.raw"
    big.astype("<u2").tofile(path)
    return path, {**CHART_LAYOUT, "width": w, "height": h}


def photo_row(target: str, tiling: str, bundle: Path, raw: Path, layout: dict, out_dir: Path) -> dict:
    from edge_isp.process import process_files

    t0 = time.perf_counter()
    report = process_files([raw], out_dir / f"{target}-{tiling}", bundle=bundle, raw_layout=layout, overwrite=True)
    wall = time.perf_counter() - t0
    (result,) = report.results
    if not result.ok:
        raise SystemExit(f"error: processing the 12 MP photo with {target} failed: {result.error}")
    stages = {k: round(v, 3) for k, v in result.stages_s.items()}
    infer_share = stages.get("infer", 0.0) / wall if wall else 0.0
    return {"target": target, "bundle_tiling": tiling, "wall_s": round(wall, 3), "stages_s": stages, "infer_share": round(infer_share, 3),
            "tiling": result.tiling, "tiles": result.tiles}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--rounds", type=int, default=20, help="interleaved raw/runner pairs per target")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--work", type=Path, default=ROOT / "edge-isp-out" / "side-by-side")
    ap.add_argument("--skip-photo", action="store_true", help="only the runner-vs-runtime rows")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from edge_isp import runner_overhead
    from edge_isp._atomic import write_text_atomic
    from edge_isp.bench import machine_info, tool_versions
    from edge_isp.runtimes import open_bundle

    targets = [t for t in args.targets.split(",") if t]
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for target in targets:
        loaded = open_bundle(bundle_for(target, args.work, "blended", TILE), threads=args.threads)
        row = runner_overhead.measure(loaded, rounds=args.rounds)
        rows.append(row.to_dict())
        print(f"{target:16s} {row.runtime:12s} raw {row.raw_ms:8.1f} ms  runner {row.runner_ms:8.1f} ms  "
              f"x{row.ratio:.3f}", flush=True)
    photos = []
    if not args.skip_photo:
        with tempfile.TemporaryDirectory(prefix="edge-isp-12mp-") as tmp:
            raw, layout = twelve_mp_raw(Path(tmp))
            for target, tiling in [run for run in PHOTO_RUNS if run[0] in targets]:
                size = TILE if tiling == "blended" else None
                photos.append(photo_row(target, tiling, bundle_for(target, args.work, tiling, size), raw, layout, Path(tmp)))
                p = photos[-1]
                print(f"12 MP {target:14s} {tiling:9s} wall {p['wall_s']:6.2f} s  infer {p['infer_share']:.0%}  {p['stages_s']}",
                      flush=True)
    report = {"machine": machine_info(), "tools": tool_versions(), "tile_mosaic_hw": list(TILE),
              "runner_vs_runtime": rows, "photo_12mp": photos}
    print()
    print("| target | runtime | raw runtime ms | edge-isp runner ms | ratio |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name'].split('/')[-1]} | {r['runtime']} | {r['raw_ms']:.1f} | {r['runner_ms']:.1f} | "
              f"{r['ratio']:.3f} |")
    for p in photos:
        print(f"| 12 MP -> PNG, {p['target']} | {p['tiling']} | wall {p['wall_s']:.2f} s | infer {p['infer_share']:.0%} "
              f"| {', '.join(f'{k} {v:.2f} s' for k, v in p['stages_s'].items())} |")
    if args.json is not None:
        write_text_atomic(args.json, json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
