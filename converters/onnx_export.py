"""PyTorch -> ONNX with the dynamo exporter, checked and run once with ONNX Runtime."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
    input_name: str                 # the first (Bayer) input
    output_name: str                # the first output
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    op_types: dict[str, int]
    # Every input / output by name, in graph order (two-pass parts have several).
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    outputs: dict[str, tuple[int, ...]] = field(default_factory=dict)


def export_onnx(model: Any, input_shape: tuple[int, int, int, int] | Mapping[str, tuple[int, ...]], path: Path,
                output_names: Sequence[str] = (OUTPUT_NAME,)) -> OnnxExport:
    """Export ``model`` at static NCHW input shapes to ``path`` with weights embedded.

    ``input_shape`` is the Bayer input's shape, or {name: shape} for a model with several
    inputs (passed positionally in that order). Embedding keeps a bundle one file per
    artifact (the ISP models are far below the 2 GB protobuf limit).
    """
    torch = require("torch", "ONNX export")
    require("onnxscript", "ONNX export with the dynamo exporter")
    onnx = require("onnx", "ONNX export")
    shapes = dict(input_shape) if isinstance(input_shape, Mapping) else {INPUT_NAME: tuple(input_shape)}
    examples = tuple(torch.zeros(shape, dtype=torch.float32) for shape in shapes.values())
    # The exporter prints progress lines to stdout; keep the CLI's output clean.
    sink = io.StringIO()
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(sink), torch.no_grad():
            torch.onnx.export(
                model, examples, str(path), dynamo=True, external_data=False,
                opset_version=OPSET, input_names=list(shapes), output_names=list(output_names),
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

    def dims(value: Any) -> tuple[int, ...]:
        return tuple(int(d.dim_value) for d in value.type.tensor_type.shape.dim)

    outputs = {o.name: dims(o) for o in proto.graph.output}
    ops: dict[str, int] = {}
    for node in proto.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    first_in, first_out = next(iter(shapes)), proto.graph.output[0].name
    return OnnxExport(
        path=Path(path), opset=OPSET, input_name=first_in, output_name=first_out,
        input_shape=tuple(shapes[first_in]), output_shape=outputs[first_out],
        op_types=dict(sorted(ops.items())), inputs={n: tuple(s) for n, s in shapes.items()}, outputs=outputs,
    )


def build(ctx: Any) -> Any:
    """The ``onnx`` format entry: the exported graph is the artifact."""
    from edge_isp.converters.stages import BuiltArtifact

    return BuiltArtifact(ctx.onnx_path)
