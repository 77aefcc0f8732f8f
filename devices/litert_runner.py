#!/usr/bin/env python3
"""A stand-in for LiteRT's benchmark_model on boards with Python (standalone: no edge-isp import).

Takes benchmark_model's flags (--graph, --num_runs, --warmup_runs, --num_threads,
--min_secs, --max_secs, --use_xnnpack, ...), runs a .tflite model with the board's own
ai-edge-litert (or tflite-runtime), or an OpenVINO .xml with openvino, and prints the
same lines the real tool prints, so one parser reads both::

    INFO: count=... first=... curr=... min=... max=... avg=... std=...
    INFO: Inference timings in us: Init: ..., First inference: ..., Warmup (avg): ..., Inference (avg): ...
    INFO: Overall peak memory footprint (MB) via periodic monitoring: ...
"""

from __future__ import annotations

import math
import os
import resource
import sys
import threading
import time


def _flags(argv: list[str]) -> dict[str, str]:
    out = {}
    for arg in argv:
        if arg.startswith("--") and "=" in arg:
            k, v = arg[2:].split("=", 1)
            out[k] = v
        elif arg.startswith("--"):
            out[arg[2:]] = "true"
    return out


def _rss_kb() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _stats(samples: list[float]) -> str:
    n = len(samples)
    avg = sum(samples) / n
    std = math.sqrt(sum((s - avg) ** 2 for s in samples) / n)
    return (f"count={n} first={int(samples[0])} curr={int(samples[-1])} min={int(min(samples))} "
            f"max={int(max(samples))} avg={avg:.6g} std={int(round(std))}")


def _open(graph: str, threads: int | None, xnnpack: bool):
    import numpy as np

    if graph.endswith(".xml"):
        import openvino as ov

        core = ov.Core()
        model = core.compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                  **({"INFERENCE_NUM_THREADS": threads} if threads else {})})
        req = model.create_infer_request()
        rng = np.random.default_rng(0)   # every input (a two-pass part has statistics inputs too)
        feeds = {i: rng.random(tuple(inp.shape), dtype=np.float32) for i, inp in enumerate(model.inputs)}
        return lambda: req.infer(feeds)
    try:
        from ai_edge_litert.interpreter import Interpreter
        kw = {}
        if not xnnpack:
            from ai_edge_litert.interpreter import OpResolverType
            kw["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    except ImportError:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]
        kw = {}
    interp = Interpreter(model_path=graph, num_threads=threads, **kw)
    interp.allocate_tensors()
    rng = np.random.default_rng(0)
    for d in interp.get_input_details():
        dt = np.dtype(d["dtype"])
        if dt.kind == "f":
            data = rng.random(tuple(d["shape"])).astype(dt)
        else:
            info = np.iinfo(dt)
            data = rng.integers(info.min, info.max, size=tuple(d["shape"]), dtype=dt)
        interp.set_tensor(d["index"], data)
    return interp.invoke


def main(argv: list[str]) -> int:
    f = _flags(argv)
    graph = f.get("graph")
    if not graph or not os.path.isfile(graph):
        print(f"ERROR: Please specify the name of your TF Lite input file with --graph (got {graph!r})")
        return 1
    runs = int(f.get("num_runs", "50"))
    warmups = int(f.get("warmup_runs", "1"))
    min_secs = float(f.get("min_secs", "1"))
    max_secs = float(f.get("max_secs", "150"))
    threads = int(f["num_threads"]) if "num_threads" in f and int(f["num_threads"]) > 0 else None
    xnnpack = f.get("use_xnnpack", "true").lower() != "false"
    print("INFO: STARTING!")
    print(f"INFO: Graph: [{graph}]")
    print(f"INFO: Num runs: [{runs}]")
    print(f"INFO: Num warmup runs: [{warmups}]")
    if threads:
        print(f"INFO: Num threads: [{threads}]")
    for flag in ("use_nnapi", "use_gpu"):
        if f.get(flag, "false").lower() == "true":
            print(f"WARN: --{flag} is not available in this Python runner; running on the CPU")
    print(f"INFO: Use xnnpack: [{int(xnnpack)}]")
    sys.stdout.flush()

    peak = [_rss_kb()]
    stop = threading.Event()
    interval = float(f.get("memory_footprint_check_interval_ms", "50")) / 1000.0

    def monitor() -> None:
        while not stop.wait(interval):
            peak[0] = max(peak[0], _rss_kb())

    mon = threading.Thread(target=monitor, daemon=True)
    mon.start()
    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    t0 = time.perf_counter()
    invoke = _open(graph, threads, xnnpack)
    init_us = (time.perf_counter() - t0) * 1e6
    init_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"INFO: The input model file size (MB): {os.path.getsize(graph) / 1e6:.6g}")
    print(f"INFO: Initialized session in {init_us / 1000:.3f}ms.")
    warm: list[float] = []
    for _ in range(max(1, warmups)):
        s = time.perf_counter()
        invoke()
        warm.append((time.perf_counter() - s) * 1e6)
    print(f"INFO: Running benchmark for at least {warmups} iterations and at least 0.5 seconds but terminate if "
          f"exceeding {max_secs:g} seconds.")
    print("INFO: " + _stats(warm))
    print()
    timed: list[float] = []
    t_start = time.perf_counter()
    while len(timed) < runs or time.perf_counter() - t_start < min_secs:
        s = time.perf_counter()
        invoke()
        timed.append((time.perf_counter() - s) * 1e6)
        if time.perf_counter() - t_start > max_secs:
            break
    print(f"INFO: Running benchmark for at least {runs} iterations and at least {min_secs:g} seconds but "
          f"terminate if exceeding {max_secs:g} seconds.")
    print("INFO: " + _stats(timed))
    print()
    stop.set()
    mon.join(timeout=1)
    peak[0] = max(peak[0], _rss_kb())
    end_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    warm_avg = sum(warm) / len(warm)
    print(f"INFO: Inference timings in us: Init: {int(init_us)}, First inference: {int(warm[0])}, "
          f"Warmup (avg): {warm_avg:.6g}, Inference (avg): {sum(timed) / len(timed):.6g}")
    print("INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE "
          "to the actual memory footprint of the model at runtime. Take the information at your discretion.")
    print(f"INFO: Memory footprint delta from the start of the tool (MB): init={init_rss - start_rss:.6g} "
          f"overall={end_rss - start_rss:.6g}")
    print(f"INFO: Overall peak memory footprint (MB) via periodic monitoring: {peak[0] / 1024.0:.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
