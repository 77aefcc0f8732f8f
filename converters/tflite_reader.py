"""Read a TFLite flatbuffer without TensorFlow: operators, tensors, quantisation, options.

Uses the ``tflite`` schema package (generated flatbuffer accessors, no runtime). Everything
the op-support checker needs is turned into plain dataclasses here, so the checker never
touches flatbuffer objects and a malformed file fails in one place with one clear error.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from edge_isp.errors import InputError

FILE_IDENTIFIER = b"TFL3"

# Option fields whose integer values are enums of the schema: shown by name.
_ENUM_FIELDS = {
    "fused_activation_function": "ActivationFunctionType",
    "padding": "Padding",
    "mode": "MirrorPadMode",
    "weights_format": "FullyConnectedOptionsWeightsFormat",
}


class TfliteFormatError(InputError):
    """The file is not a (complete) TFLite flatbuffer."""


@dataclass(frozen=True)
class Quantization:
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()
    quantized_dimension: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1

    def to_dict(self) -> dict[str, Any]:
        return {"scale": list(self.scale), "zero_point": list(self.zero_point),
                "quantized_dimension": self.quantized_dimension}


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str                      # lower-case TensorType name: float32, int8, ...
    constant: bool                  # has data in the model (weights, shapes, paddings)
    quantization: Quantization | None = None

    @property
    def rank(self) -> int:
        return len(self.shape)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "constant": self.constant,
                "quantization": self.quantization.to_dict() if self.quantization else None}


@dataclass(frozen=True)
class OperatorInfo:
    index: int                      # position in the subgraph's execution order
    op: str                         # builtin name (CONV_2D) or "CUSTOM:<code>"
    builtin_code: int
    version: int
    inputs: tuple[int, ...]         # tensor indices; -1 = optional input left out
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TfliteModel:
    path: Path | None
    schema_version: int
    tensors: list[TensorInfo]
    operators: list[OperatorInfo]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    subgraphs: int = 1
    description: str = ""

    def tensor(self, index: int) -> TensorInfo | None:
        return self.tensors[index] if 0 <= index < len(self.tensors) else None

    def op_inputs(self, op: OperatorInfo) -> list[TensorInfo | None]:
        return [self.tensor(i) for i in op.inputs]

    def op_outputs(self, op: OperatorInfo) -> list[TensorInfo | None]:
        return [self.tensor(i) for i in op.outputs]

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.operators:
            counts[op.op] = counts.get(op.op, 0) + 1
        return dict(sorted(counts.items()))


def _snake(name: str) -> str:
    """DilationWFactor -> dilation_w_factor, FusedActivationFunction -> fused_activation_function."""
    step = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", step).lower()


@lru_cache(maxsize=None)
def _enum_names(enum_class: str) -> dict[int, str]:
    import tflite

    cls = getattr(tflite, enum_class)
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


@lru_cache(maxsize=None)
def _options_getters(class_name: str) -> tuple[type, tuple[tuple[str, str], ...]]:
    """(class, ((method, snake_name), ...)) for one BuiltinOptions table class."""
    import tflite

    cls = getattr(tflite, class_name)
    getters = []
    for name, fn in vars(cls).items():
        if name.startswith("_") or name.startswith("GetRootAs") or name in ("Init",) or not callable(fn):
            continue
        if name.endswith(("AsNumpy", "IsNone", "Length")) or "BufferHasIdentifier" in name:
            continue
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            continue
        if len(params) == 1:
            getters.append((name, _snake(name)))
        elif len(params) == 2 and hasattr(cls, name + "Length"):
            getters.append((name, _snake(name)))  # vector field, read element-wise
    return cls, tuple(getters)


def _read_options(op: Any) -> dict[str, Any]:
    kind = op.BuiltinOptionsType()
    if not kind:
        return {}
    class_name = _enum_names("BuiltinOptions").get(kind)
    table = op.BuiltinOptions()
    if class_name is None or table is None:
        return {}
    cls, getters = _options_getters(class_name)
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    values: dict[str, Any] = {}
    for method, key in getters:
        fn = getattr(obj, method)
        try:
            if hasattr(obj, method + "Length"):
                value: Any = [fn(j) for j in range(getattr(obj, method + "Length")())]
            else:
                value = fn()
        except Exception:  # noqa: BLE001 - a field this schema version cannot read
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if key in _ENUM_FIELDS and isinstance(value, int):
            value = _enum_names(_ENUM_FIELDS[key]).get(value, value)
        values[key] = value
    return values


def _quantization(tensor: Any) -> Quantization | None:
    q = tensor.Quantization()
    if q is None or q.ScaleLength() == 0:
        return None
    return Quantization(
        scale=tuple(float(q.Scale(i)) for i in range(q.ScaleLength())),
        zero_point=tuple(int(q.ZeroPoint(i)) for i in range(q.ZeroPointLength())),
        quantized_dimension=int(q.QuantizedDimension()),
    )


def _builtin_code_field(oc: Any) -> int:
    """The raw ``builtin_code`` of an OperatorCode. The ``tflite`` package's accessor returns
    the deprecated byte for codes below 127, which writers that fill only ``builtin_code``
    (ai-edge-quantizer does) leave at 0 = ADD; TFLite itself takes the larger of the two."""
    import flatbuffers

    o = oc._tab.Offset(10)  # noqa: SLF001 - field 3 of the OperatorCode table
    return int(oc._tab.Get(flatbuffers.number_types.Int32Flags, o + oc._tab.Pos)) if o else 0  # noqa: SLF001


def builtin_code(oc: Any) -> int:
    """An OperatorCode's builtin op code as TFLite reads it: the larger of both fields."""
    return max(_builtin_code_field(oc), int(oc.DeprecatedBuiltinCode()))


def parse_tflite(data: bytes, path: Path | None = None, subgraph: int = 0) -> TfliteModel:
    """Parse flatbuffer bytes; raises ``TfliteFormatError`` for anything that is not a model."""
    where = str(path) if path else "the data"
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise TfliteFormatError(
            f"{where} is not a TFLite model (no 'TFL3' flatbuffer identifier); pass a .tflite file "
            "or a bundle folder made by 'edge-isp convert'")
    try:
        import tflite
    except ImportError as exc:
        from edge_isp.errors import MissingDependencyError

        raise MissingDependencyError(
            "reading TFLite models needs the 'tflite' schema package: pip install 'edge-isp[runtime]'") from exc
    try:
        model = tflite.Model.GetRootAs(data, 0)
        if model.SubgraphsLength() < 1:
            raise ValueError("model has no subgraph")
        buffers_len = model.BuffersLength()

        def buffer_has_data(index: int) -> bool:
            if index <= 0 or index >= buffers_len:
                return False
            buf = model.Buffers(index)
            return buf.DataLength() > 0 or buf.Offset() > 1  # Offset(): data stored outside the flatbuffer

        codes = []
        for i in range(model.OperatorCodesLength()):
            oc = model.OperatorCodes(i)
            code = builtin_code(oc)
            name = _enum_names("BuiltinOperator").get(code, f"BUILTIN_{code}")
            custom = oc.CustomCode()
            # LiteRT writes its DISPATCH_OP (and some vendor ops) as builtin code 0 with a custom
            # code; code 0 is ADD, so a custom code decides what the op really is.
            if name == "CUSTOM" or (code == 0 and custom):
                name = f"CUSTOM:{custom.decode('utf-8', 'replace') if custom else '?'}"
            codes.append((name, code, int(oc.Version()) or 1))

        sg = model.Subgraphs(subgraph)
        tensors = []
        for i in range(sg.TensorsLength()):
            t = sg.Tensors(i)
            raw_name = t.Name()
            tensors.append(TensorInfo(
                index=i, name=raw_name.decode("utf-8", "replace") if raw_name else f"t{i}",
                shape=tuple(int(d) for d in (t.ShapeAsNumpy() if t.ShapeLength() else ())),
                dtype=_enum_names("TensorType").get(t.Type(), f"type{t.Type()}").lower(),
                constant=buffer_has_data(t.Buffer()), quantization=_quantization(t),
            ))
        operators = []
        for i in range(sg.OperatorsLength()):
            o = sg.Operators(i)
            name, code, version = codes[o.OpcodeIndex()]
            operators.append(OperatorInfo(
                index=i, op=name, builtin_code=code, version=version,
                inputs=tuple(int(x) for x in (o.InputsAsNumpy() if o.InputsLength() else ())),
                outputs=tuple(int(x) for x in (o.OutputsAsNumpy() if o.OutputsLength() else ())),
                options=_read_options(o),
            ))
        inputs = tuple(int(x) for x in (sg.InputsAsNumpy() if sg.InputsLength() else ()))
        outputs = tuple(int(x) for x in (sg.OutputsAsNumpy() if sg.OutputsLength() else ()))
        desc = model.Description()
        for op in operators:
            for ti in (*op.inputs, *op.outputs):
                if ti >= len(tensors):
                    raise ValueError(f"operator {op.index} refers to tensor {ti} of {len(tensors)}")
    except TfliteFormatError:
        raise
    except Exception as exc:  # flatbuffers raises IndexError/struct.error/... on bad offsets
        raise TfliteFormatError(
            f"{where} is not a readable TFLite model (truncated or corrupt: {type(exc).__name__}: {exc}); "
            "re-export it or re-run 'edge-isp convert'") from exc
    return TfliteModel(path=path, schema_version=int(model.Version()), tensors=tensors, operators=operators,
                       inputs=inputs, outputs=outputs, subgraphs=int(model.SubgraphsLength()),
                       description=desc.decode("utf-8", "replace") if desc else "")


def read_tflite(path: Path) -> TfliteModel:
    """Read a ``.tflite`` file (see ``parse_tflite``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file; pass a .tflite model or a bundle folder")
    return parse_tflite(path.read_bytes(), path)
