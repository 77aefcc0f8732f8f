"""Host benchmarks: latency distribution, throughput, load time and peak memory of a model.

    >>> from edge_isp.bench import bench, bench_many
    >>> r = bench("edge-isp-out/pynet-v2-mobile_cpu-fp32", runs=20, threads=2)
    >>> r.metrics()["latency_ms.p90"], r.throughput_fps, r.peak_rss_mb
    >>> results = bench_many([b1, b2, "pynet-v2-mobile"], time_budget_s=10)   # side by side

Every figure is measured in this process: warm-up runs first (not timed), then either
``runs`` timed runs or as many as fit in ``time_budget_s`` (at least ``min_runs``).

``rigour="mlperf"`` follows MLPerf Mobile's single-stream rules for the timed part: at least
1024 queries and at least 60 s, whichever comes later, and the 90th percentile reported with
a distribution-free 95 % confidence interval (order statistics; no normality assumed).
"""

from __future__ import annotations

import datetime as _dt
import gc
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp._resources import peak_rss_mb, reset_peak_rss
from edge_isp.errors import InputError

DEFAULT_WARMUP = 3
DEFAULT_RUNS = 20
DEFAULT_MIN_RUNS = 5


@dataclass(frozen=True)
class Rigour:
    """How long the timed part must run: at least ``min_runs`` runs and ``min_duration_s``."""

    name: str
    min_runs: int
    min_duration_s: float
    summary: str


RIGOURS: dict[str, Rigour] = {r.name: r for r in (
    Rigour("quick", 0, 0.0, "--runs or --time-budget as given (default 20 runs)"),
    Rigour("mlperf", 1024, 60.0, "MLPerf Mobile single-stream: >= 1024 queries and >= 60 s, p90 with a 95 % CI"),
)}


# ----------------------------------------------------------------------------- machine

def current_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """CPU model, logical cores, cores this process may use, OS, Python."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    return {
        "cpu": _cpu_model(), "arch": platform.machine(), "logical_cores": os.cpu_count(),
        "usable_cores": usable, "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(), "hostname": platform.node(),
    }


def tool_versions() -> dict[str, str]:
    from edge_isp import __version__
    from edge_isp.converters.bundle import tool_versions as _versions

    versions = _versions()
    versions["edge-isp"] = __version__
    return versions


# ------------------------------------------------------------------------------ result

@dataclass
class LatencyStats:
    mean: float
    median: float
    p90: float
    p99: float
    min: float
    max: float
    stdev: float
    # Distribution-free 95 % confidence interval of the p90 (None: too few runs for one).
    p90_ci_low: float | None = None
    p90_ci_high: float | None = None

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> LatencyStats:
        if not samples_ms:
            raise InputError("no timed runs to summarise; give runs >= 1")
        a = np.asarray(samples_ms, dtype=np.float64)
        ci = quantile_ci(a, 0.90)
        return cls(mean=float(a.mean()), median=float(np.median(a)), p90=float(np.percentile(a, 90)),
                   p99=float(np.percentile(a, 99)), min=float(a.min()), max=float(a.max()),
                   stdev=float(statistics.stdev(a)) if len(a) > 1 else 0.0,
                   p90_ci_low=ci[0] if ci else None, p90_ci_high=ci[1] if ci else None)


def quantile_ci(samples: Sequence[float], q: float, z: float = 1.959964) -> tuple[float, float] | None:
    """A distribution-free confidence interval of the ``q`` quantile (95 % for the default z):
    the order statistics whose ranks bound n*q by z binomial standard deviations. None when the
    sample is too small for the interval to lie inside it (n*q*(1-q) < ~9)."""
    a = np.sort(np.asarray(samples, dtype=np.float64))
    n = len(a)
    half = z * math.sqrt(n * q * (1.0 - q))
    lo, hi = math.floor(n * q - half), math.ceil(n * q + half)
    if lo < 0 or hi >= n:
        return None
    return float(a[lo]), float(a[hi])


@dataclass
class BenchResult:
    name: str                       # what the user passed (bundle path or model name)
    model: str
    target: str
    runtime: str
    precision: str | None
    mosaic_hw: tuple[int, int]
    batch: int
    threads: int | None             # as requested (None = the runtime's default)
    threads_used: int               # what that means on this machine
    warmup_runs: int
    runs: int
    latency_ms: LatencyStats
    throughput_fps: float
    load_time_ms: float
    first_run_ms: float
    peak_rss_mb: float              # whole process during load + warm-up + timed runs
    rss_before_load_mb: float
    bundle_sha256: str | None = None
    bundle: str | None = None
    # Work per run counted on the model's graph (2 x MACs, edge_isp.models.flops) and what the
    # runtime achieved; the share of this machine's measured SGEMM peak (edge_isp.machine_peak).
    gflop_per_run: float | None = None
    gflops: float | None = None
    peak_gflops: float | None = None
    samples_ms: list[float] = field(default_factory=list)
    rigour: str = "quick"
    timed_s: float = 0.0            # wall time of the timed runs
    machine: dict[str, Any] = field(default_factory=machine_info)
    tools: dict[str, str] = field(default_factory=dict)
    created: str = ""

    @property
    def peak_share(self) -> float | None:
        return self.gflops / self.peak_gflops if self.gflops and self.peak_gflops else None

    @property
    def inference_rss_mb(self) -> float:
        """Peak memory added by loading and running the model (peak minus RSS before load)."""
        return self.peak_rss_mb - self.rss_before_load_mb

    def metrics(self) -> dict[str, float]:
        """Every figure as a dotted metric name with its unit (what the results store keeps)."""
        m = {f"latency_ms.{k}": v for k, v in asdict(self.latency_ms).items() if v is not None}
        m.update({
            "throughput_fps": self.throughput_fps, "load_time_ms": self.load_time_ms,
            "first_run_ms": self.first_run_ms, "peak_rss_mb": self.peak_rss_mb,
            "inference_rss_mb": self.inference_rss_mb, "threads": float(self.threads_used),
            "runs": float(self.runs),
            **({"gflops": self.gflops} if self.gflops is not None else {}),
            **({"peak_share": self.peak_share} if self.peak_share is not None else {}),
        })
        return {k: round(float(v), 4) for k, v in m.items()}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["metrics"] = self.metrics()
        return d

    def to_measurement(self, device: str = "local", commit: str | None = None, kind: str = "bench"):
        from edge_isp.results import Measurement

        return Measurement(
            model=self.model, target=self.target, runtime=self.runtime, device=device, kind=kind,
            metrics=self.metrics(), bundle_sha256=self.bundle_sha256, commit=commit, **({"created": self.created} if self.created else {}),
            extra={"name": self.name, "bundle": self.bundle, "precision": self.precision,
                   "mosaic_hw": list(self.mosaic_hw), "batch": self.batch, "threads": self.threads,
                   "warmup_runs": self.warmup_runs, "rigour": self.rigour, "timed_s": self.timed_s,
                   "machine": self.machine, "tools": self.tools,
                   "samples_ms": [round(s, 3) for s in self.samples_ms]},
        )


# ------------------------------------------------------------------------------- timing

def time_runs(fn: Callable[[], Any], runs: int | None = DEFAULT_RUNS, time_budget_s: float | None = None,
              min_runs: int = DEFAULT_MIN_RUNS, max_runs: int = 10_000, rigour: Rigour | None = None) -> list[float]:
    """Call ``fn`` ``runs`` times, or until ``time_budget_s`` is spent (>= ``min_runs``); ms each.
    A ``rigour`` adds floors: at least its runs and its duration, whatever else was asked."""
    if runs is not None and runs < 1:
        raise InputError(f"runs must be at least 1, got {runs}")
    if time_budget_s is not None and time_budget_s <= 0:
        raise InputError(f"the time budget must be positive, got {time_budget_s}")
    floor_runs, floor_s = (rigour.min_runs, rigour.min_duration_s) if rigour is not None else (0, 0.0)
    samples: list[float] = []
    start = time.perf_counter()
    deadline = start + time_budget_s if time_budget_s is not None else math.inf
    limit = max(runs if runs is not None else max_runs, floor_runs)
    while True:
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
        floors_met = len(samples) >= floor_runs and time.perf_counter() - start >= floor_s
        if not floors_met:
            continue
        if len(samples) >= limit:
            break
        if time_budget_s is not None and time.perf_counter() >= deadline and len(samples) >= min(min_runs, limit):
            break
    return samples


def bench_runner(loaded: Any, *, runs: int | None = DEFAULT_RUNS, time_budget_s: float | None = None,
                 warmup: int = DEFAULT_WARMUP, min_runs: int = DEFAULT_MIN_RUNS, name: str | None = None,
                 rss_before_load_mb: float | None = None, seed: int = 0, rigour: str = "quick") -> BenchResult:
    """Benchmark an already loaded runner (from ``open_subject``, ``open_bundle`` or ``open_model``)."""
    from edge_isp._names import lookup

    how = lookup(RIGOURS, rigour, "rigour")
    x = loaded.example_input(seed)
    t0 = time.perf_counter_ns()
    loaded.run(x)                         # the first call: allocation, JIT, weight packing
    first_ms = (time.perf_counter_ns() - t0) / 1e6
    for _ in range(max(0, warmup - 1)):
        loaded.run(x)
    t_timed = time.perf_counter()
    samples = time_runs(lambda: loaded.run(x), runs=runs if time_budget_s is None or runs else None,
                        time_budget_s=time_budget_s, min_runs=min_runs, rigour=how)
    timed_s = round(time.perf_counter() - t_timed, 3)
    stats = LatencyStats.of(samples)
    work = _gflop_per_run(loaded)
    peak = machine_peak_gflops() if work is not None else None
    return BenchResult(
        name=name or loaded.name, model=loaded.model, target=loaded.target, runtime=loaded.runtime,
        precision=loaded.precision, mosaic_hw=tuple(loaded.mosaic_hw), batch=loaded.batch,
        threads=loaded.threads, threads_used=loaded.threads_used, warmup_runs=max(1, warmup), runs=len(samples),
        latency_ms=stats, throughput_fps=1000.0 * loaded.batch / stats.mean,
        load_time_ms=loaded.load_time_s * 1000.0, first_run_ms=first_ms, peak_rss_mb=peak_rss_mb(),
        rss_before_load_mb=rss_before_load_mb if rss_before_load_mb is not None else current_rss_mb(),
        bundle_sha256=loaded.bundle_sha256,
        bundle=str(loaded.bundle.path) if getattr(loaded, "bundle", None) is not None else None,
        gflop_per_run=work, gflops=round(work / (stats.mean / 1000.0), 2) if work is not None else None,
        peak_gflops=peak, samples_ms=samples, rigour=how.name, timed_s=timed_s, tools=tool_versions(),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds"),
    )


def _gflop_per_run(loaded: Any) -> float | None:
    """GFLOP of one run of ``loaded`` (its model at its input size, options included), or None
    when the model is not a registry model (its graph cannot be counted here)."""
    from edge_isp.models import list_models
    from edge_isp.models.flops import model_flops

    if loaded.model not in list_models():
        return None
    options = dict(loaded.origin.options or {})
    if not options and getattr(loaded, "bundle", None) is not None:
        options = dict(loaded.bundle.manifest.get("model", {}).get("options") or {})
    try:
        count = model_flops(loaded.model, tuple(loaded.mosaic_hw), **options)
    except (InputError, ValueError, RuntimeError):
        return None
    return round(count.flops * loaded.batch / 1e9, 3)


def machine_peak_gflops() -> float | None:
    from edge_isp.machine_peak import measured_once

    peak = measured_once()
    return peak.gflops if peak is not None else None


def bench(what: Path | str, *, threads: int | None = None, runtime: str | None = None,
          runs: int | None = DEFAULT_RUNS, time_budget_s: float | None = None, warmup: int = DEFAULT_WARMUP,
          min_runs: int = DEFAULT_MIN_RUNS, input_size: tuple[int, int] | None = None,
          rigour: str = "quick") -> BenchResult:
    """Load (timed) and benchmark one bundle folder, checkpoint, or registry model (in PyTorch)."""
    from edge_isp.runtimes.subject import open_subject

    gc.collect()
    rss0 = current_rss_mb()
    reset_peak_rss()
    loaded = open_subject(what, input_size=input_size, threads=threads, runtime=runtime)
    try:
        return bench_runner(loaded, runs=runs, time_budget_s=time_budget_s, warmup=warmup, min_runs=min_runs,
                            name=str(what), rss_before_load_mb=rss0, rigour=rigour)
    finally:
        del loaded
        gc.collect()


def bench_many(items: Iterable[Path | str], *, on_done: Callable[[BenchResult], None] | None = None,
               **kwargs: Any) -> list[BenchResult]:
    """Benchmark several bundles one after the other (same settings) for a side-by-side table.

    A registry model name among the items runs in PyTorch at the first bundle's RAW size
    (unless ``input_size`` is given), so the reference sits in the same table.
    """
    items = list(items)
    if not items:
        raise InputError("nothing to benchmark: give one or more bundle folders")
    if kwargs.get("input_size") is None:
        from edge_isp.converters.bundle import load_bundle

        for item in items:
            if Path(item).is_dir():          # a bundle (a checkpoint file runs at any size)
                kwargs["input_size"] = tuple(load_bundle(Path(item)).manifest["input"]["mosaic_hw"])
                break
    results = []
    for item in items:
        r = bench(item, **kwargs)
        results.append(r)
        if on_done is not None:
            on_done(r)
    return results


def store_results(results: Iterable[BenchResult], path: Path | str | None = None, device: str = "local",
                  commit: str | None = None) -> list[int]:
    """Append bench results to the results store (default: ``EDGE_ISP_RESULTS``)."""
    from edge_isp.results import ResultsStore, detect_commit

    commit = commit or detect_commit()
    return ResultsStore(path).add_many(r.to_measurement(device=device, commit=commit) for r in results)


__all__ = ["RIGOURS", "BenchResult", "LatencyStats", "Rigour", "bench", "bench_many", "bench_runner", "machine_info",
           "quantile_ci", "store_results", "time_runs", "tool_versions"]
