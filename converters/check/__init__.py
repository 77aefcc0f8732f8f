"""The op-support checker: will this model run on that accelerator, and if not, why.

For a TFLite model and a target (its support table in ``profiles/ops``) and an Android API
/ NNAPI feature level, every operator is decided "delegated" or "CPU" with the reason, by
the table's rules and the delegate's own rules (nothing below API 27; int8 as uint8 below
feature level 4; feature-level-6/7 ops only with a named accelerator; version limits;
rank and type limits). The graph is then partitioned the way TFLite partitions it for a
delegate (``PartitionGraphIntoIndependentNodeSubsets``: epochs of ready nodes of one kind),
and only the largest ``max_partitions`` delegated partitions stay delegated.

OpenVINO IR is checked by asking the device plugin (``Core().query_model``); ONNX for ONNX
Runtime CPU runs whole.

Nothing here needs TensorFlow: TFLite files are read with ``converters/tflite_reader.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_isp.converters.artifact_formats import format_of_file, get_format
from edge_isp.converters.check.formats import check_onnx, check_openvino, check_tflite, describe, read_onnx
from edge_isp.converters.check.levels import LevelContext, find_device, resolve_level
from edge_isp.converters.check.report import (
    REQUIRE_LEVELS,
    VERDICTS,
    CheckReport,
    DelegationError,
    OpResult,
    Partition,
    apply_partitions,
    partition_graph,
    require_delegation,
)
from edge_isp.converters.check.rules import CHECK_FUNCTIONS, OpContext, decide
from edge_isp.converters.support import load_table
from edge_isp.converters.tflite_reader import read_tflite
from edge_isp.errors import InputError

# ----------------------------------------------------------------------------- entry points

def _resolve_artifact(path: Path, target: str | None) -> tuple[Path, str, str | None, dict[str, Any] | None]:
    """(model file, format, target name, manifest) for a bundle folder, manifest or model file."""
    from edge_isp.converters.bundle import MANIFEST, load_bundle

    path = Path(path)
    if path.is_dir() or path.name == MANIFEST:
        bundle = load_bundle(path)
        fmt = str(bundle.manifest["target"].get("format", ""))
        return bundle.model_file, fmt, target or bundle.target, bundle.manifest
    if not path.exists():
        raise InputError(f"{path} does not exist; pass a .tflite / .xml / .onnx model or a bundle folder")
    fmt = format_of_file(path.suffix)
    if fmt is None:
        head = path.read_bytes()[:8]
        fmt = "tflite" if head[4:8] == b"TFL3" else None
    if fmt is None:
        raise InputError(f"{path} is not a model edge-isp can check: pass a .tflite, OpenVINO .xml or .onnx file "
                         "or a bundle folder")
    return path, fmt, target, None


def _vendor_check(tgt: Any, model_file: Path, fmt: str, manifest: dict[str, Any] | None,
                  platform: str | None) -> CheckReport:
    """The vendor compiler's report (a bundle's own when it is for this target and SoC, else
    the compiler run again), next to the static table's verdict for the same ops."""
    entry = get_format(tgt.format)
    soc_key = entry.vendor_check.soc_key
    npu = (manifest or {}).get("npu")
    reuse = bool(npu) and manifest["target"].get("name") == tgt.name and (
        platform is None or soc_key is None or platform.lower() == str(npu.get(soc_key, "")).lower())
    report, static_file = entry.load().vendor_check(Path(model_file), fmt, tgt.name, npu if reuse else None, platform)
    return compare_with_table(report, static_report(static_file, tgt.name)) if static_file.is_file() else report


def check_bundle(path: Path, target: str | None = None, api_level: int | str | None = None,
                 accelerator: str | None = None, profiles_dir: Path | None = None, device: str | None = None,
                 max_partitions: int | None = None, platform: str | None = None) -> CheckReport:
    """Check a bundle folder (target from its manifest) or a model file (``target`` required).

    ``platform``: the SoC a vendor-compiler target compiles for (RKNN: rk3576, rv1106 ...;
    LiteRT NPU: SM8650, MT6989 ...); a bundle's own report is reused when it matches.
    """
    from edge_isp.converters.targets import get_target

    model_file, fmt, target_name, _manifest = _resolve_artifact(Path(path), target)
    if target_name is None:
        raise InputError(f"{path} is a bare model file: say which target to check it for with --target "
                         "(e.g. --target nnapi-int8)")
    tgt = get_target(target_name)
    vendor = get_format(tgt.format).vendor_check
    if vendor is not None and fmt in vendor.reads:
        return _vendor_check(tgt, model_file, fmt, _manifest, platform)
    if tgt.format != fmt:
        raise InputError(f"target {tgt.name} is for {tgt.format} models but {model_file.name} is {fmt}; "
                         "pick a target of that format")
    table = load_table(tgt.support_table, profiles_dir)
    if table.format != fmt:
        raise InputError(f"op table {table.name} ({table.path}) is for {table.format} models, not {fmt}")
    if max_partitions is not None and max_partitions < 0:
        raise InputError("--max-partitions must be 0 (no limit) or more")
    dev = find_device(device, tgt.name, profiles_dir) if device else None
    if fmt == "openvino":
        return check_openvino(model_file, table, tgt.name)
    if fmt == "onnx":
        return check_onnx(model_file, table, tgt.name)
    levels = resolve_level(table, api_level, accelerator, tgt.default_api_level, dev)
    model = read_tflite(model_file)
    report = check_tflite(model, table, tgt.name, levels, max_partitions, device=dev["name"] if dev else None)
    if tgt.quantized and table.kind == "tflite-delegate":
        floats = [r for r, op in zip(report.ops, model.operators) if r.delegated and op.op not in
                  ("QUANTIZE", "DEQUANTIZE") and any(t is not None and t.dtype == "float32" and not t.constant
                                                     for t in model.op_inputs(op))]
        if floats:
            report.notes.insert(0, f"{len(floats)} delegated ops compute in float32 inside this integer model "
                                   "(e.g. --keep-float): the delegate accepts them, but an integer-only NPU driver "
                                   "may refuse them when it compiles the model")
    return report


def compare_with_table(report: CheckReport, table_report: CheckReport) -> CheckReport:
    """Put a static table's verdict next to each op of a vendor compiler's report (same model).

    Ops are matched by index when both reports list the same op sequence, else by output
    tensor name; ops the table report does not have stay uncompared.
    """
    same_order = [o.op for o in report.ops] == [o.op for o in table_report.ops]
    by_output = {o.output: o for o in table_report.ops if o.output}
    for i, op in enumerate(report.ops):
        other = table_report.ops[i] if same_order else by_output.get(op.output)
        if other is None:
            continue
        op.table_delegated = other.delegated
        op.table_reason = other.reason
    report.compared_table = f"{table_report.table} ({table_report.level_label})" if table_report.level is not None \
        else table_report.table
    return report


def static_report(model_file: Path, target_name: str, table_name: str | None = None) -> CheckReport:
    """The static table's report for a model file, for comparison with a vendor compiler."""
    from edge_isp.converters.targets import get_target

    tgt = get_target(target_name)
    table = load_table(table_name or tgt.support_table)
    path = Path(model_file)
    if table.format == "onnx":
        return check_onnx(path, table, tgt.name)
    levels = resolve_level(table, None, None, tgt.default_api_level, None)
    return check_tflite(read_tflite(path), table, tgt.name, levels, None)


def check_artifact(model_file: Path, target_name: str, **kwargs: Any) -> CheckReport:
    """Check a freshly built artifact for its target at the target's default level (for ``convert``)."""
    return check_bundle(Path(model_file), target=target_name, **kwargs)


__all__ = ["CHECK_FUNCTIONS", "REQUIRE_LEVELS", "VERDICTS", "CheckReport", "DelegationError",
           "LevelContext", "OpContext", "OpResult", "Partition", "apply_partitions", "check_artifact", "check_bundle",
           "check_onnx", "check_openvino", "check_tflite", "compare_with_table", "decide", "describe", "find_device",
           "partition_graph", "read_onnx", "require_delegation", "resolve_level", "static_report"]
