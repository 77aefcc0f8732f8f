"""What an edge-isp runner costs over calling its runtime directly.

The runner takes NCHW float32 and returns NCHW float32 whatever the artifact wants (NHWC,
int8 with its scale, fp16). The raw call is what a user's own code would time: the same
session / compiled model / interpreter, fed input already in the artifact's layout and type,
its output left as the runtime returns it. The two are timed interleaved (raw, runner, raw,
...) so a busy machine slows both alike; the ratio of medians is the overhead.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edge_isp.errors import InputError

RawCall = Callable[[], Any]


def _raw_onnxruntime(runner: Any, x: np.ndarray) -> RawCall:
    session, feeds = runner._session, {runner.input_spec.name: x}  # noqa: SLF001 - the same session
    outputs = [runner.output_spec.name]
    return lambda: session.run(outputs, feeds)


def _raw_openvino(runner: Any, x: np.ndarray) -> RawCall:
    request = runner._request  # noqa: SLF001 - the same compiled model and request
    return lambda: request.infer({0: x})


def _raw_litert(runner: Any, x: np.ndarray) -> RawCall:
    interp, i, o = runner._interp, runner._in["index"], runner._out["index"]  # noqa: SLF001

    def call() -> Any:
        interp.set_tensor(i, x)
        interp.invoke()
        return interp.get_tensor(o)

    return call


# runtime name -> how to call it directly (the runner's own runtime objects).
RAW_CALLS: dict[str, Callable[[Any, np.ndarray], RawCall]] = {
    "onnxruntime": _raw_onnxruntime,
    "openvino": _raw_openvino,
    "litert": _raw_litert,
    "tflite-runtime": _raw_litert,
}


@dataclass(frozen=True)
class Overhead:
    name: str
    runtime: str
    precision: str
    rounds: int
    raw_ms: float            # median
    runner_ms: float         # median

    @property
    def ratio(self) -> float:
        return self.runner_ms / self.raw_ms

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": round(self.ratio, 4)}


def measure(loaded: Any, rounds: int = 20, warmup: int = 2, seed: int = 0) -> Overhead:
    """Median time of ``loaded``'s runner vs its runtime called directly, interleaved."""
    from edge_isp.runtimes.base import encode_input

    if rounds < 3:
        raise InputError(f"rounds must be at least 3 for a median, got {rounds}")
    if getattr(loaded, "split", None) is not None:
        raise InputError(f"{loaded.name} is a two-pass bundle (two artifacts per window); measure a "
                         "one-artifact bundle of the same model (convert with --tiling blended)")
    runner = loaded.runner
    make_raw = RAW_CALLS.get(runner.runtime)
    if make_raw is None:
        raise InputError(f"no direct call known for runtime {runner.runtime!r}; "
                         f"known: {', '.join(sorted(RAW_CALLS))}")
    x = loaded.example_input(seed)
    raw = make_raw(runner, encode_input(x, runner.input_spec))   # prepared once: what raw code feeds
    for _ in range(warmup):
        raw()
        runner.run(x)
    raw_ms, runner_ms = [], []
    for _ in range(rounds):
        for fn, out in ((raw, raw_ms), (lambda: runner.run(x), runner_ms)):
            t0 = time.perf_counter_ns()
            fn()
            out.append((time.perf_counter_ns() - t0) / 1e6)
    return Overhead(loaded.name, runner.runtime, loaded.precision or "", rounds,
                    round(statistics.median(raw_ms), 3), round(statistics.median(runner_ms), 3))
