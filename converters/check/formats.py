"""Checks per model format: TFLite against a delegate's table, ONNX against an op list,
OpenVINO IR by asking the device plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_isp.converters.check.levels import LevelContext
from edge_isp.converters.check.report import CheckReport, OpResult, apply_partitions
from edge_isp.converters.check.rules import OpContext, decide
from edge_isp.converters.support import SupportTable, level_name
from edge_isp.converters.tflite_reader import TensorInfo, TfliteModel
from edge_isp.errors import InputError


# ----------------------------------------------------------------------------- TFLite check

def describe(t: TensorInfo | None) -> str:
    if t is None:
        return "-"
    shape = "x".join(str(d) for d in t.shape) or "scalar"
    return f"{shape} {t.dtype}{' const' if t.constant else ''}"


def _folded_weights(model: TfliteModel) -> dict[int, TensorInfo]:
    """Outputs of DEQUANTIZE ops over constant fp16 weights, seen as constants by consumers.

    Both delegates fold these (NNAPI: IsDequantizeConstFloat16; GPU: fp16 weights), so a
    conv fed by them has constant weights, not runtime inputs.
    """
    import dataclasses

    folded: dict[int, TensorInfo] = {}
    for op in model.operators:
        if op.op != "DEQUANTIZE" or not op.inputs or not op.outputs:
            continue
        src, dst = model.tensor(op.inputs[0]), model.tensor(op.outputs[0])
        if src is not None and dst is not None and src.constant and src.dtype == "float16":
            folded[dst.index] = dataclasses.replace(dst, constant=True)
    return folded


def check_tflite(model: TfliteModel, table: SupportTable, target: str, levels: LevelContext,
                 max_partitions: int | None = None, device: str | None = None) -> CheckReport:
    if table.format != "tflite":
        raise InputError(f"table {table.name!r} is for {table.format} models, not TFLite")
    results: list[OpResult] = []
    nodes = []
    folded = _folded_weights(model)
    for op in model.operators:
        ins = [folded.get(t.index, t) if t is not None else None for t in model.op_inputs(op)]
        c = OpContext(op, ins, model.op_outputs(op), levels.level, bool(levels.accelerator))
        delegated, reason, fit, note = decide(table, c)
        out = c.outputs[0].name if c.outputs and c.outputs[0] else ""
        results.append(OpResult(op.index, op.op, op.version, delegated, reason, fit, None,
                                [describe(t) for t in c.inputs], out, note))
        nodes.append(([i for i in op.inputs if i >= 0], list(op.outputs)))
    limit = table.delegate.max_partitions if max_partitions is None else max_partitions
    partitions = apply_partitions(
        results, nodes, limit,
        f"supported, but its partition is not among the {limit} largest the delegate takes "
        "(max_delegated_partitions); it runs on the CPU")
    notes = list(levels.notes) + list(table.notes)
    if table.delegate.int8_as_uint8_below is not None and levels.level is not None \
            and levels.level < table.delegate.int8_as_uint8_below \
            and any(t.dtype == "int8" for t in model.tensors if not t.constant):
        notes.insert(0, f"below {level_name(table.delegate.int8_as_uint8_below)} the delegate converts int8 tensors "
                        "to uint8 (zero point + 128)")
    if model.subgraphs > 1:
        notes.append(f"the model has {model.subgraphs} subgraphs; only the main one was checked")
    sources = [table.source_text(s) for s in dict.fromkeys(
        [table.delegate.source] + [table.op(o.op).source for o in results if table.op(o.op)]) if s]
    return CheckReport(
        model_file=str(model.path) if model.path else "", model_format="tflite", target=target, table=table.name,
        table_title=table.title, level=levels.level, level_label=levels.label, accelerator=levels.accelerator,
        max_partitions=limit, ops=results, partitions=partitions, notes=notes, sources=sources, device=device)


# ----------------------------------------------------------------------------- other formats

def read_onnx(path: Path, purpose: str = "checking ONNX models") -> Any:
    """The ONNX model at ``path`` (external weights not loaded); InputError when unreadable."""
    from edge_isp._deps import require

    onnx = require("onnx", purpose)
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several types
        raise InputError(f"{path} is not a readable ONNX model ({exc})") from exc


def check_onnx(path: Path, table: SupportTable, target: str) -> CheckReport:
    """Each ONNX node against the table: every op ("all-ops") or the listed op types ("onnx-op-list")."""
    proto = read_onnx(path)
    listed = table.kind == "onnx-op-list"
    results, nodes = [], []
    for i, node in enumerate(proto.graph.node):
        entry = table.ops.get(node.op_type)
        ok = entry is not None or not listed
        results.append(OpResult(i, node.op_type, 1, ok, None if ok else f"{node.op_type} is not listed in {table.title}",
                                fit=entry.fit if entry else None, output=node.output[0] if node.output else ""))
        nodes.append((list(node.input), list(node.output)))
    partitions = apply_partitions(results, nodes, table.delegate.max_partitions, "")
    return CheckReport(str(path), "onnx", target, table.name, table.title, None, "-", None, 0, results, partitions,
                       notes=list(table.notes), sources=[table.source_text(table.delegate.source)])


def check_openvino(path: Path, table: SupportTable, target: str) -> CheckReport:
    from edge_isp.converters.openvino_query import query_model

    device = table.device or "CPU"
    q = query_model(path, device)
    results = []
    for i, node in enumerate(q.ops):
        reason = None if node.supported else f"{node.type_name} is not supported by the OpenVINO {device} plugin (query_model)"
        results.append(OpResult(i, node.type_name, 1, node.supported, reason, output=node.name))
    partitions = apply_partitions(results, [(n.inputs, n.outputs) for n in q.ops], table.delegate.max_partitions, "")
    return CheckReport(str(path), "openvino", target, table.name, table.title, None, "-", device, 0, results, partitions,
                       notes=list(table.notes) + [f"asked OpenVINO {q.version} {device} plugin with Core.query_model"],
                       sources=[table.source_text(table.delegate.source)])
