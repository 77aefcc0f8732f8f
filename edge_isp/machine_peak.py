"""This machine's measured float32 matrix-multiply peak (GFLOP/s): the yardstick that turns a
benchmark's achieved GFLOP/s into a share of what the CPU can do.

Measured with NumPy's BLAS SGEMM on square float32 matrices (2 n^3 FLOPs), best of a few
calls, on every core NumPy's BLAS uses. Kept in the cache folder per CPU model and core count
as the highest value seen: a measurement taken while the machine was busy reads low, so a
later quiet one replaces it, never the other way round.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_isp.errors import EdgeIspError

SIZE = 2048             # 17 GFLOP per call: ~0.1 s at 200 GFLOP/s
CALLS = 5


@functools.lru_cache(maxsize=1)
def measured_once() -> MachinePeak | None:
    """``machine_peak()`` measured once per process (benchmarks of several bundles share it)."""
    return machine_peak()


@dataclass(frozen=True)
class MachinePeak:
    gflops: float           # best float32 SGEMM rate seen on this machine
    cpu: str
    cores: int
    method: str = f"numpy SGEMM {SIZE}x{SIZE} float32, best of {CALLS}"


def _cache_file() -> Path:
    from edge_isp._resources import cache_dir

    return cache_dir("machine-peak.json")


def measure_sgemm_gflops(size: int = SIZE, calls: int = CALLS) -> float:
    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    np.dot(a, b)                                      # warm-up: threads, page faults
    best = float("inf")
    for _ in range(calls):
        t0 = time.perf_counter()
        np.dot(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size ** 3 / best / 1e9


def machine_peak(measure: bool = True) -> MachinePeak | None:
    """The best SGEMM rate known for this CPU (measured now unless ``measure=False``)."""
    from edge_isp.bench import machine_info

    info = machine_info()
    key = f"{info['cpu']}|{info['usable_cores']}"
    path = _cache_file()
    known: dict[str, float] = {}
    try:
        data = json.loads(path.read_text())
        known = {k: float(v) for k, v in data.items() if isinstance(v, (int, float)) and v > 0}
    except (OSError, ValueError, AttributeError):
        pass
    best = known.get(key, 0.0)
    if measure:
        best = max(best, measure_sgemm_gflops())
        known[key] = round(best, 1)
        try:
            from edge_isp._atomic import write_text_atomic

            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, json.dumps(known, indent=1))
        except (OSError, EdgeIspError):           # a read-only home only costs the cache
            pass
    return MachinePeak(round(best, 1), info["cpu"], int(info["usable_cores"])) if best > 0 else None


__all__ = ["MachinePeak", "machine_peak", "measure_sgemm_gflops"]
