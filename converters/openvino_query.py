"""Ask an OpenVINO device plugin which ops of an IR it will run (``Core.query_model``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edge_isp._deps import require
from edge_isp.errors import InputError

# Graph plumbing, not compute: not counted as ops.
_SKIP = {"Parameter", "Result", "Constant"}


@dataclass(frozen=True)
class QueriedOp:
    name: str
    type_name: str
    supported: bool
    inputs: list[str] = field(default_factory=list)   # producer output ids "name:port"
    outputs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class QueryResult:
    device: str
    version: str
    ops: list[QueriedOp]


def query_model(xml: Path, device: str = "CPU") -> QueryResult:
    """Read an IR and ask ``device`` which of its ops it supports."""
    ov = require("openvino", "checking OpenVINO IR")
    xml = Path(xml)
    if not xml.is_file():
        raise InputError(f"{xml} does not exist; pass an OpenVINO .xml (with its .bin) or a bundle folder")
    core = ov.Core()
    if device not in core.available_devices:
        raise InputError(f"OpenVINO device {device!r} is not available here (have: {', '.join(core.available_devices)})")
    try:
        model = core.read_model(str(xml))
    except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses
        raise InputError(f"{xml} is not a readable OpenVINO IR ({str(exc).splitlines()[0][:200]})") from exc
    supported = core.query_model(model, device)
    ops = []
    for node in model.get_ordered_ops():
        type_name = node.get_type_name()
        if type_name in _SKIP:
            continue
        name = node.get_friendly_name()
        inputs = []
        for value in node.input_values():
            producer = value.get_node()
            if producer.get_type_name() in ("Parameter", "Constant"):
                continue
            inputs.append(f"{producer.get_friendly_name()}:{value.get_index()}")
        outputs = [f"{name}:{i}" for i in range(node.get_output_size())]
        ops.append(QueriedOp(name, type_name, name in supported, inputs, outputs))
    return QueryResult(device, ov.get_version(), ops)
