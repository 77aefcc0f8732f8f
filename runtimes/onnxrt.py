"""ONNX Runtime runner (CPU execution provider)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edge_isp._deps import require
from edge_isp.runtimes.base import TensorSpec, check_feeds, check_input, register_runner, run_frames

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16"}


@register_runner("onnxruntime")
class OnnxRuntimeRunner:
    runtime = "onnxruntime"

    def __init__(self, model_path: Path, threads: int | None = None) -> None:
        ort = require("onnxruntime", "running ONNX models")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self._session = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
        i, o = self._session.get_inputs()[0], self._session.get_outputs()[0]
        self.input_spec = TensorSpec(i.name, tuple(i.shape), _ORT_TYPES.get(i.type, "float32"), "NCHW")
        self.output_spec = TensorSpec(o.name, tuple(o.shape), _ORT_TYPES.get(o.type, "float32"), "NCHW")
        self.inputs = {t.name: TensorSpec(t.name, tuple(t.shape), _ORT_TYPES.get(t.type, "float32"), "NCHW")
                       for t in self._session.get_inputs()}
        self.outputs = {t.name: TensorSpec(t.name, tuple(t.shape), _ORT_TYPES.get(t.type, "float32"), "NCHW")
                        for t in self._session.get_outputs()}

    def run(self, packed: np.ndarray) -> np.ndarray:
        check_input(packed, self.input_spec)
        x = np.ascontiguousarray(packed, dtype=self.input_spec.dtype)     # no copy when it already is
        return run_frames(self._run_one, x, int(self.input_spec.shape[0]))

    def _run_one(self, x: np.ndarray) -> np.ndarray:
        (out,) = self._session.run([self.output_spec.name], {self.input_spec.name: x})
        return out.astype(np.float32, copy=False)     # ONNX Runtime hands over a fresh array

    def run_named(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_feeds(feeds, self.inputs)
        names = list(self.outputs)
        values = self._session.run(names, {n: np.asarray(x, np.float32) for n, x in feeds.items()})
        return {n: v.astype(np.float32, copy=False) for n, v in zip(names, values)}
