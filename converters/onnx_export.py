"""PyTorch -> ONNX with the dynamo exporter, checked and run once with ONNX Runtime."""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_isp._deps import require
from edge_isp.errors import ConversionError

OPSET = 20  # fixed: the opset onnx2tf 1.29 and OpenVINO 2026 both read fully
INPUT_NAME = "bayer"
OUTPUT_NAME = "rgb"


@dataclass(frozen=True)
class OnnxExport:
    path: Path
    opset: int
    input_name: str
    output_name: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    op_types: dict[str, int]


def export_onnx(model: Any, input_shape: tuple[int, int, int, int], path: Path) -> OnnxExport:
    """Export ``model`` at a static NCHW ``input_shape`` to ``path`` with weights embedded.

    Embedding keeps a bundle one file per artifact (the ISP models are far below the
    2 GB protobuf limit).
    """
    torch = require("torch", "ONNX export")
    require("onnxscript", "ONNX export with the dynamo exporter")
    onnx = require("onnx", "ONNX export")
    example = torch.zeros(input_shape, dtype=torch.float32)
    # The exporter prints progress lines to stdout; keep the CLI's output clean.
    sink = io.StringIO()
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(sink), torch.no_grad():
            torch.onnx.export(
                model, (example,), str(path), dynamo=True, external_data=False,
                opset_version=OPSET, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                optimize=True, verify=False,
            )
    except Exception as exc:  # the exporter raises many types; report them as one
        raise ConversionError(
            f"PyTorch -> ONNX export failed: {str(exc).splitlines()[0][:300]}; "
            "check that the model has no Python control flow on tensor values"
        ) from exc
    proto = onnx.load(str(path))
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ConversionError(f"the exported ONNX model fails onnx's checker: {exc}") from exc
    out_dims = proto.graph.output[0].type.tensor_type.shape.dim
    ops: dict[str, int] = {}
    for node in proto.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return OnnxExport(
        path=Path(path), opset=OPSET, input_name=INPUT_NAME, output_name=OUTPUT_NAME,
        input_shape=tuple(input_shape), output_shape=tuple(int(d.dim_value) for d in out_dims),
        op_types=dict(sorted(ops.items())),
    )
