"""``convert --compare-routes``: one model converted both ways (onnx2tf and litert-torch),
side by side - what each route's artifact computes (PSNR vs PyTorch), what accelerators
would take of it, its size and its speed on this host. Writes no bundle."""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_isp.converters.artifact_formats import TFLITE_ROUTES
from edge_isp.errors import EdgeIspError, UsageError

# Op tables every row is checked against besides the target's own (GPU delegate: FP16/FP32).
EXTRA_TABLES = ("gpu-fp16",)
LATENCY_RUNS = 10


@dataclass
class RouteRow:
    route: str
    ok: bool
    error: str | None = None
    psnr_worst_db: float | None = None
    psnr_mean_db: float | None = None
    ops: int | None = None
    delegated: dict[str, str] = field(default_factory=dict)   # target -> "delegated/total (partitions)"
    size_mb: float | None = None
    host_latency_ms: float | None = None                      # median of LATENCY_RUNS, one window
    convert_s: float | None = None
    peak_rss_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def compare_routes(opts: Any, progress: Any = None) -> list[RouteRow]:
    """Convert ``opts`` (a ConvertOptions for a TFLite target) through every route into a
    temporary folder and measure each artifact the same way."""
    from edge_isp.converters.check import check_artifact
    from edge_isp.converters.pipeline import convert
    from edge_isp.converters.targets import get_target
    from edge_isp.runtimes import open_bundle

    target = get_target(opts.target)
    if target.format != "tflite":
        raise UsageError(f"--compare-routes compares the two PyTorch -> TFLite routes; {target.name} is "
                         f"{target.format}: pick a TFLite target (cpu-*, gpu-*, nnapi-*)")
    if opts.output is not None or opts.verify_photos:
        raise UsageError("--compare-routes writes no bundle and checks crops only: drop -o / --verify-photo")
    rows = []
    with tempfile.TemporaryDirectory(prefix="edge-isp-routes-") as tmp:
        for route in TFLITE_ROUTES:
            run = dataclasses.replace(opts, route=route, output=Path(tmp) / route)
            try:
                say = (lambda s, r=route: progress(f"{r}: {s}")) if progress else (lambda s: None)
                result = convert(run, progress=say)
            except EdgeIspError as exc:
                rows.append(RouteRow(route, False, error=str(exc).splitlines()[0]))
                continue
            m, v = result.manifest, result.verification
            row = RouteRow(route, True, psnr_worst_db=round(v.min_sample_psnr_db, 2), psnr_mean_db=round(v.psnr_db, 2),
                           size_mb=round(m["artifact"]["size_bytes"] / 1e6, 2),
                           convert_s=m["conversion"]["time_s"], peak_rss_mb=m["conversion"]["peak_rss_mb"])
            for name in (target.name, *[t for t in EXTRA_TABLES if t != target.name]):
                report = check_artifact(result.bundle.model_file, name)
                row.ops = report.ops_total
                row.delegated[name] = f"{report.ops_delegated}/{report.ops_total} ({len(report.partitions)} partitions)"
            row.host_latency_ms = _latency_ms(open_bundle(result.bundle.path))
            rows.append(row)
    return rows


def _latency_ms(runner: Any) -> float:
    x = runner.example_input()
    runner.run(x)                                   # warm-up: allocation, XNNPACK packing
    times = []
    for _ in range(LATENCY_RUNS):
        t0 = time.perf_counter()
        runner.run(x)
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


__all__ = ["RouteRow", "compare_routes"]
