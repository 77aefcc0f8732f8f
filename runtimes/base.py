"""One runner interface over every runtime: NCHW float32 in, NCHW float32 RGB out.

Runners hide the artifact's layout (NCHW/NHWC) and integer quantisation, so callers
never transpose or (de)quantise by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge_isp._names import lookup
from edge_isp.errors import InputError


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str                     # numpy dtype name of the artifact's tensor
    layout: str                    # "NCHW" or "NHWC"
    scale: float | None = None     # affine quantisation of integer I/O
    zero_point: int | None = None

    @property
    def nchw_shape(self) -> tuple[int, ...]:
        if self.layout == "NHWC":
            n, h, w, c = self.shape
            return (n, c, h, w)
        return self.shape

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "shape": list(self.shape), "dtype": self.dtype,
            "layout": self.layout, "scale": self.scale, "zero_point": self.zero_point,
        }


def infer_layout(shape: tuple[int, ...], channels: int) -> str:
    """NHWC when the channel count sits last (and not also second)."""
    if len(shape) == 4 and shape[-1] == channels and shape[1] != channels:
        return "NHWC"
    return "NCHW"


def encode_input(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """NCHW float32 -> the artifact's layout and dtype, in as few passes as numpy allows."""
    if spec.layout == "NHWC":
        x = np.transpose(x, (0, 2, 3, 1))
    if spec.scale:  # integer input: quantise with the model's own parameters
        info = np.iinfo(spec.dtype)
        q = np.empty(x.shape, np.float32)          # C order: the transpose happens in this pass
        np.divide(x, np.float32(spec.scale), out=q)
        np.rint(q, out=q)
        if spec.zero_point:
            q += np.float32(spec.zero_point)
        np.clip(q, info.min, info.max, out=q)
        return q.astype(spec.dtype)
    return np.ascontiguousarray(x, dtype=spec.dtype)


def decode_output(y: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """The artifact's output -> NCHW float32 (C order), dequantised and transposed in one pass."""
    if spec.layout == "NHWC":
        y = np.transpose(y, (0, 3, 1, 2))
    if spec.scale:
        out = np.empty(y.shape, np.float32)
        np.subtract(y, np.float32(spec.zero_point or 0), out=out, dtype=np.float32)
        out *= np.float32(spec.scale)
        return out
    return np.ascontiguousarray(y, dtype=np.float32)


def check_input(x: np.ndarray, spec: TensorSpec) -> None:
    if x.ndim != 4 or x.shape[0] % max(1, spec.shape[0]) or tuple(x.shape[1:]) != tuple(spec.nchw_shape[1:]):
        raise InputError(
            f"input of shape {tuple(x.shape)} does not fit the model's fixed input "
            f"{tuple(spec.nchw_shape)} (NCHW); use tiled processing for other sizes"
        )


class Runner(Protocol):
    runtime: str
    input_spec: TensorSpec
    output_spec: TensorSpec

    def run(self, packed: np.ndarray) -> np.ndarray:
        """Run one batch of packed Bayer (N,4,h,w) float32 -> RGB (N,3,H,W) float32."""
        ...


class NamedRunner(Protocol):
    """A runner of a graph with several inputs/outputs (the parts of a two-pass bundle):
    named NCHW float32 arrays in, named NCHW float32 arrays out, batch 1."""

    runtime: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]

    def run_named(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        ...


def check_feeds(feeds: Mapping[str, np.ndarray], inputs: Mapping[str, TensorSpec]) -> None:
    """Every input given once, at its NCHW shape: a clear error instead of a runtime's."""
    missing, extra = set(inputs) - set(feeds), set(feeds) - set(inputs)
    if missing or extra:
        raise InputError(f"the model takes inputs {', '.join(inputs)}; got {', '.join(feeds)}")
    for name, spec in inputs.items():
        if tuple(np.shape(feeds[name])) != tuple(spec.nchw_shape):
            raise InputError(f"input {name} has shape {tuple(np.shape(feeds[name]))}; the model takes "
                             f"{tuple(spec.nchw_shape)} (NCHW)")


RunnerFactory = Callable[..., Runner]
_RUNNERS: dict[str, RunnerFactory] = {}


def register_runner(name: str) -> Callable[[RunnerFactory], RunnerFactory]:
    def wrap(factory: RunnerFactory) -> RunnerFactory:
        _RUNNERS[name] = factory
        return factory

    return wrap


def _load_all() -> None:
    from edge_isp.runtimes import litert, onnxrt, openvino_rt, torch_rt  # noqa: F401


def list_runtimes() -> list[str]:
    _load_all()
    return sorted(_RUNNERS)


def open_runner(runtime: str, model_path: Path, **options: Any) -> Runner:
    """Load ``model_path`` with the named runtime (``litert``, ``openvino``, ...)."""
    _load_all()
    factory = lookup(_RUNNERS, runtime, "runtime")
    return factory(Path(model_path), **options)


def run_frames(run_one: Callable[[np.ndarray], np.ndarray], packed: np.ndarray, batch: int) -> np.ndarray:
    """Run a fixed-batch model over any number of frames, ``batch`` at a time."""
    if packed.shape[0] == batch:
        return run_one(packed)
    if packed.shape[0] % batch:
        raise InputError(f"{packed.shape[0]} frames do not split into the model's batch of {batch}")
    return np.concatenate([run_one(packed[i:i + batch]) for i in range(0, packed.shape[0], batch)], axis=0)
