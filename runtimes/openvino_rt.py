"""OpenVINO runner (CPU plugin) with an explicit inference precision."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edge_isp._deps import require
from edge_isp.runtimes.base import TensorSpec, check_feeds, check_input, register_runner, run_frames


@register_runner("openvino")
class OpenVINORunner:
    runtime = "openvino"

    def __init__(self, model_path: Path, threads: int | None = None, device: str = "CPU",
                 precision_hint: str = "f32", performance_hint: str = "LATENCY",
                 input_hw: tuple[int, int] | None = None) -> None:
        ov = require("openvino", "running OpenVINO IR")
        core = ov.Core()
        model: object = str(model_path)
        if input_hw is not None:
            # An IR is reshapeable: the same weights and quantisation at another spatial size
            # (per-channel statistics inputs keep their 1x1).
            model = core.read_model(str(model_path))
            model.reshape({p.get_any_name(): [*p.get_partial_shape().to_shape()[:2], *input_hw]
                           for p in model.inputs if p.get_partial_shape().to_shape()[2] > 1})
        # CPUs with bf16 would otherwise run an FP32 IR in bf16 (about 69 dB instead of
        # 150 dB vs PyTorch): ask for the precision explicitly and record it.
        config = {"INFERENCE_PRECISION_HINT": precision_hint, "PERFORMANCE_HINT": performance_hint}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.precision_hint = precision_hint
        self._compiled = core.compile_model(model, device, config)
        self._request = self._compiled.create_infer_request()
        i, o = self._compiled.inputs[0], self._compiled.outputs[0]
        self.input_spec = TensorSpec(i.get_any_name(), tuple(i.get_shape()), "float32", "NCHW")
        self.output_spec = TensorSpec(o.get_any_name(), tuple(o.get_shape()), "float32", "NCHW")
        self.inputs = {p.get_any_name(): TensorSpec(p.get_any_name(), tuple(p.get_shape()), "float32", "NCHW")
                       for p in self._compiled.inputs}
        self.outputs = {p.get_any_name(): TensorSpec(p.get_any_name(), tuple(p.get_shape()), "float32", "NCHW")
                        for p in self._compiled.outputs}
        if "bayer" in self.inputs:
            self.input_spec = self.inputs["bayer"]

    def run(self, packed: np.ndarray) -> np.ndarray:
        check_input(packed, self.input_spec)
        return run_frames(self._run_one, np.ascontiguousarray(packed, np.float32), int(self.input_spec.shape[0]))

    def _run_one(self, x: np.ndarray) -> np.ndarray:
        # Shared in and out (no copies inside OpenVINO); the one copy below is needed, as
        # the request's output buffer is reused by the next call.
        result = self._request.infer({0: x}, share_inputs=True, share_outputs=True)
        return np.array(result[self._compiled.outputs[0]], dtype=np.float32)

    def run_named(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_feeds(feeds, self.inputs)
        result = self._request.infer({n: np.ascontiguousarray(x, np.float32) for n, x in feeds.items()},
                                     share_inputs=True, share_outputs=True)
        # Answer under every name a port has: after NNCF an output keeps its ONNX name among
        # others, and get_any_name() may return another one (seen: PyNET-V2 Mobile Slim INT8).
        return {name: value for o in self._compiled.outputs
                for value in (np.array(result[o], dtype=np.float32),) for name in o.get_names()}
