"""Arm Ethos-U: compile an INT8 TFLite with Vela and read what Vela decided.

Vela (``ethos-u-vela``) runs in its own environment (``edge_isp.toolchains``, ``edge-isp
toolchain install vela``). It is the vendor's own answer to "does the NPU take this op":
its per-layer CSV says NPU or CPU per operator, its stdout says why an op was refused
(``Warning (supported operators) operator: X, ofm: 'name'`` / ``Reason: ...``), and its
summary CSV holds the performance model's figures. Those figures are estimates (nothing
executes); every dict built here says so.

Placement is reported per operator of the *input* INT8 model (the one verified on the
host), in the checker's ``CheckReport`` format: an op is on the CPU when Vela's per-layer
CSV lists its output tensor with Target CPU, or Vela printed a reason for it.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_isp.converters.check import CheckReport, OpResult, apply_partitions
from edge_isp.converters.tflite_reader import read_tflite
from edge_isp.errors import ConversionError

ESTIMATE_SOURCE = "Vela performance model, nothing executed"
SAME_ARITHMETIC_NOTE = ("the NPU runs the same integer arithmetic as the verified INT8 TFLite (model.tflite); "
                        "Vela only schedules and packs it, so the host verification covers the Vela output")
DEFAULT_TIMEOUT_S = 300.0
# Pixel shuffle is where ISP models leave the NPU (DEPTH_TO_SPACE on every Ethos-U, its 6-D
# TRANSPOSE on U55/U65); the exact one-hot TRANSPOSE_CONV form runs on the NPU.
PIXEL_SHUFFLE_FIT = ("if this is a pixel shuffle: convert with --fit pixel_shuffle=deconv (an exact one-hot "
                     "TRANSPOSE_CONV, which Vela places on the NPU)")

_WARN = re.compile(r"^Warning \(supported operators\) operator: (?P<op>[A-Z0-9_:]+), ofm: '(?P<ofm>.*)'\s*$")


@dataclass
class VelaPlacement:
    index: int
    op: str
    output: str
    target: str              # "NPU" | "CPU"
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "op": self.op, "output": self.output, "target": self.target,
                "reason": self.reason}


@dataclass
class VelaResult:
    model: Path                          # the INT8 TFLite Vela compiled
    vela_tflite: Path
    accelerator_config: str
    version: str
    placement: list[VelaPlacement]
    estimates: dict[str, Any]
    reasons: dict[str, tuple[str, str]] = field(default_factory=dict)   # ofm -> (op, reason)
    stdout: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"compiler": f"vela {self.version}", "accelerator_config": self.accelerator_config,
                "vela_file": self.vela_tflite.name, "placement": [p.to_dict() for p in self.placement],
                "estimates": self.estimates, "note": SAME_ARITHMETIC_NOTE}


# ----------------------------------------------------------------------------- parsing

def parse_reasons(stdout: str) -> dict[str, tuple[str, str]]:
    """``{ofm tensor name: (op type, reason)}`` from Vela's 'supported operators' warnings."""
    reasons: dict[str, tuple[str, str]] = {}
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        m = _WARN.match(line.strip())
        if not m:
            continue
        reason = ""
        for nxt in lines[i + 1:i + 4]:
            if nxt.strip().startswith("Reason:"):
                reason = nxt.strip()[len("Reason:"):].strip()
                break
        prev = reasons.get(m["ofm"])
        text = f"{prev[1]}; {reason}" if prev and reason and reason not in prev[1] else (reason or (prev[1] if prev else ""))
        reasons[m["ofm"]] = (m["op"], text or "refused by Vela's supported-operators check")
    return reasons


def parse_per_layer(text: str) -> list[dict[str, str]]:
    """Rows of Vela's ``<model>_per-layer.csv`` (Original Operator, NNG Operator, Target, ..., Name)."""
    return [dict(r) for r in csv.DictReader(io.StringIO(text))]


def _num(value: str) -> float | int | str:
    try:
        f = float(value)
    except ValueError:
        return value
    return int(f) if f.is_integer() and "." not in value else f


def parse_summary(text: str) -> dict[str, Any]:
    """The one data row of Vela's ``<model>_summary_<system>.csv``, numbers as numbers."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise ConversionError("Vela's summary CSV has no rows")
    return {k: _num(v) for k, v in rows[0].items()}


def estimates_from_summary(summary: dict[str, Any], per_layer: list[dict[str, str]]) -> dict[str, Any]:
    """The figures worth showing, labelled as estimates. Memory figures in Vela's CSV are KiB."""
    def kib(key: str) -> int | None:
        v = summary.get(key)
        return int(round(float(v) * 1024)) if isinstance(v, (int, float)) else None

    t = summary.get("inference_time")
    return {
        "estimate": True, "source": ESTIMATE_SOURCE,
        "accelerator": summary.get("accelerator_configuration"), "system_config": summary.get("system_config"),
        "memory_mode": summary.get("memory_mode"), "core_clock_hz": summary.get("core_clock"),
        "inference_time_ms": round(float(t) * 1000.0, 4) if isinstance(t, (int, float)) else None,
        "inferences_per_second": summary.get("inferences_per_second"),
        "cycles_total": summary.get("cycles_total"), "cycles_npu": summary.get("cycles_npu"),
        "macs": summary.get("nn_macs"),
        "sram_bytes": kib("sram_memory_used"), "dram_bytes": kib("dram_memory_used"),
        "flash_bytes": (kib("on_chip_flash_memory_used") or 0) + (kib("off_chip_flash_memory_used") or 0),
        "weights_bytes_encoded": summary.get("total_npu_encoded_weights"),
        "npu_layers": sum(1 for r in per_layer if r.get("Target") == "NPU"),
        "cpu_layers": sum(1 for r in per_layer if r.get("Target") == "CPU"),
        "cpu_time_not_included": any(r.get("Target") == "CPU" for r in per_layer),
    }


def placement_for(model_path: Path, per_layer: list[dict[str, str]],
                  reasons: dict[str, tuple[str, str]]) -> list[VelaPlacement]:
    """NPU / CPU for each operator of the input TFLite, with Vela's reason for the CPU ones."""
    model = read_tflite(model_path)
    cpu_names: set[str] = set()
    for row in per_layer:
        if row.get("Target") == "CPU":
            cpu_names.update(n for n in (row.get("Name") or "").split(";") if n)
    result = []
    for op in model.operators:
        outs = [t.name for t in model.op_outputs(op) if t is not None]
        hit = next((reasons[n] for n in outs if n in reasons), None)
        on_cpu = hit is not None or any(n in cpu_names for n in outs)
        reason = None
        if on_cpu:
            reason = (f"Vela: {hit[1]}" if hit else
                      "Vela placed it on the CPU (per-layer CSV); no supported-operators reason printed")
        result.append(VelaPlacement(op.index, op.op, outs[0] if outs else "", "CPU" if on_cpu else "NPU", reason))
    return result


# ----------------------------------------------------------------------------- compile

def compile_vela(int8_tflite: Path, accelerator_config: str, out_dir: Path,
                 timeout: float = DEFAULT_TIMEOUT_S) -> VelaResult:
    """Compile ``int8_tflite`` with Vela for ``accelerator_config`` (e.g. ``ethos-u65-256``) into ``out_dir``."""
    from edge_isp import toolchains

    int8_tflite = Path(int8_tflite).resolve()
    out_dir = Path(out_dir).resolve()
    resp = toolchains.run("vela", {"op": "compile", "model": str(int8_tflite),
                                   "accelerator_config": accelerator_config, "output_dir": str(out_dir)},
                          timeout=timeout)
    return result_from_response(int8_tflite, accelerator_config, resp)


def result_from_response(int8_tflite: Path, accelerator_config: str, resp: dict[str, Any]) -> VelaResult:
    if not resp.get("per_layer_csv") or not resp.get("summary_csv") or not resp.get("vela_tflite"):
        raise ConversionError(f"Vela wrote no per-layer / summary CSV or no _vela.tflite for {int8_tflite.name}; "
                              f"its output: {(resp.get('stdout') or '')[-400:]}")
    per_layer = parse_per_layer(resp["per_layer_csv"])
    reasons = parse_reasons(resp.get("stdout") or "")
    placement = placement_for(int8_tflite, per_layer, reasons)
    estimates = estimates_from_summary(parse_summary(resp["summary_csv"]), per_layer)
    return VelaResult(int8_tflite, Path(resp["vela_tflite"]), accelerator_config, str(resp.get("version")),
                      placement, estimates, reasons, resp.get("stdout") or "")


# ----------------------------------------------------------------------------- report

def vela_report(result_or_dict: VelaResult | dict[str, Any], target: str, model_file: str = "") -> CheckReport:
    """Vela's placement as a ``CheckReport`` (same verdicts, partitions and text as ``edge-isp check``)."""
    d = result_or_dict.to_dict() if isinstance(result_or_dict, VelaResult) else result_or_dict
    if isinstance(result_or_dict, VelaResult) and not model_file:
        model_file = str(result_or_dict.model)
    placement = d["placement"]
    ops = [OpResult(p["index"], p["op"], 1, p["target"] == "NPU", p.get("reason"),
                    fit=PIXEL_SHUFFLE_FIT if p["target"] == "CPU" and p["op"] in ("DEPTH_TO_SPACE", "TRANSPOSE") else None,
                    output=p.get("output") or "")
           for p in placement]
    # Vela keeps the op order; an NPU run between CPU ops is one CUSTOM ethos-u op: consecutive runs.
    nodes = [([i - 1] if i else [], [i]) for i in range(len(ops))]
    partitions = apply_partitions(ops, nodes, 0, "")
    est = d.get("estimates", {})
    notes = [f"placement by {d.get('compiler', 'vela')} for {d.get('accelerator_config')} (vendor compiler, "
             "not a static table)", d.get("note", SAME_ARITHMETIC_NOTE)]
    if est.get("inference_time_ms") is not None:
        notes.append(f"estimate ({ESTIMATE_SOURCE}): {est['inference_time_ms']} ms/inference, "
                     f"{est.get('cycles_total')} cycles, SRAM {est.get('sram_bytes')} B, "
                     f"DRAM {est.get('dram_bytes')} B, flash {est.get('flash_bytes')} B"
                     + ("; CPU ops' time not included" if est.get("cpu_time_not_included") else ""))
    return CheckReport(model_file, "tflite", target, "ethos-u", f"Arm Ethos-U via Vela ({d.get('accelerator_config')})",
                       None, "-", d.get("accelerator_config"), 0, ops, partitions, notes=notes,
                       sources=[f"{d.get('compiler', 'vela')} per-layer CSV and supported-operators warnings"])


def check_with_vela(model_file: Path, target_name: str, work: Path | None = None) -> tuple[CheckReport, VelaResult]:
    """Compile a bare INT8 TFLite with Vela for ``target_name`` and report (for ``edge-isp check``)."""
    import tempfile

    from edge_isp.converters.targets import get_target

    tgt = get_target(target_name)
    tmp = Path(work) if work else Path(tempfile.mkdtemp(prefix="edge-isp-vela-"))
    try:
        result = compile_vela(Path(model_file), tgt.accelerator_config, tmp)
        return vela_report(result, tgt.name, str(model_file)), result
    finally:
        if work is None:
            shutil.rmtree(tmp, ignore_errors=True)


def vendor_check(model_file: Path, fmt: str, target: str, npu: dict[str, Any] | None,
                 platform: str | None) -> tuple[CheckReport, Path]:
    """For ``check_bundle``: the bundle's Vela report (``npu``) or Vela run on ``model_file``,
    and the file the static table reads. The accelerator is fixed per target (no platform)."""
    report = vela_report(npu, target, str(model_file)) if npu else check_with_vela(model_file, target)[0]
    return report, model_file


def build(ctx: Any) -> Any:
    """The ``vela`` format entry: the INT8 TFLite exactly as for cpu-int8 (verified on the
    host), then compiled by Vela."""
    import dataclasses

    from edge_isp.converters import tflite_build

    built = tflite_build.build(ctx)
    result = compile_vela(built.main, str(ctx.target.accelerator_config), ctx.work / "vela")
    vela_file = ctx.work / "model_vela.tflite"
    shutil.copy2(result.vela_tflite, vela_file)
    result.vela_tflite = vela_file
    report = vela_report(result, ctx.target.name, "model.tflite")
    npu = {**result.to_dict(), "verified_artifact": "model.tflite", "placement_summary": report.summary_line()}
    return dataclasses.replace(built, extra=[*built.extra, vela_file], support=report, npu=npu)
