"""LiteRT's ``benchmark_model``: the flags for a target and the parser for its output.

Output lines parsed (LiteRT ``tflite/tools/benchmark``; older and APK builds too)::

    INFO: count=1061 first=56576 curr=56299 min=54669 max=60236 avg=56265.8 std=982
    INFO: Inference timings in us: Init: 3337, First inference: 81913, Warmup (avg): 58984.7, Inference (avg): 56265.8
    INFO: Overall peak memory footprint (MB) via periodic monitoring: 93.2383
    INFO: Memory footprint delta from the start of the tool (MB): init=A overall=B
    Peak memory footprint (MB): init=A overall=B

The first ``count=`` line of a run is the warm-up statistics, the second the timed runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from edge_isp.devices.profiles import DeviceProfile

_NUM = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_COUNT = re.compile(r"count=(\d+)\s+first=" + _NUM + r"\s+curr=" + _NUM + r"\s+min=" + _NUM + r"\s+max=" + _NUM
                    + r"\s+avg=" + _NUM + r"\s+std=" + _NUM)
_TIMINGS = re.compile(r"Inference timings in us:\s*(.*)")
_PEAK = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring:\s*" + _NUM)
_DELTA = re.compile(r"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\):\s*init="
                    + _NUM + r"\s+overall=" + _NUM)
_ACCELS = re.compile(r"NNAPI accelerators available:\s*\[([^\]]*)\]")
_PARTIAL = re.compile(r"partially executed by the delegate w/\s*(\d+) delegate kernels")
_NODES = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]+)\)")


@dataclass
class RunStats:
    count: int
    first_us: float
    curr_us: float
    min_us: float
    max_us: float
    avg_us: float
    std_us: float


@dataclass
class BenchmarkOutput:
    warmup: RunStats | None = None
    runs: RunStats | None = None
    init_us: float | None = None
    first_inference_us: float | None = None
    warmup_avg_us: float | None = None
    inference_avg_us: float | None = None
    peak_memory_mb: float | None = None          # periodic monitoring (--report_peak_memory_footprint)
    init_memory_mb: float | None = None          # getrusage deltas
    overall_memory_mb: float | None = None
    accelerators: list[str] = field(default_factory=list)
    delegation: str | None = None                # full | partial | none
    delegate_kernels: int | None = None
    delegated_nodes: tuple[int, int] | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.inference_avg_us is not None or self.runs is not None

    def metrics(self) -> dict[str, float]:
        m: dict[str, float] = {}
        avg = self.inference_avg_us if self.inference_avg_us is not None else (self.runs.avg_us if self.runs else None)
        if avg is not None:
            m["latency_ms.mean"] = avg / 1000.0
            if avg > 0:
                m["throughput_fps"] = 1e6 / avg
        if self.runs:
            m.update({"latency_ms.std": self.runs.std_us / 1000.0, "latency_ms.min": self.runs.min_us / 1000.0,
                      "latency_ms.max": self.runs.max_us / 1000.0, "runs": float(self.runs.count)})
        if self.init_us is not None:
            m["init_ms"] = self.init_us / 1000.0
        if self.first_inference_us is not None:
            m["first_inference_ms"] = self.first_inference_us / 1000.0
        if self.warmup_avg_us is not None:
            m["warmup_ms.mean"] = self.warmup_avg_us / 1000.0
        if self.peak_memory_mb is not None:
            m["peak_memory_footprint_mb"] = self.peak_memory_mb
        if self.overall_memory_mb is not None:
            m["memory_delta_mb.overall"] = self.overall_memory_mb
        if self.init_memory_mb is not None:
            m["memory_delta_mb.init"] = self.init_memory_mb
        if self.delegated_nodes:
            m["delegated_nodes"] = float(self.delegated_nodes[0])
            m["total_nodes"] = float(self.delegated_nodes[1])
        return m


def _timings(text: str) -> dict[str, float]:
    out = {}
    for part in text.split(","):
        if ":" in part:
            key, _, value = part.partition(":")
            try:
                out[key.strip()] = float(value.strip())
            except ValueError:
                continue
    return out


def parse_benchmark_output(text: str) -> BenchmarkOutput:
    res = BenchmarkOutput()
    counts: list[RunStats] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").splitlines():
        if m := _COUNT.search(line):
            counts.append(RunStats(int(m[1]), *(float(m[i]) for i in range(2, 8))))
        elif m := _TIMINGS.search(line):
            t = _timings(m[1])
            res.init_us = t.get("Init")
            res.first_inference_us = t.get("First inference")
            res.warmup_avg_us = t.get("Warmup (avg)")
            res.inference_avg_us = t.get("Inference (avg)")
        elif m := _PEAK.search(line):
            res.peak_memory_mb = float(m[1])
        elif m := _DELTA.search(line):
            res.init_memory_mb, res.overall_memory_mb = float(m[1]), float(m[2])
        elif m := _ACCELS.search(line):
            res.accelerators = [a.strip() for a in m[1].split(",") if a.strip()]
        elif "will be completely executed by the delegate" in line:
            res.delegation = "full"
        elif m := _PARTIAL.search(line):
            res.delegation, res.delegate_kernels = "partial", int(m[1])
        elif "will not be executed by the delegate" in line:
            res.delegation = "none"
        elif m := _NODES.search(line):
            res.delegated_nodes = (int(m[1]), int(m[2]))
        elif line.startswith(("ERROR:", "E tflite", "Error:")) or "Failed to" in line:
            res.errors.append(line.strip())
    if counts:
        res.warmup = counts[0] if len(counts) > 1 else None
        res.runs = counts[-1]
    return res


@dataclass(frozen=True)
class BenchOptions:
    num_runs: int = 50
    warmup_runs: int = 1
    threads: int | None = None
    min_secs: float | None = None
    max_secs: float | None = None
    nnapi_accelerator: str | None = None     # override the profile's accelerator name
    nnapi_preference: str | None = None      # fast_single_answer | sustained_speed | low_power
    require_full_delegation: bool = False
    extra_flags: tuple[str, ...] = ()


def benchmark_flags(model_path: str, delegate: str, precision: str, profile: DeviceProfile | None,
                    opts: BenchOptions) -> list[str]:
    """The benchmark_model command-line flags for a target's delegate on a device."""
    flags = [f"--graph={model_path}", f"--num_runs={opts.num_runs}", f"--warmup_runs={opts.warmup_runs}",
             "--report_peak_memory_footprint=true", "--memory_footprint_check_interval_ms=50"]
    if opts.min_secs is not None:
        flags.append(f"--min_secs={opts.min_secs:g}")
    if opts.max_secs is not None:
        flags.append(f"--max_secs={opts.max_secs:g}")
    if opts.threads:
        flags.append(f"--num_threads={opts.threads}")
    if delegate == "nnapi":
        flags.append("--use_nnapi=true")
        name = opts.nnapi_accelerator
        if name is None and profile is not None:
            acc = next((a for a in profile.accelerators if "nnapi" in a.delegates and a.nnapi_name), None)
            name = acc.nnapi_name if acc else None
        if name:
            flags.append(f"--nnapi_accelerator_name={name}")
        if precision == "fp16":
            flags.append("--nnapi_allow_fp16=true")
        if opts.nnapi_preference:
            flags.append(f"--nnapi_execution_preference={opts.nnapi_preference}")
        flags.append("--disable_nnapi_cpu=true")
        flags.append("--use_xnnpack=false")
    elif delegate == "gpu":
        flags.append("--use_gpu=true")
        if precision in ("fp16", "int8"):
            flags.append("--gpu_precision_loss_allowed=true")
        flags.append("--use_xnnpack=false")
    elif delegate in ("xnnpack", "cpu"):
        flags.append("--use_xnnpack=true")
    if opts.require_full_delegation and delegate in ("nnapi", "gpu"):
        flags.append("--require_full_delegation=true")
    flags.extend(opts.extra_flags)
    return flags


def target_delegate(target_delegate_name: str) -> str:
    """Map a target row's delegate to the benchmark tool's notion (cpu -> xnnpack)."""
    return {"cpu": "xnnpack"}.get(target_delegate_name, target_delegate_name)


def summary(out: BenchmarkOutput) -> dict[str, Any]:
    return {"accelerators": out.accelerators, "delegation": out.delegation, "delegate_kernels": out.delegate_kernels,
            "errors": out.errors[:5]}
