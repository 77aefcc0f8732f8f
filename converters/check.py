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

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_isp.converters.support import (
    FEATURE_LEVELS,
    OpSupport,
    Rule,
    SupportTable,
    SupportTableError,
    level_name,
    load_table,
    parse_level,
)
from edge_isp.converters.tflite_reader import OperatorInfo, TensorInfo, TfliteModel, read_tflite
from edge_isp.errors import CheckFailedError, InputError

VERDICTS = ("full", "partial", "none")
REQUIRE_LEVELS = ("full", "partial", "any")


class DelegationError(CheckFailedError):
    """The model is not delegated as much as the user required (--require / --require-full-delegation)."""


def require_delegation(report: "CheckReport", require: str = "full") -> None:
    """Raise ``DelegationError`` unless ``report`` meets ``require`` (full | partial | any)."""
    if require not in REQUIRE_LEVELS:
        raise InputError(f"--require {require!r} must be one of {', '.join(REQUIRE_LEVELS)}")
    ok = (require == "any" or report.verdict == "full"
          or (require == "partial" and report.verdict == "partial"))
    if not ok:
        groups = report.rejected_groups() or report.rejected_groups(include_limited=True)
        why = "; ".join(f"{g['op']} x{g['count']}: {g['reason']}" for g in groups[:3])
        raise DelegationError(
            f"{report.target} is {report.verdict}ly delegated ({report.ops_on_cpu}/{report.ops_total} ops on the CPU, "
            f"{report.delegated_partitions} delegated partition(s)), {require} delegation required: {why}. "
            "Run 'edge-isp check' for the full list and the fit options")
_QUANT8 = ("int8", "uint8")
_FORMAT_SUFFIX = {".tflite": "tflite", ".xml": "openvino", ".onnx": "onnx"}


# ----------------------------------------------------------------------------- report

@dataclass
class OpResult:
    index: int
    op: str
    version: int
    delegated: bool
    reason: str | None = None
    fit: str | None = None
    partition: int | None = None
    inputs: list[str] = field(default_factory=list)     # "shape dtype" of each input
    output: str = ""                                     # name of the first output tensor
    note: str | None = None
    limited: bool = False       # supported, but left on the CPU by the partition limit
    # Vendor-compiler reports: what the static table says of the same op (None: not compared).
    table_delegated: bool | None = None
    table_reason: str | None = None

    @property
    def disagrees(self) -> bool:
        return self.table_delegated is not None and self.table_delegated != self.delegated

    @property
    def location(self) -> str:
        return f"#{self.index} {self.op} -> {self.output}" if self.output else f"#{self.index} {self.op}"

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "op": self.op, "version": self.version, "delegated": self.delegated,
                "reason": self.reason, "fit": self.fit, "partition": self.partition, "inputs": self.inputs,
                "output": self.output, "note": self.note, "by_partition_limit": self.limited,
                **({"table_delegated": self.table_delegated, "table_reason": self.table_reason}
                   if self.table_delegated is not None else {})}


@dataclass
class Partition:
    index: int
    delegated: bool
    ops: list[int]
    dropped: bool = False   # a supported partition left on the CPU by the partition limit

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "delegated": self.delegated, "size": len(self.ops),
                "first_op": self.ops[0] if self.ops else None, "last_op": self.ops[-1] if self.ops else None,
                "dropped_by_limit": self.dropped}


@dataclass
class CheckReport:
    model_file: str
    model_format: str
    target: str
    table: str
    table_title: str
    level: int | None                   # the level the table's rules were compared against
    level_label: str
    accelerator: str | None
    max_partitions: int
    ops: list[OpResult]
    partitions: list[Partition]
    notes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    device: str | None = None
    # Vendor-compiler reports compared with a static table (compare_with_table): its title.
    compared_table: str | None = None

    # -- counts
    @property
    def ops_total(self) -> int:
        return len(self.ops)

    @property
    def ops_delegated(self) -> int:
        return sum(1 for o in self.ops if o.delegated)

    @property
    def ops_on_cpu(self) -> int:
        return self.ops_total - self.ops_delegated

    @property
    def delegated_partitions(self) -> int:
        return sum(1 for p in self.partitions if p.delegated)

    @property
    def rejected(self) -> list[OpResult]:
        return [o for o in self.ops if not o.delegated]

    @property
    def verdict(self) -> str:
        if self.ops_total == 0 or self.ops_on_cpu == 0:
            return "full"
        return "partial" if self.ops_delegated else "none"

    @property
    def fully_delegated(self) -> bool:
        return self.verdict == "full"

    @property
    def limited(self) -> list[OpResult]:
        """Supported ops left on the CPU because their partition is beyond the limit."""
        return [o for o in self.ops if o.limited]

    def rejected_groups(self, include_limited: bool = False) -> list[dict[str, Any]]:
        """Ops refused by the table's rules, grouped by (op, reason), in graph order.

        With ``include_limited`` the ops left on the CPU by the partition limit are added.
        """
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        for o in self.rejected:
            if o.limited and not include_limited:
                continue
            key = (o.op, o.reason or "")
            g = groups.setdefault(key, {"op": o.op, "reason": o.reason, "fit": o.fit, "count": 0, "ops": [],
                                        "first": o.location})
            g["count"] += 1
            g["ops"].append(o.index)
        return list(groups.values())

    def disagreements(self) -> list[dict[str, Any]]:
        """Ops where the vendor compiler and the static table disagree, grouped by op and verdicts."""
        groups: dict[tuple[str, bool, str], dict[str, Any]] = {}
        for o in self.ops:
            if not o.disagrees:
                continue
            key = (o.op, o.delegated, o.table_reason or "")
            g = groups.setdefault(key, {
                "op": o.op, "count": 0, "ops": [], "compiler": "accelerator" if o.delegated else "CPU",
                "table": "accelerator" if o.table_delegated else "CPU", "compiler_reason": o.reason,
                "table_reason": o.table_reason})
            g["count"] += 1
            g["ops"].append(o.index)
        return list(groups.values())

    def summary_line(self) -> str:
        where = f"{self.table_title}"
        if self.level is not None:
            where += f" at {self.level_label}"
        if self.accelerator:
            where += f" (accelerator {self.accelerator})"
        text = (f"{self.target}: {self.verdict} delegation on {where}: {self.ops_delegated}/{self.ops_total} ops "
                f"delegated, {self.ops_on_cpu} on CPU, {self.delegated_partitions} delegated partition(s)")
        groups = self.rejected_groups()
        if groups:
            tops = ", ".join(f"{g['op']} x{g['count']}" for g in groups[:5])
            text += f"; refused: {tops}" + (" ..." if len(groups) > 5 else "")
        if self.limited:
            text += f"; {len(self.limited)} supported ops over the partition limit"
        if self.compared_table:
            n = sum(1 for o in self.ops if o.disagrees)
            text += (f"; the static table ({self.compared_table}) disagrees on {n} op(s)" if n
                     else f"; the static table ({self.compared_table}) agrees")
        return text

    def to_dict(self, include_ops: bool = True) -> dict[str, Any]:
        """JSON-safe report; ``include_ops=False`` leaves out the per-op list (for manifests)."""
        return {
            "model_file": self.model_file, "model_format": self.model_format, "target": self.target,
            "table": self.table, "table_title": self.table_title, "device": self.device,
            "level": self.level, "level_label": self.level_label, "accelerator": self.accelerator,
            "max_partitions": self.max_partitions, "verdict": self.verdict,
            "counts": {"ops_total": self.ops_total, "ops_delegated": self.ops_delegated,
                       "ops_on_cpu": self.ops_on_cpu, "partitions": len(self.partitions),
                       "delegated_partitions": self.delegated_partitions},
            "partitions": [p.to_dict() for p in self.partitions],
            "rejected": self.rejected_groups(),
            "over_partition_limit": {"ops": len(self.limited),
                                     "partitions": sum(1 for p in self.partitions if p.dropped)},
            **({"ops": [o.to_dict() for o in self.ops]} if include_ops else {}),
            **({"compared_table": self.compared_table, "disagreements": self.disagreements()}
               if self.compared_table else {}),
            "notes": list(self.notes), "sources": list(self.sources),
            "summary": self.summary_line(),
        }

    def to_text(self, max_groups: int = 20) -> str:
        """Plain-text report (the CLI renders the same content as rich tables)."""
        lines = [self.summary_line(), f"  model: {self.model_file} ({self.model_format})",
                 f"  verdict: {self.verdict}; ops {self.ops_total} total / {self.ops_delegated} delegated / "
                 f"{self.ops_on_cpu} on CPU; partitions {len(self.partitions)} "
                 f"({self.delegated_partitions} delegated, limit {self.max_partitions or 'none'})"]
        shown = [p for p in self.partitions if p.delegated] if len(self.partitions) > 12 else self.partitions
        for p in shown:
            kind = "delegated" if p.delegated else ("CPU (partition limit)" if p.dropped else "CPU")
            lines.append(f"    partition {p.index}: {kind:22s} {len(p.ops):4d} ops  #{p.ops[0]}..#{p.ops[-1]}")
        if len(shown) < len(self.partitions):
            dropped = sum(1 for p in self.partitions if p.dropped)
            lines.append(f"    ... and {len(self.partitions) - len(shown)} CPU partitions "
                         f"({dropped} of them supported but beyond the partition limit)")
        for g in self.rejected_groups()[:max_groups]:
            idx = ", ".join(f"#{i}" for i in g["ops"][:6]) + (" ..." if len(g["ops"]) > 6 else "")
            lines.append(f"  x {g['op']} x{g['count']} ({idx}): {g['reason']}")
            if g["fit"]:
                lines.append(f"      fit: {g['fit']}")
        if self.limited:
            lines.append(f"  x {len(self.limited)} supported ops in {sum(1 for p in self.partitions if p.dropped)} "
                         f"partitions beyond the delegate's limit of {self.max_partitions} run on the CPU")
        if self.compared_table:
            lines.append(f"  compared with the static table {self.compared_table}:")
            for g in self.disagreements()[:max_groups]:
                idx = ", ".join(f"#{i}" for i in g["ops"][:6]) + (" ..." if len(g["ops"]) > 6 else "")
                why = g["table_reason"] if g["table"] == "CPU" else g["compiler_reason"]
                lines.append(f"  ! {g['op']} x{g['count']} ({idx}): compiler -> {g['compiler']}, "
                             f"table -> {g['table']}" + (f" ({why})" if why else ""))
            if not self.disagreements():
                lines.append("    no disagreement: every op has the same placement in both")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- partitioning

def partition_graph(nodes: Sequence[tuple[Sequence[Hashable], Sequence[Hashable]]],
                    supported: Sequence[bool]) -> list[tuple[bool, list[int]]]:
    """Split a graph into independent subsets of one kind, as TFLite does for delegates.

    ``nodes[i] = (input tensor ids, output tensor ids)`` in execution order. Tensors no node
    produces (graph inputs, constants) are always ready. Each epoch starts with the first
    ready node (in execution order), takes its kind, then keeps adding every ready node of
    that kind until none is left; the next epoch starts with the other kind. This is the
    algorithm of TFLite's ``PartitionGraphIntoIndependentNodeSubsets`` (graph_info.cc).
    """
    produced = {t for _, outs in nodes for t in outs}
    ready_tensors: set[Hashable] = set()
    done = [False] * len(nodes)
    subsets: list[tuple[bool, list[int]]] = []
    remaining = len(nodes)

    def is_ready(i: int) -> bool:
        return all(t not in produced or t in ready_tensors for t in nodes[i][0])

    while remaining:
        kind: bool | None = None
        members: list[int] = []
        progress = True
        while progress:
            progress = False
            for i in range(len(nodes)):
                if done[i] or not is_ready(i):
                    continue
                if kind is None:
                    kind = supported[i]
                if supported[i] != kind:
                    continue
                done[i] = True
                remaining -= 1
                members.append(i)
                ready_tensors.update(nodes[i][1])
                progress = True
        if not members:  # a cycle or a dangling input: put the rest in one CPU subset
            rest = [i for i in range(len(nodes)) if not done[i]]
            subsets.append((False, rest))
            break
        subsets.append((bool(kind), members))
    return subsets


def _apply_partitions(results: list[OpResult], nodes: Sequence[tuple[Sequence[Hashable], Sequence[Hashable]]],
                      max_partitions: int, limit_reason: str) -> list[Partition]:
    subsets = partition_graph(nodes, [r.delegated for r in results])
    delegated = [i for i, (kind, _) in enumerate(subsets) if kind]
    keep = set(delegated)
    if max_partitions > 0 and len(delegated) > max_partitions:
        # GetFirstNLargestPartitions: the N partitions with the most nodes stay delegated.
        ranked = sorted(delegated, key=lambda i: (-len(subsets[i][1]), i))
        keep = set(ranked[:max_partitions])
    partitions = []
    for i, (kind, members) in enumerate(subsets):
        dropped = kind and i not in keep
        partitions.append(Partition(i, kind and not dropped, sorted(members), dropped=dropped))
        for m in members:
            results[m].partition = i
            if dropped:
                results[m].delegated = False
                results[m].limited = True
                results[m].reason = limit_reason
                results[m].note = f"partition {i} ({len(members)} ops) left on the CPU by the partition limit"
    return partitions


# ----------------------------------------------------------------------------- rule checks

@dataclass
class _OpContext:
    op: OperatorInfo
    inputs: list[TensorInfo | None]
    outputs: list[TensorInfo | None]
    level: int | None
    accelerator: bool

    def inp(self, index: int) -> TensorInfo | None:
        return self.inputs[index] if 0 <= index < len(self.inputs) else None

    def present_inputs(self) -> list[TensorInfo]:
        return [t for t in self.inputs if t is not None]

    def runtime_inputs(self) -> list[TensorInfo]:
        return [t for t in self.inputs if t is not None and not t.constant]

    def opt(self, name: str, default: Any = None) -> Any:
        return self.op.options.get(name, default)


def _scale(t: TensorInfo | None) -> float | None:
    return max(t.quantization.scale) if t is not None and t.quantization and t.quantization.scale else None


def _c_input_types(c: _OpContext, values: Sequence[str], index: int = 0) -> bool:
    t = c.inp(index)
    return t is None or t.dtype in values


def _c_output_types(c: _OpContext, values: Sequence[str]) -> bool:
    t = c.outputs[0] if c.outputs else None
    return t is None or t.dtype in values


def _c_max_rank(c: _OpContext, value: int, which: str = "inputs") -> bool:
    tensors: list[TensorInfo | None] = []
    if which in ("inputs", "all"):
        tensors += c.present_inputs()
    if which in ("outputs", "all"):
        tensors += c.outputs
    return all(t is None or t.rank <= value for t in tensors)


def _c_rank_in(c: _OpContext, values: Sequence[int], index: int = 0) -> bool:
    t = c.inp(index)
    return t is None or t.rank in values


def _c_const_input(c: _OpContext, index: int) -> bool:
    t = c.inp(index)
    return t is None or t.constant


def _c_has_input(c: _OpContext, index: int) -> bool:
    return c.inp(index) is not None


def _c_num_inputs(c: _OpContext, values: Sequence[int]) -> bool:
    return len(c.present_inputs()) in values


def _c_max_inputs(c: _OpContext, value: int) -> bool:
    return len(c.present_inputs()) <= value


def _c_max_runtime_inputs(c: _OpContext, value: int) -> bool:
    return len(c.runtime_inputs()) <= value


def _c_option_in(c: _OpContext, option: str, values: Sequence[Any]) -> bool:
    return option not in c.op.options or c.opt(option) in values


def _c_option_not_true(c: _OpContext, option: str) -> bool:
    return c.opt(option) is not True


def _c_options_not_both(c: _OpContext, options: Sequence[str]) -> bool:
    return not all(c.opt(o) is True for o in options)


def _c_option_min(c: _OpContext, option: str, value: float) -> bool:
    v = c.opt(option)
    return v is None or v >= value


def _c_dilation_is_one(c: _OpContext) -> bool:
    return all(c.opt(k, 1) in (0, 1) for k in ("dilation_w_factor", "dilation_h_factor"))


def _c_not_grouped(c: _OpContext) -> bool:
    x, w = c.inp(0), c.inp(1)
    return x is None or w is None or x.rank != 4 or w.rank != 4 or x.shape[3] == w.shape[3]


def _c_not_hybrid(c: _OpContext) -> bool:
    x, w = c.inp(0), c.inp(1)
    return not (x is not None and w is not None and x.dtype == "float32" and w.dtype in _QUANT8)


def _c_per_tensor_filter(c: _OpContext) -> bool:
    w = c.inp(1)
    return w is None or w.quantization is None or len(w.quantization.scale) <= 1


def _c_quant_scale_product(c: _OpContext) -> bool:
    x, w, y = c.inp(0), c.inp(1), c.outputs[0] if c.outputs else None
    sx, sw, sy = _scale(x), _scale(w), _scale(y)
    if x is None or x.dtype not in _QUANT8 or None in (sx, sw, sy):
        return True
    return sx * sw < sy  # type: ignore[operator]


def _c_quant_pool_area(c: _OpContext, value: int) -> bool:
    x = c.inp(0)
    if c.accelerator or x is None or x.dtype not in _QUANT8:
        return True
    return c.opt("filter_width", 1) * c.opt("filter_height", 1) <= value


def _c_square_output(c: _OpContext) -> bool:
    y = c.outputs[0] if c.outputs else None
    return y is None or y.rank != 4 or y.shape[1] == y.shape[2]


def _c_no_zero_dims(c: _OpContext, index: int = 0) -> bool:
    t = c.inp(index)
    return t is None or 0 not in t.shape


def _c_not_scalar_output(c: _OpContext) -> bool:
    y = c.outputs[0] if c.outputs else None
    return y is None or y.rank > 0


def _c_same_input_quant(c: _OpContext) -> bool:
    qs = {(t.quantization.scale, t.quantization.zero_point) for t in c.present_inputs()
          if t.dtype in _QUANT8 and t.quantization}
    return len(qs) <= 1


def _c_const_shape_rows(c: _OpContext, index: int, values: Sequence[int]) -> bool:
    t = c.inp(index)
    return t is None or (t.constant and t.rank == 2 and t.shape[0] in values)


CHECK_FUNCTIONS: dict[str, Callable[..., bool]] = {
    "input_types": _c_input_types, "output_types": _c_output_types, "max_rank": _c_max_rank,
    "rank_in": _c_rank_in, "const_input": _c_const_input, "has_input": _c_has_input,
    "num_inputs": _c_num_inputs, "max_inputs": _c_max_inputs, "max_runtime_inputs": _c_max_runtime_inputs,
    "option_in": _c_option_in, "option_not_true": _c_option_not_true, "options_not_both": _c_options_not_both,
    "option_min": _c_option_min, "dilation_is_one": _c_dilation_is_one, "not_grouped": _c_not_grouped,
    "not_hybrid": _c_not_hybrid, "per_tensor_filter": _c_per_tensor_filter,
    "quant_scale_product": _c_quant_scale_product, "quant_pool_area": _c_quant_pool_area,
    "square_output": _c_square_output, "no_zero_dims": _c_no_zero_dims, "not_scalar_output": _c_not_scalar_output,
    "same_input_quant": _c_same_input_quant, "const_shape_rows": _c_const_shape_rows,
}


def _rule_detail(rule: Rule, c: _OpContext) -> str:
    """What the model has, to put beside the table's reason."""
    p = rule.params
    if rule.check in ("input_types",):
        t = c.inp(p.get("index", 0))
        return f"input is {t.dtype}" if t else ""
    if rule.check == "output_types":
        return f"output is {c.outputs[0].dtype}" if c.outputs and c.outputs[0] else ""
    if rule.check in ("max_rank", "rank_in"):
        ranks = sorted({t.rank for t in [*c.present_inputs(), *[o for o in c.outputs if o]]})
        return "ranks " + "/".join(str(r) for r in ranks)
    if rule.check.startswith("option"):
        name = p.get("option") or ",".join(p.get("options", []))
        return f"{name}={c.opt(name)!r}" if "option" in p else ""
    return ""


# ----------------------------------------------------------------------------- levels

@dataclass(frozen=True)
class LevelContext:
    level: int | None          # what the table's thresholds are compared against
    label: str
    accelerator: str | None
    notes: tuple[str, ...] = ()


def _sdk_to_runtime_level(sdk: int) -> int:
    """The NNAPI runtime feature level an Android release ships (FL5 on 12/12L, FL8 from 13)."""
    if sdk <= 31:
        return sdk
    return FEATURE_LEVELS[5] if sdk == 32 else FEATURE_LEVELS[8]


def resolve_level(table: SupportTable, api_level: int | str | None, accelerator: str | None,
                  default_api_level: int | None, device: dict[str, Any] | None = None) -> LevelContext:
    """The level the delegate compares op thresholds against, as ``nnapi_delegate.cc`` does."""
    notes: list[str] = []
    if device:
        accelerator = accelerator or device.get("accelerator")
        if api_level is None:
            api_level = device.get("feature_level_code") or device.get("api_level")
    if table.levels == "none":
        if api_level is not None and not device:
            notes.append(f"--api-level does not apply to the {table.title}; ignored")
        return LevelContext(None, "-", accelerator, tuple(notes))
    raw = api_level if api_level is not None else default_api_level
    if raw is None:
        raise InputError(f"the {table.title} check needs an API level: pass --api-level (e.g. 30) or --device")
    try:
        value = parse_level(raw, "--api-level")
    except SupportTableError as exc:
        raise InputError(str(exc)) from None
    high = table.delegate.accelerator_only_from
    if value in FEATURE_LEVELS.values() and high is not None and value >= high:
        # A feature level only exists on the target-device path.
        if not accelerator:
            accelerator = "(any named accelerator)"
            notes.append(f"{level_name(value)} is the runtime feature level the delegate compares against only when "
                         "an accelerator is named (nnapi_accelerator_name); assumed named")
        return LevelContext(value, level_name(value), accelerator, tuple(notes))
    if accelerator:
        runtime = _sdk_to_runtime_level(value)
        if device and device.get("feature_level_code"):
            runtime = min(runtime, int(device["feature_level_code"]))
        label = f"API {value}" + (f" (target-device path: {level_name(runtime)})" if runtime != value else "")
        if runtime != value:
            notes.append(f"with accelerator {accelerator} the delegate compares against the runtime feature level "
                         f"{level_name(runtime)}, assumed to be the one Android API {value} ships; a driver may "
                         "report less")
        return LevelContext(runtime, label, accelerator, tuple(notes))
    if high is not None and value < high:
        notes.append("no accelerator named: feature-level-6/7 ops (MIRROR_PAD, BATCH_MATMUL, ...) are compared "
                     f"against the SDK level {value} and refused; name one with --accelerator")
    if value >= 29:
        notes.append("with no accelerator named and only the nnapi-reference CPU device on the phone, the delegate "
                     "delegates nothing (disallow_nnapi_cpu=true)")
    return LevelContext(value, f"API {value}", None, tuple(notes))


# ----------------------------------------------------------------------------- TFLite check

def _describe(t: TensorInfo | None) -> str:
    if t is None:
        return "-"
    shape = "x".join(str(d) for d in t.shape) or "scalar"
    return f"{shape} {t.dtype}{' const' if t.constant else ''}"


def _decide(table: SupportTable, c: _OpContext) -> tuple[bool, str | None, str | None, str | None]:
    """(delegated, reason, fit, note) for one op."""
    op, d = c.op, table.delegate
    level = c.level
    if op.op.startswith("CUSTOM:"):
        if table.kind == "all-ops" and not d.reject_custom:
            return True, None, None, None
        return False, (d.reject_custom_reason or f"custom op {op.op[7:]!r} has no {table.title} implementation"), None, None
    if table.kind == "all-ops":
        return True, None, None, None
    if d.min_level is not None and level is not None and level < d.min_level:
        return False, d.min_level_reason or f"{table.title} needs {level_name(d.min_level)}", None, None
    entry: OpSupport | None = table.op(op.op)
    if entry is None:
        return False, f"{op.op} is not supported by the {table.title} (not in its op table)", None, None
    if entry.accept_const_float16_input:
        x = c.inp(0)
        if x is not None and x.constant and x.dtype == "float16":
            return True, None, None, "constant fp16 weights: pruned / folded by the delegate"
    if entry.min_level is not None and level is not None and level < entry.min_level:
        reason = f"{op.op} needs {level_name(entry.min_level)} ({entry.nnapi or op.op}); target is {level_name(level)}"
        high = d.accelerator_only_from
        if high is not None and entry.min_level >= high and not c.accelerator:
            reason += ("; feature-level-6+ ops are only reachable with a named accelerator (the delegate otherwise "
                       "compares against the SDK level)")
        return False, reason, entry.fit, None
    max_version = entry.max_version
    if c.accelerator and entry.max_version_with_accelerator is not None:
        max_version = entry.max_version_with_accelerator
    if max_version is not None and op.version > max_version:
        return False, (f"{op.op} op version {op.version} > {max_version}, the highest the {table.title} accepts "
                       "(the model's opcode carries the version its most demanding instance needs)"), entry.fit, None
    tensors = [*c.present_inputs(), *[o for o in c.outputs if o]]
    if d.max_rank is not None:
        worst = max((t.rank for t in tensors if not t.constant), default=0)
        if worst > d.max_rank:
            return False, f"{d.max_rank_reason or 'tensor rank too high'} (rank {worst})", entry.fit, None
    if d.runtime_types:
        bad = sorted({t.dtype for t in tensors if not t.constant and t.dtype not in d.runtime_types})
        if bad:
            return False, f"{d.runtime_types_reason or 'unsupported tensor type'} ({', '.join(bad)})", entry.fit, None
    for rule in entry.rules:
        if not rule.applies(level):
            continue
        if not CHECK_FUNCTIONS[rule.check](c, **rule.params):
            detail = _rule_detail(rule, c)
            when = f", rule below {level_name(rule.below)}" if rule.below is not None else ""
            extra = ", ".join(x for x in (detail, when.lstrip(", ")) if x)
            return False, rule.reason + (f" ({extra})" if extra else ""), entry.fit, None
    note = None
    if (d.int8_as_uint8_below is not None and level is not None and level < d.int8_as_uint8_below
            and any(t.dtype == "int8" and not t.constant for t in tensors)):
        note = "int8 tensors passed to NNAPI as uint8 (zero point + 128)"
    return True, None, None, note


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
        c = _OpContext(op, ins, model.op_outputs(op), levels.level, bool(levels.accelerator))
        delegated, reason, fit, note = _decide(table, c)
        out = c.outputs[0].name if c.outputs and c.outputs[0] else ""
        results.append(OpResult(op.index, op.op, op.version, delegated, reason, fit, None,
                                [_describe(t) for t in c.inputs], out, note))
        nodes.append(([i for i in op.inputs if i >= 0], list(op.outputs)))
    limit = table.delegate.max_partitions if max_partitions is None else max_partitions
    partitions = _apply_partitions(
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


def _check_onnx(path: Path, table: SupportTable, target: str) -> CheckReport:
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
    partitions = _apply_partitions(results, nodes, table.delegate.max_partitions, "")
    return CheckReport(str(path), "onnx", target, table.name, table.title, None, "-", None, 0, results, partitions,
                       notes=list(table.notes), sources=[table.source_text(table.delegate.source)])


def _check_openvino(path: Path, table: SupportTable, target: str) -> CheckReport:
    from edge_isp.converters.openvino_query import query_model

    device = table.device or "CPU"
    q = query_model(path, device)
    results = []
    for i, node in enumerate(q.ops):
        reason = None if node.supported else f"{node.type_name} is not supported by the OpenVINO {device} plugin (query_model)"
        results.append(OpResult(i, node.type_name, 1, node.supported, reason, output=node.name))
    partitions = _apply_partitions(results, [(n.inputs, n.outputs) for n in q.ops], table.delegate.max_partitions, "")
    return CheckReport(str(path), "openvino", target, table.name, table.title, None, "-", device, 0, results, partitions,
                       notes=list(table.notes) + [f"asked OpenVINO {q.version} {device} plugin with Core.query_model"],
                       sources=[table.source_text(table.delegate.source)])


# ----------------------------------------------------------------------------- devices

def find_device(name: str, target: str, profiles_dir: Path | None = None) -> dict[str, Any]:
    """What the checker needs from a device profile (``profiles/devices/*.toml``).

    Profiles are loaded by ``edge_isp.devices.profiles`` (built-in, the user's config
    folder, and ``profiles_dir/devices`` when given). The API level is the profile's launch
    API (the lowest it runs), the feature level its ``nnapi_feature_level``, the accelerator
    the ``nnapi_name`` of the accelerator that runs ``target``.
    """
    from edge_isp.devices.profiles import get_profile, list_profiles

    extra = [Path(profiles_dir) / "devices"] if profiles_dir is not None else []
    prof = get_profile(name, list_profiles(extra))
    android = prof.android or {}
    levels = android.get("api_levels") or []
    api = android.get("launch_api", min(levels) if levels else None)
    acc = prof.accelerator_for(target)
    accelerator = acc.nnapi_name if acc is not None and acc.nnapi_name else None
    fl = android.get("nnapi_feature_level")
    fl_code = FEATURE_LEVELS.get(int(fl)) if fl is not None else None
    if fl_code is not None and fl_code >= FEATURE_LEVELS[6] and not accelerator:
        fl_code = None  # feature levels 6+ are unreachable without a named accelerator
    return {"name": prof.name, "path": prof.source, "api_level": int(api) if api is not None else None,
            "accelerator": accelerator, "feature_level_code": fl_code}


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
    fmt = _FORMAT_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        head = path.read_bytes()[:8]
        fmt = "tflite" if head[4:8] == b"TFL3" else None
    if fmt is None:
        raise InputError(f"{path} is not a model edge-isp can check: pass a .tflite, OpenVINO .xml or .onnx file "
                         "or a bundle folder")
    return path, fmt, target, None


# Targets whose vendor compiler decides the placement, not a static table: format ->
# (module in edge_isp.converters with a ``vendor_check``, model formats it reads, the key of
# the manifest's "npu" section naming the SoC it compiled for; None: one per target).
VENDOR_CHECKS: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    "vela": ("vela", ("vela", "tflite"), None),
    "litert-aot": ("litert_aot", ("litert-aot", "tflite"), "soc"),
    "rknn": ("rknn", ("rknn", "onnx"), "platform"),
}


def _vendor_check(tgt: Any, model_file: Path, fmt: str, manifest: dict[str, Any] | None,
                  platform: str | None) -> CheckReport:
    """The vendor compiler's report (a bundle's own when it is for this target and SoC, else
    the compiler run again), next to the static table's verdict for the same ops."""
    import importlib

    module, _, soc_key = VENDOR_CHECKS[tgt.format]
    npu = (manifest or {}).get("npu")
    reuse = bool(npu) and manifest["target"].get("name") == tgt.name and (
        platform is None or soc_key is None or platform.lower() == str(npu.get(soc_key, "")).lower())
    vendor = importlib.import_module(f"edge_isp.converters.{module}")
    report, static_file = vendor.vendor_check(Path(model_file), fmt, tgt.name, npu if reuse else None, platform)
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
    if tgt.format in VENDOR_CHECKS and fmt in VENDOR_CHECKS[tgt.format][1]:
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
        return _check_openvino(model_file, table, tgt.name)
    if fmt == "onnx":
        return _check_onnx(model_file, table, tgt.name)
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
        return _check_onnx(path, table, tgt.name)
    levels = resolve_level(table, None, None, tgt.default_api_level, None)
    return check_tflite(read_tflite(path), table, tgt.name, levels, None)


def check_artifact(model_file: Path, target_name: str, **kwargs: Any) -> CheckReport:
    """Check a freshly built artifact for its target at the target's default level (for ``convert``)."""
    return check_bundle(Path(model_file), target=target_name, **kwargs)
