"""Vendor-compiler estimates (Vela, RKNN) as results-store rows of kind ``estimate``.

A vendor compiler's performance model is not a measurement: nothing ran on a board. The
rows keep that apart from ``bench`` / ``profile`` rows by their kind, their ``device``
(the accelerator configuration the compiler modelled, e.g. ``ethos-u65-256``) and an
``extra.source`` that names the model. ``gate`` budgets can still hold them, e.g.
``kind = "estimate"``, ``checks = ["inference_time_ms <= 20", "cpu_ops == 0"]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_isp.results import Measurement, ResultsStore

# Manifest ``npu.estimates`` keys worth a metric (numbers only), with their unit-bearing names.
_METRICS = {
    "inference_time_ms": "inference_time_ms",
    "inferences_per_second": "throughput_fps",
    "cycles_total": "cycles_total",
    "cycles_npu": "cycles_npu",
    "macs": "macs",
    "sram_bytes": "sram_bytes",
    "dram_bytes": "dram_bytes",
    "flash_bytes": "flash_bytes",
    "weights_bytes_encoded": "weights_bytes",
    "total_memory_bytes": "memory_bytes",
}


def estimate_measurement(manifest: dict[str, Any]) -> Measurement | None:
    """The estimate row for a bundle manifest, or None when its compiler estimated nothing."""
    npu = manifest.get("npu") or {}
    est = npu.get("estimates") or {}
    if not est.get("estimate"):
        return None
    metrics = {name: float(est[key]) for key, name in _METRICS.items()
               if isinstance(est.get(key), (int, float)) and not isinstance(est.get(key), bool)}
    counts = (manifest.get("support_check") or {}).get("counts") or {}
    for key, name in (("ops_delegated", "npu_ops"), ("ops_on_cpu", "cpu_ops")):
        if isinstance(counts.get(key), int):
            metrics[name] = float(counts[key])
    if not metrics:
        return None
    target = manifest["target"]
    device = str(npu.get("accelerator_config") or npu.get("platform") or target.get("accelerator_config")
                 or target["name"])
    return Measurement(
        model=manifest["model"]["name"], target=target["name"], runtime=str(npu.get("compiler") or "vendor-compiler"),
        device=device, kind="estimate", bundle_sha256=manifest.get("artifact", {}).get("sha256"),
        metrics=metrics,
        extra={"source": est.get("source"), "compiler": npu.get("compiler"),
               "input": manifest.get("input", {}).get("shape"),
               "cpu_time_not_included": est.get("cpu_time_not_included")},
    )


def record_estimates(manifest: dict[str, Any], store: Path | str | None = None) -> int | None:
    """Append the bundle's estimate row to the results store; returns its id (None: nothing to store)."""
    m = estimate_measurement(manifest)
    return ResultsStore(store).add(m) if m is not None else None
