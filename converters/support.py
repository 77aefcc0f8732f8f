"""Op-support tables (``profiles/ops/*.toml``): load, validate, look up.

One table per accelerator path (``nnapi``, ``gpu``, ``xnnpack``, ``openvino-cpu``,
``onnxruntime-cpu``); a target names its table in ``converters/targets.py``. A user can
point ``--profiles DIR`` at a folder holding their own tables (``DIR/ops/NAME.toml`` or
``DIR/NAME.toml``); a table found there replaces the built-in one of the same name.

A table file has four parts::

    [table]     name, title, kind ("tflite-delegate" | "all-ops" | "openvino-query" |
                "onnx-op-list": the ONNX op types listed under [ops] run on the accelerator),
                format ("tflite" | "onnx" | "openvino"), levels ("nnapi" | "none"), notes, device
    [sources]   key = "where the facts came from"; every `source` below starts with a key
    [delegate]  rules of the delegate as a whole (min_level, max_partitions, max_rank, ...)
    [ops.NAME]  one entry per TFLite builtin the accelerator takes: min_level, max_version,
                max_version_with_accelerator, nnapi (the NNAPI op it becomes), fit (how to
                avoid a rejection), accept_const_float16_input, source, rules

``rules`` is a list of ``{check = "...", reason = "...", <params>}``; a rule may carry
``below = LEVEL`` (only checked under that level) or ``from = LEVEL`` (only from that level
on). Levels are Android API numbers (27..) or ``"FL1"``..``"FL8"``. The ``check`` names and
their parameters are the vocabulary in ``CHECKS``; ``converters/check.py`` evaluates them.
Anything else in a file (a typo in a key, a check, a type or a level) is an error naming
the file and the place, with the closest known spelling.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from edge_isp._toml import read_toml
from edge_isp.errors import InputError, UnknownNameError


class SupportTableError(InputError):
    """An op-support table file cannot be used as written."""


# NNAPI feature levels as the TFLite delegate numbers them (NeuralNetworksTypes.h).
FEATURE_LEVELS: dict[int, int] = {1: 27, 2: 28, 3: 29, 4: 30, 5: 31, 6: 1000006, 7: 1000007, 8: 1000008}
LEVEL_NAMES: dict[str, int] = {f"FL{k}": v for k, v in FEATURE_LEVELS.items()}
MIN_SDK, MAX_SDK = 21, 40   # plausible Android API numbers accepted in tables and on the CLI

TENSOR_TYPES = ("float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool", "complex64",
                "string", "float64", "uint16", "uint32", "uint64", "int4")
TYPE_ALIASES = {"quant8": ("uint8", "int8")}

KINDS = ("tflite-delegate", "all-ops", "openvino-query", "onnx-op-list")
FORMATS = ("tflite", "onnx", "openvino")

# check name -> {param: (python type(s), required)}; "reason" is required for every rule.
_I, _L, _S = int, list, str
CHECKS: dict[str, dict[str, tuple[Any, bool]]] = {
    "input_types": {"values": (_L, True), "index": (_I, False)},
    "output_types": {"values": (_L, True)},
    "max_rank": {"value": (_I, True), "which": (_S, False)},
    "rank_in": {"values": (_L, True), "index": (_I, False)},
    "const_input": {"index": (_I, True)},
    "has_input": {"index": (_I, True)},
    "num_inputs": {"values": (_L, True)},
    "max_inputs": {"value": (_I, True)},
    "max_runtime_inputs": {"value": (_I, True)},
    "option_in": {"option": (_S, True), "values": (_L, True)},
    "option_not_true": {"option": (_S, True)},
    "options_not_both": {"options": (_L, True)},
    "option_min": {"option": (_S, True), "value": ((int, float), True)},
    "dilation_is_one": {},
    "not_grouped": {},
    "not_hybrid": {},
    "per_tensor_filter": {},
    "quant_scale_product": {},
    "quant_pool_area": {"value": (_I, True)},
    "square_output": {},
    "no_zero_dims": {"index": (_I, False)},
    "not_scalar_output": {},
    "same_input_quant": {},
    "const_shape_rows": {"index": (_I, True), "values": (_L, True)},
}
_RULE_COMMON = {"check", "reason", "below", "from", "source"}
_TABLE_KEYS = {"name", "title", "kind", "format", "levels", "notes", "device"}
_DELEGATE_KEYS = {"min_level", "min_level_reason", "max_partitions", "int8_as_uint8_below", "accelerator_only_from",
                  "max_rank", "max_rank_reason", "runtime_types", "runtime_types_reason", "source",
                  "reject_custom", "reject_custom_reason"}
_OP_KEYS = {"min_level", "max_version", "max_version_with_accelerator", "nnapi", "fit",
            "accept_const_float16_input", "source", "rules"}
_TOP_KEYS = {"table", "sources", "delegate", "ops"}


@dataclass(frozen=True)
class Rule:
    check: str
    reason: str
    params: dict[str, Any] = field(default_factory=dict)
    below: int | None = None
    from_level: int | None = None

    def applies(self, level: int | None) -> bool:
        if level is None:  # tables without levels: the newest behaviour
            return self.below is None
        if self.below is not None and level >= self.below:
            return False
        if self.from_level is not None and level < self.from_level:
            return False
        return True


@dataclass(frozen=True)
class OpSupport:
    op: str
    source: str
    min_level: int | None = None
    max_version: int | None = None
    max_version_with_accelerator: int | None = None
    nnapi: str | None = None
    fit: str | None = None
    accept_const_float16_input: bool = False
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class DelegateRules:
    source: str = ""
    min_level: int | None = None
    min_level_reason: str = ""
    max_partitions: int = 0                 # 0 = no limit
    int8_as_uint8_below: int | None = None
    accelerator_only_from: int | None = None
    max_rank: int | None = None
    max_rank_reason: str = ""
    runtime_types: tuple[str, ...] = ()
    runtime_types_reason: str = ""
    reject_custom: bool = False
    reject_custom_reason: str = ""


@dataclass(frozen=True)
class SupportTable:
    name: str
    title: str
    kind: str
    format: str
    levels: str
    path: Path
    sources: dict[str, str]
    delegate: DelegateRules
    ops: dict[str, OpSupport]
    notes: tuple[str, ...] = ()
    device: str | None = None

    def op(self, name: str) -> OpSupport | None:
        return self.ops.get(name)

    def source_text(self, ref: str) -> str:
        """Expand ``"key rest"`` to ``"<sources[key]> rest"``."""
        key, _, rest = ref.partition(" ")
        key = key.rstrip(":,;")
        full = self.sources.get(key)
        return f"{full} {rest}".strip() if full else ref


def parse_level(value: Any, where: str = "level") -> int:
    """27..40 (Android API), "FL1".."FL8", or the delegate's numbers 1000006..1000008."""
    if isinstance(value, bool):
        raise SupportTableError(f"{where}: {value!r} is not an API level")
    if isinstance(value, int):
        if MIN_SDK <= value <= MAX_SDK or value in FEATURE_LEVELS.values():
            return value
    if isinstance(value, str):
        key = value.strip().upper().replace(" ", "")
        if key in LEVEL_NAMES:
            return LEVEL_NAMES[key]
        if key.isdigit():
            return parse_level(int(key), where)
    raise SupportTableError(
        f"{where}: {value!r} is not an API level; use an Android API number ({MIN_SDK}-{MAX_SDK}) "
        f"or an NNAPI feature level FL1..FL8")


def level_name(level: int | None) -> str:
    if level is None:
        return "-"
    for k, v in FEATURE_LEVELS.items():
        if v == level and k >= 6:
            return f"FL{k}"
    return f"API {level}"


def _suggest(word: str, options: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _known_builtins() -> set[str] | None:
    try:
        import tflite
    except ImportError:
        return None
    return {k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def _check_keys(data: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            raise SupportTableError(f"{where}: unknown key {key!r}{_suggest(key, allowed)}; "
                                    f"allowed: {', '.join(sorted(allowed))}")


def _types(values: Any, where: str) -> tuple[str, ...]:
    if not isinstance(values, list) or not values:
        raise SupportTableError(f"{where}: expected a non-empty list of tensor types")
    out: list[str] = []
    for v in values:
        if v in TYPE_ALIASES:
            out.extend(TYPE_ALIASES[v])
        elif v in TENSOR_TYPES:
            out.append(v)
        else:
            raise SupportTableError(f"{where}: unknown tensor type {v!r}{_suggest(v, [*TENSOR_TYPES, *TYPE_ALIASES])}")
    return tuple(dict.fromkeys(out))


def _check_source(ref: Any, sources: dict[str, str], where: str) -> str:
    if not isinstance(ref, str) or not ref.strip():
        raise SupportTableError(f"{where}: 'source' must say where the facts came from")
    key = ref.split(" ", 1)[0].rstrip(":,;")
    if key not in sources:
        raise SupportTableError(f"{where}: source {ref!r} does not start with a key of [sources]"
                                f"{_suggest(key, sources)}; known: {', '.join(sources)}")
    return ref


def _rule(raw: Any, where: str, sources: dict[str, str]) -> Rule:
    if not isinstance(raw, dict):
        raise SupportTableError(f"{where}: a rule must be a table like {{ check = ..., reason = ... }}")
    check = raw.get("check")
    if check not in CHECKS:
        raise SupportTableError(f"{where}: unknown check {check!r}{_suggest(check, CHECKS)}; "
                                f"known checks: {', '.join(sorted(CHECKS))}")
    spec = CHECKS[check]
    _check_keys(raw, _RULE_COMMON | set(spec), f"{where} ({check})")
    reason = raw.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise SupportTableError(f"{where} ({check}): every rule needs a human-readable 'reason'")
    params: dict[str, Any] = {}
    for name, (typ, required) in spec.items():
        if name not in raw:
            if required:
                raise SupportTableError(f"{where} ({check}): missing parameter {name!r}")
            continue
        value = raw[name]
        if isinstance(value, bool) or not isinstance(value, typ):
            raise SupportTableError(f"{where} ({check}): {name} = {value!r} has the wrong type")
        params[name] = value
    if check in ("input_types", "output_types"):
        params["values"] = _types(params["values"], f"{where} ({check})")
    if check == "max_rank" and params.get("which", "inputs") not in ("inputs", "outputs", "all"):
        raise SupportTableError(f"{where} (max_rank): which must be inputs, outputs or all")
    if "source" in raw:
        _check_source(raw["source"], sources, where)
    below = parse_level(raw["below"], f"{where}: below") if "below" in raw else None
    from_level = parse_level(raw["from"], f"{where}: from") if "from" in raw else None
    return Rule(check=check, reason=reason.strip(), params=params, below=below, from_level=from_level)


def _opt_int(data: dict[str, Any], key: str, where: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SupportTableError(f"{where}: {key} = {value!r} must be a non-negative integer")
    return value


def parse_table(data: dict[str, Any], path: Path) -> SupportTable:
    """Validate one parsed TOML table; ``path`` is used in messages."""
    where = str(path)
    _check_keys(data, _TOP_KEYS, where)
    meta = data.get("table")
    if not isinstance(meta, dict):
        raise SupportTableError(f"{where}: missing the [table] section (name, title, kind, format)")
    _check_keys(meta, _TABLE_KEYS, f"{where} [table]")
    name = meta.get("name")
    if name != path.stem:
        raise SupportTableError(f"{where} [table]: name {name!r} must equal the file name {path.stem!r}")
    kind, fmt, levels = meta.get("kind"), meta.get("format"), meta.get("levels", "none")
    if kind not in KINDS:
        raise SupportTableError(f"{where} [table]: kind {kind!r}{_suggest(kind, KINDS)} is not one of {', '.join(KINDS)}")
    if fmt not in FORMATS:
        raise SupportTableError(f"{where} [table]: format {fmt!r}{_suggest(fmt, FORMATS)} is not one of {', '.join(FORMATS)}")
    if levels not in ("nnapi", "none"):
        raise SupportTableError(f"{where} [table]: levels {levels!r} must be 'nnapi' or 'none'")
    sources = data.get("sources")
    if not isinstance(sources, dict) or not sources or not all(isinstance(v, str) and v for v in sources.values()):
        raise SupportTableError(f"{where}: [sources] must map short keys to where the facts came from")

    d = data.get("delegate", {})
    if not isinstance(d, dict):
        raise SupportTableError(f"{where}: [delegate] must be a table")
    _check_keys(d, _DELEGATE_KEYS, f"{where} [delegate]")
    dw = f"{where} [delegate]"
    delegate = DelegateRules(
        source=_check_source(d["source"], sources, dw) if "source" in d else "",
        min_level=parse_level(d["min_level"], f"{dw} min_level") if "min_level" in d else None,
        min_level_reason=str(d.get("min_level_reason", "")),
        max_partitions=_opt_int(d, "max_partitions", dw) or 0,
        int8_as_uint8_below=parse_level(d["int8_as_uint8_below"], f"{dw} int8_as_uint8_below")
        if "int8_as_uint8_below" in d else None,
        accelerator_only_from=parse_level(d["accelerator_only_from"], f"{dw} accelerator_only_from")
        if "accelerator_only_from" in d else None,
        max_rank=_opt_int(d, "max_rank", dw), max_rank_reason=str(d.get("max_rank_reason", "")),
        runtime_types=_types(d["runtime_types"], f"{dw} runtime_types") if "runtime_types" in d else (),
        runtime_types_reason=str(d.get("runtime_types_reason", "")),
        reject_custom=bool(d.get("reject_custom", False)), reject_custom_reason=str(d.get("reject_custom_reason", "")),
    )

    ops_raw = data.get("ops", {})
    if not isinstance(ops_raw, dict):
        raise SupportTableError(f"{where}: [ops.NAME] entries must be tables")
    if kind in ("tflite-delegate", "onnx-op-list") and not ops_raw:
        raise SupportTableError(f"{where}: a {kind} table needs [ops.NAME] entries")
    if kind == "onnx-op-list" and fmt != "onnx":
        raise SupportTableError(f"{where} [table]: an onnx-op-list table has format 'onnx'")
    builtins = _known_builtins() if fmt == "tflite" else None
    ops: dict[str, OpSupport] = {}
    for op_name, entry in ops_raw.items():
        ow = f"{where} [ops.{op_name}]"
        if builtins is not None and op_name not in builtins:
            raise SupportTableError(f"{ow}: {op_name!r} is not a TFLite builtin op{_suggest(op_name, builtins)}")
        if not isinstance(entry, dict):
            raise SupportTableError(f"{ow}: must be a table")
        _check_keys(entry, _OP_KEYS, ow)
        if "source" not in entry:
            raise SupportTableError(f"{ow}: every op entry needs a 'source' (where the facts came from)")
        rules_raw = entry.get("rules", [])
        if not isinstance(rules_raw, list):
            raise SupportTableError(f"{ow}: rules must be a list of {{ check = ..., reason = ... }}")
        ops[op_name] = OpSupport(
            op=op_name, source=_check_source(entry["source"], sources, ow),
            min_level=parse_level(entry["min_level"], f"{ow} min_level") if "min_level" in entry else None,
            max_version=_opt_int(entry, "max_version", ow),
            max_version_with_accelerator=_opt_int(entry, "max_version_with_accelerator", ow),
            nnapi=entry.get("nnapi"), fit=entry.get("fit"),
            accept_const_float16_input=bool(entry.get("accept_const_float16_input", False)),
            rules=tuple(_rule(r, f"{ow} rule {i + 1}", sources) for i, r in enumerate(rules_raw)),
        )
    notes = meta.get("notes", [])
    if not isinstance(notes, list):
        raise SupportTableError(f"{where} [table]: notes must be a list of strings")
    return SupportTable(name=name, title=str(meta.get("title", name)), kind=kind, format=fmt, levels=levels,
                        path=path, sources=dict(sources), delegate=delegate, ops=ops,
                        notes=tuple(str(n) for n in notes), device=meta.get("device"))


def load_table_file(path: Path) -> SupportTable:
    path = Path(path)
    return parse_table(read_toml(path, "support table", SupportTableError, "fix the table file"), path)


def builtin_tables_dir() -> Path:
    return Path(str(resources.files("edge_isp.profiles"))) / "ops"


def _table_dirs(profiles_dir: Path | None) -> list[Path]:
    dirs: list[Path] = []
    if profiles_dir is not None:
        profiles_dir = Path(profiles_dir)
        if not profiles_dir.is_dir():
            raise InputError(f"--profiles {profiles_dir} is not a folder; point it at a folder holding ops/*.toml")
        dirs += [profiles_dir / "ops", profiles_dir]
    dirs.append(builtin_tables_dir())
    return dirs


def list_tables(profiles_dir: Path | None = None) -> list[str]:
    names: set[str] = set()
    for d in _table_dirs(profiles_dir):
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.toml"))
    return sorted(names)


def table_path(name: str, profiles_dir: Path | None = None) -> Path:
    for d in _table_dirs(profiles_dir):
        candidate = d / f"{name}.toml"
        if candidate.is_file():
            return candidate
    known = list_tables(profiles_dir)
    raise UnknownNameError(f"unknown op-support table {name!r}{_suggest(name, known)}; known tables: {', '.join(known)}")


_CACHE: dict[tuple[Path, float], SupportTable] = {}


def load_table(name: str, profiles_dir: Path | None = None) -> SupportTable:
    """The table ``name``: from ``profiles_dir`` when it has one, else the built-in one."""
    path = table_path(name, profiles_dir)
    key = (path.resolve(), path.stat().st_mtime)
    if key not in _CACHE:
        _CACHE[key] = load_table_file(path)
    return _CACHE[key]


def validate_all(profiles_dir: Path | None = None) -> list[SupportTable]:
    """Load every table (built-in and in ``profiles_dir``); raises on the first bad one."""
    return [load_table(n, profiles_dir) for n in list_tables(profiles_dir)]
