"""TFLite runner over ai-edge-litert (default) or tflite-runtime, with XNNPACK threads."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edge_isp._deps import available, require
from edge_isp.errors import InputError
from edge_isp.runtimes.base import (
    TensorSpec,
    check_feeds,
    check_input,
    decode_output,
    encode_input,
    infer_layout,
    register_runner,
    run_frames,
)


def _interpreter_class(prefer: str):
    # ai-edge-litert is the maintained successor; tflite-runtime stays an option.
    modules = {"litert": "ai_edge_litert.interpreter", "tflite-runtime": "tflite_runtime.interpreter"}
    if prefer == "tflite-runtime" or not available(modules["litert"]) and available(modules["tflite-runtime"]):
        return require(modules["tflite-runtime"], "running TFLite models").Interpreter
    return require(modules["litert"], "running TFLite models").Interpreter


def _spec(detail: dict, layout: str | None, *, channels: int | None = None, name: str | None = None) -> TensorSpec:
    """A tensor's spec. Rank-4 layout: what the bundle says (litert-torch keeps PyTorch's NCHW);
    else inferred from ``channels`` (the model's Bayer input / RGB output), or, for signature
    tensors (``channels`` None), onnx2tf's NHWC - every rank-4 tensor it writes is NHWC."""
    shape = tuple(int(d) for d in detail["shape"])
    scale, zero = detail.get("quantization", (0.0, 0))
    dtype = np.dtype(detail["dtype"]).name
    quantised = dtype in ("int8", "uint8", "int16") and scale
    if len(shape) == 4 and layout:
        kind = layout
    elif channels is not None:
        kind = infer_layout(shape, channels)
    else:
        kind = "NHWC" if len(shape) == 4 else "NCHW"
    return TensorSpec(name=name or detail["name"], shape=shape, dtype=dtype, layout=kind,
                      scale=float(scale) if quantised else None, zero_point=int(zero) if quantised else None)


class LiteRTRunner:
    def __init__(self, model_path: Path, threads: int | None = None, flavour: str = "litert",
                 layout: str | None = None) -> None:
        # layout: the rank-4 tensors' layout when the converter says it (litert-torch keeps
        # PyTorch's NCHW); None = onnx2tf's NHWC / inferred from the shape.
        if layout not in (None, "NCHW", "NHWC"):
            raise InputError(f"{model_path}: unknown tensor layout {layout!r} in the bundle (NCHW or NHWC)")
        self.runtime = "litert" if flavour == "litert" else "tflite-runtime"
        cls = _interpreter_class(flavour)
        try:
            self._interp = cls(model_path=str(model_path), num_threads=threads)
        except ValueError as exc:
            raise InputError(f"{model_path} is not a loadable TFLite model: {exc}") from exc
        self._interp.allocate_tensors()
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]
        self.input_spec = _spec(self._in, layout, channels=4)
        self.output_spec = _spec(self._out, layout, channels=3)
        # Named I/O from the signature (onnx2tf keeps the ONNX names there): several inputs
        # are found by name, never by position, which onnx2tf does not keep. Indices, not a
        # SignatureRunner, which would hold the interpreter's buffers.
        signatures = self._interp._get_full_signature_list()  # noqa: SLF001 - names -> tensor indices
        details = {d["index"]: d for d in (*self._interp.get_input_details(), *self._interp.get_output_details())}
        if len(signatures) == 1:
            sig = next(iter(signatures.values()))
            self._named_in = {n: details[i] for n, i in sig["inputs"].items()}
            self._named_out = {n: details[i] for n, i in sig["outputs"].items()}
        else:
            self._named_in, self._named_out = {self.input_spec.name: self._in}, {self.output_spec.name: self._out}
        self.inputs = {n: _spec(d, layout, name=n) for n, d in self._named_in.items()}
        self.outputs = {n: _spec(d, layout, name=n) for n, d in self._named_out.items()}
        if "bayer" in self._named_in:
            self._in = self._named_in["bayer"]
            self.input_spec = _spec(self._in, layout, channels=4)
        if "rgb" in self._named_out:
            self._out = self._named_out["rgb"]
            self.output_spec = _spec(self._out, layout, channels=3)

    def run(self, packed: np.ndarray) -> np.ndarray:
        check_input(packed, self.input_spec)
        return run_frames(self._run_one, packed, int(self.input_spec.shape[0]))

    def _run_one(self, x: np.ndarray) -> np.ndarray:
        self._interp.set_tensor(self._in["index"], encode_input(x, self.input_spec))
        self._interp.invoke()
        return decode_output(self._interp.get_tensor(self._out["index"]), self.output_spec)

    def run_named(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_feeds(feeds, self.inputs)
        for name, x in feeds.items():
            self._interp.set_tensor(self._named_in[name]["index"], encode_input(np.asarray(x, np.float32), self.inputs[name]))
        self._interp.invoke()
        return {n: decode_output(self._interp.get_tensor(d["index"]), self.outputs[n]) for n, d in self._named_out.items()}


register_runner("litert")(LiteRTRunner)


@register_runner("tflite-runtime")
def _open_tflite_runtime(model_path: Path, threads: int | None = None, layout: str | None = None) -> LiteRTRunner:
    return LiteRTRunner(model_path, threads=threads, flavour="tflite-runtime", layout=layout)
