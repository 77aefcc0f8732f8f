"""The table's rule checks for one TFLite op (types, ranks, options, quantisation), and the
decision for an op: delegated or CPU, with the reason and the fit that would help."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edge_isp.converters.support import OpSupport, Rule, SupportTable, level_name
from edge_isp.converters.tflite_reader import OperatorInfo, TensorInfo

_QUANT8 = ("int8", "uint8")


# ----------------------------------------------------------------------------- rule checks

@dataclass
class OpContext:
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


def _c_input_types(c: OpContext, values: Sequence[str], index: int = 0) -> bool:
    t = c.inp(index)
    return t is None or t.dtype in values


def _c_output_types(c: OpContext, values: Sequence[str]) -> bool:
    t = c.outputs[0] if c.outputs else None
    return t is None or t.dtype in values


def _c_max_rank(c: OpContext, value: int, which: str = "inputs") -> bool:
    tensors: list[TensorInfo | None] = []
    if which in ("inputs", "all"):
        tensors += c.present_inputs()
    if which in ("outputs", "all"):
        tensors += c.outputs
    return all(t is None or t.rank <= value for t in tensors)


def _c_rank_in(c: OpContext, values: Sequence[int], index: int = 0) -> bool:
    t = c.inp(index)
    return t is None or t.rank in values


def _c_const_input(c: OpContext, index: int) -> bool:
    t = c.inp(index)
    return t is None or t.constant


def _c_has_input(c: OpContext, index: int) -> bool:
    return c.inp(index) is not None


def _c_num_inputs(c: OpContext, values: Sequence[int]) -> bool:
    return len(c.present_inputs()) in values


def _c_max_inputs(c: OpContext, value: int) -> bool:
    return len(c.present_inputs()) <= value


def _c_max_runtime_inputs(c: OpContext, value: int) -> bool:
    return len(c.runtime_inputs()) <= value


def _c_option_in(c: OpContext, option: str, values: Sequence[Any]) -> bool:
    return option not in c.op.options or c.opt(option) in values


def _c_option_not_true(c: OpContext, option: str) -> bool:
    return c.opt(option) is not True


def _c_options_not_both(c: OpContext, options: Sequence[str]) -> bool:
    return not all(c.opt(o) is True for o in options)


def _c_option_min(c: OpContext, option: str, value: float) -> bool:
    v = c.opt(option)
    return v is None or v >= value


def _c_dilation_is_one(c: OpContext) -> bool:
    return all(c.opt(k, 1) in (0, 1) for k in ("dilation_w_factor", "dilation_h_factor"))


def _c_not_grouped(c: OpContext) -> bool:
    x, w = c.inp(0), c.inp(1)
    return x is None or w is None or x.rank != 4 or w.rank != 4 or x.shape[3] == w.shape[3]


def _c_not_hybrid(c: OpContext) -> bool:
    x, w = c.inp(0), c.inp(1)
    return not (x is not None and w is not None and x.dtype == "float32" and w.dtype in _QUANT8)


def _c_per_tensor_filter(c: OpContext) -> bool:
    w = c.inp(1)
    return w is None or w.quantization is None or len(w.quantization.scale) <= 1


def _c_quant_scale_product(c: OpContext) -> bool:
    x, w, y = c.inp(0), c.inp(1), c.outputs[0] if c.outputs else None
    sx, sw, sy = _scale(x), _scale(w), _scale(y)
    if x is None or x.dtype not in _QUANT8 or None in (sx, sw, sy):
        return True
    return sx * sw < sy  # type: ignore[operator]


def _c_quant_pool_area(c: OpContext, value: int) -> bool:
    x = c.inp(0)
    if c.accelerator or x is None or x.dtype not in _QUANT8:
        return True
    return c.opt("filter_width", 1) * c.opt("filter_height", 1) <= value


def _c_square_output(c: OpContext) -> bool:
    y = c.outputs[0] if c.outputs else None
    return y is None or y.rank != 4 or y.shape[1] == y.shape[2]


def _c_no_zero_dims(c: OpContext, index: int = 0) -> bool:
    t = c.inp(index)
    return t is None or 0 not in t.shape


def _c_not_scalar_output(c: OpContext) -> bool:
    y = c.outputs[0] if c.outputs else None
    return y is None or y.rank > 0


def _c_same_input_quant(c: OpContext) -> bool:
    qs = {(t.quantization.scale, t.quantization.zero_point) for t in c.present_inputs()
          if t.dtype in _QUANT8 and t.quantization}
    return len(qs) <= 1


def _c_const_shape_rows(c: OpContext, index: int, values: Sequence[int]) -> bool:
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


def rule_detail(rule: Rule, c: OpContext) -> str:
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


def decide(table: SupportTable, c: OpContext) -> tuple[bool, str | None, str | None, str | None]:
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
            detail = rule_detail(rule, c)
            when = f", rule below {level_name(rule.below)}" if rule.below is not None else ""
            extra = ", ".join(x for x in (detail, when.lstrip(", ")) if x)
            return False, rule.reason + (f" ({extra})" if extra else ""), entry.fit, None
    note = None
    if (d.int8_as_uint8_below is not None and level is not None and level < d.int8_as_uint8_below
            and any(t.dtype == "int8" and not t.constant for t in tensors)):
        note = "int8 tensors passed to NNAPI as uint8 (zero point + 128)"
    return True, None, None, note
