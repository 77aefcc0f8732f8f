"""Rockchip RKNPU: compile the verified ONNX with rknn-toolkit2 and read what it decided.

rknn-toolkit2 runs in its own environment (``edge_isp.toolchains``, ``edge-isp toolchain
install rknn``): it pins numpy / onnx / protobuf versions edge-isp cannot share. The worker
(``edge_isp/toolchain_rknn_worker.py``) loads the ONNX, quantises it (INT8, with the same
calibration crops as every other target) or keeps it FP16, exports ``model.rknn`` and runs
the held-out crops through rknn-toolkit2's host simulator; the pipeline verifies the
simulator's output against PyTorch.

What RKNN decided comes from its verbose log: the "Network Layer Information Table" (one
row per compiled layer: ID, OpType, DataType, Target NPU/CPU, shapes, cycles DDR/NPU/Total,
RW KB, FullName), the graph rewrites of its ``fuse_ops`` pass ("rule: remove node = [...],
add node = [...]") and the memory totals. RKNN gives no reason for a CPU layer. Cycles and
memory are the compiler's build-time estimates; nothing runs on a board.

Placement is reported per node of the ONNX graph RKNN compiled, in the checker's
``CheckReport`` format. Each RKNN layer is traced back to ONNX nodes through its FullName
and the rewrites (a layer a rewrite added belongs to the nodes that rewrite removed); see
``MAPPING_NOTE`` for nodes with no layer of their own.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.converters.check import CheckReport, OpResult, apply_partitions, read_onnx
from edge_isp.converters.rknn_log import (
    ESTIMATE_SOURCE,
    NodePlacement,
    OnnxNode,
    Rewrite,
    RknnLayer,
    estimates_from_layers,
    parse_layer_table,
    parse_memory,
    parse_rewrites,
    place_nodes,
    read_onnx_nodes,
    rewrite_counts,
    trace_origins,
)
from edge_isp.errors import ConversionError, InputError

TOOLCHAIN = "rknn"
SIMULATOR_NOTE = ("verified with rknn-toolkit2's host simulator (generic: the same output for every platform), "
                  "not on a board; on a board the .rknn runs with rknn-toolkit-lite2 / librknnrt")
MAPPING_NOTE = ("RKNN layers are traced to ONNX nodes by FullName and fuse_ops rewrites; an ONNX node with no "
                "layer of its own was fused into a neighbour (it takes the placement of the nearest traced "
                "neighbour, producers first) or removed by a rewrite that added nothing (it computes nothing "
                "and counts as on the NPU)")
RKNN_MAX_OPSET = 19          # rknn-toolkit2 2.5.0: "Unsupport onnx opset 20, need <= 19"
DEFAULT_TIMEOUT_S = 900.0

# ----------------------------------------------------------------------------- result

@dataclass
class RknnResult:
    onnx: Path                           # the ONNX RKNN compiled (opset <= 19)
    rknn: Path
    platform: str
    precision: str                       # "int8" | "fp16"
    version: str
    layers: list[RknnLayer]
    rewrites: list[Rewrite]
    placement: list[NodePlacement]
    estimates: dict[str, Any]
    opset: int
    outputs: np.ndarray | None = None    # simulator outputs (N,3,H,W) for the held-out inputs
    log: str = ""

    @property
    def compiler(self) -> str:
        return f"rknn-toolkit2 {self.version}"

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``npu`` section."""
        return {
            "compiler": self.compiler, "platform": self.platform, "precision": self.precision,
            "rknn_file": self.rknn.name, "onnx_opset": self.opset,
            "placement": [p.to_dict() for p in self.placement],
            "layers": [la.to_dict() for la in self.layers],
            "rewrites": [rw.to_dict() for rw in self.rewrites], "rewrite_counts": rewrite_counts(self.rewrites),
            "estimates": self.estimates, "simulator": SIMULATOR_NOTE, "mapping": MAPPING_NOTE,
        }


def result_from_response(onnx_path: Path, platform: str, precision: str, opset: int,
                         resp: dict[str, Any]) -> RknnResult:
    log = resp.get("log") or ""
    layers = parse_layer_table(log)
    if not resp.get("rknn") or not layers:
        raise ConversionError(f"rknn-toolkit2 wrote no .rknn or no layer table for {onnx_path.name}; "
                              f"the end of its log: {log[-400:]!r}")
    rewrites = parse_rewrites(log)
    placement = place_nodes(read_onnx_nodes(onnx_path), layers, rewrites)
    estimates = estimates_from_layers(layers, parse_memory(log), platform)
    outputs = None
    if resp.get("outputs"):
        outputs = np.concatenate([np.load(p).astype(np.float32) for p in resp["outputs"]], axis=0)
    return RknnResult(onnx_path, Path(resp["rknn"]), platform, precision, str(resp.get("version")), layers,
                      rewrites, placement, estimates, opset, outputs, log)


# ----------------------------------------------------------------------------- ONNX for RKNN

def prepare_onnx(src: Path, dst: Path) -> int:
    """Write ``src`` as opset <= 19 (what rknn-toolkit2 2.5.0 reads) to ``dst``; returns the opset.

    When no node's op changed between opset 19 and the model's opset, only the opset number
    changes (exact). Otherwise ONNX's version converter rewrites the graph.
    """
    from edge_isp._deps import require

    onnx = require("onnx", "preparing the ONNX for rknn-toolkit2")
    model = onnx.load(str(src))
    default = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
    opset = default[0].version if default else RKNN_MAX_OPSET
    if opset > RKNN_MAX_OPSET:
        changed = sorted({n.op_type for n in model.graph.node if n.domain in ("", "ai.onnx")
                          and onnx.defs.get_schema(n.op_type, opset).since_version > RKNN_MAX_OPSET})
        if not changed:
            default[0].version = RKNN_MAX_OPSET
        else:
            try:
                model = onnx.version_converter.convert_version(model, RKNN_MAX_OPSET)
            except Exception as exc:  # noqa: BLE001 - the converter raises several types
                raise ConversionError(f"rknn-toolkit2 reads ONNX opset <= {RKNN_MAX_OPSET}; converting the model's "
                                      f"opset {opset} ({', '.join(changed)}) failed: {exc}") from exc
        opset = RKNN_MAX_OPSET
    model.ir_version = min(model.ir_version, 10)   # onnx 1.18 in the toolchain env
    onnx.save(model, str(dst))
    return opset


# ----------------------------------------------------------------------------- compile

def _write_npy(arrays: np.ndarray, folder: Path, stem: str) -> list[Path]:
    """One (1,C,H,W) float32 .npy per sample: RKNN's dataset and inference want NCHW batches of 1."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, x in enumerate(arrays):
        p = folder / f"{stem}_{i:04d}.npy"
        np.save(p, np.ascontiguousarray(x[None], dtype=np.float32))
        paths.append(p.resolve())
    return paths


def compile_rknn(onnx_path: Path, platform: str, precision: str, work: Path, calib: np.ndarray | None = None,
                 held_out: np.ndarray | None = None, timeout: float = DEFAULT_TIMEOUT_S) -> RknnResult:
    """Compile ``onnx_path`` for ``platform`` with rknn-toolkit2 (INT8 with ``calib``, or FP16).

    With ``held_out``, the simulator runs each sample and the result carries its outputs.
    """
    from edge_isp import toolchains

    if precision not in ("int8", "fp16"):
        raise InputError(f"RKNN builds int8 or fp16 models, not {precision}")
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    model = work / "model_rknn.onnx"
    opset = prepare_onnx(Path(onnx_path), model)
    request: dict[str, Any] = {"op": "build", "model": str(model), "output_dir": str(work / "rknn"),
                               "platform": platform, "quantize": precision == "int8", "dataset": None,
                               "inputs": []}
    if precision == "int8":
        if calib is None or not len(calib):
            raise InputError("an INT8 RKNN build needs calibration inputs")
        listing = work / "dataset.txt"
        listing.write_text("".join(f"{p}\n" for p in _write_npy(calib, work / "calib", "calib")))
        request["dataset"] = str(listing)
    if held_out is not None:
        request["inputs"] = [str(p) for p in _write_npy(held_out, work / "held_out", "input")]
    resp = toolchains.run(TOOLCHAIN, request, timeout=timeout)
    return result_from_response(model, platform, precision, opset, resp)


# ----------------------------------------------------------------------------- report

def rknn_report(result_or_dict: RknnResult | dict[str, Any], target: str, model_file: str = "") -> CheckReport:
    """RKNN's placement as a ``CheckReport`` over the ONNX nodes (format of ``edge-isp check``)."""
    d = result_or_dict.to_dict() if isinstance(result_or_dict, RknnResult) else result_or_dict
    if isinstance(result_or_dict, RknnResult) and not model_file:
        model_file = str(result_or_dict.onnx)
    placement = d["placement"]
    ops = [OpResult(p["index"], p["op"], 1, p["target"] == "NPU", p.get("reason"), output=p.get("output") or "",
                    note=p.get("note")) for p in placement]
    partitions = apply_partitions(ops, [(p.get("inputs", []), p.get("outputs", [])) for p in placement], 0, "")
    est = d.get("estimates", {})
    how = {k: sum(1 for p in placement if p.get("how") == k) for k in ("layers", "fused", "removed", "unknown")}
    notes = [f"placement by {d.get('compiler', 'rknn-toolkit2')} for {d.get('platform')} (vendor compiler, not a "
             "static table); rknn-toolkit2 gives no reason for CPU layers",
             f"{MAPPING_NOTE}: {how['layers']} nodes traced to layers, {how['fused']} fused, {how['removed']} removed"
             + (f", {how['unknown']} not traced" if how["unknown"] else ""),
             d.get("simulator", SIMULATOR_NOTE)]
    if est:
        notes.append(f"estimate ({ESTIMATE_SOURCE}): {est.get('cycles_total')} cycles over "
                     f"{est.get('layers_npu')} NPU + {est.get('layers_cpu')} CPU layers, internal memory "
                     f"{est.get('internal_memory_bytes')} B, weights {est.get('weight_memory_bytes')} B"
                     + ("; CPU layers' time not included" if est.get("cpu_time_not_included") else ""))
    rules = d.get("rewrite_counts") or {}
    if rules:
        notes.append("RKNN rewrites: " + ", ".join(f"{k} x{v}" for k, v in rules.items()))
    return CheckReport(model_file, "onnx", target, "rknn", f"Rockchip RKNPU via rknn-toolkit2 ({d.get('platform')})",
                       None, "-", d.get("platform"), 0, ops, partitions, notes=notes,
                       sources=[f"{d.get('compiler', 'rknn-toolkit2')} verbose log: Network Layer Information Table "
                                "and fuse_ops rewrites"])


def _precision(target_name: str) -> str:
    from edge_isp.converters.targets import get_target

    tgt = get_target(target_name)
    if tgt.format != "rknn":
        raise InputError(f"target {tgt.name} is not an RKNN target (rknn-rk3588-int8, rknn-rk3588-fp16)")
    return tgt.precision


def _input_hw(nodes_path: Path) -> tuple[int, int]:
    """Packed (h, w) of a (1, 4, h, w) ONNX input: what the calibration crops must be."""
    graph = read_onnx(nodes_path, "reading the ONNX input").graph
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim] if len(inputs) == 1 else []
    if len(dims) != 4 or dims[0] != 1 or dims[1] != 4 or min(dims) <= 0:
        raise InputError(f"{nodes_path.name} does not take one static (1,4,h,w) packed-Bayer input (got "
                         f"{[list(d.dim_value for d in i.type.tensor_type.shape.dim) for i in inputs]}); "
                         "RKNN checks need a model exported by edge-isp (a bundle's source.onnx)")
    return int(dims[2]), int(dims[3])


def check_with_rknn(onnx_file: Path, target_name: str, platform: str | None = None,
                    work: Path | None = None) -> tuple[CheckReport, RknnResult]:
    """Compile a bare ONNX with rknn-toolkit2 for ``target_name`` and report (for ``edge-isp check``).

    INT8 targets calibrate on the bundled sample's crops (``make_input_sets`` defaults), as
    ``convert`` does without ``--calib``; the simulator is not run.
    """
    from edge_isp.converters.calibration import make_input_sets
    from edge_isp.converters.targets import get_target, resolve_accelerator

    onnx_file = Path(onnx_file)
    if not onnx_file.is_file():
        raise InputError(f"{onnx_file} does not exist")
    precision = _precision(target_name)
    tgt = get_target(target_name)
    chosen = str(resolve_accelerator(tgt, platform))
    calib = make_input_sets(_input_hw(onnx_file))[0].data if precision == "int8" else None
    tmp = Path(work) if work else Path(tempfile.mkdtemp(prefix="edge-isp-rknn-"))
    try:
        result = compile_rknn(onnx_file, chosen, precision, tmp, calib=calib)
        return rknn_report(result, tgt.name, str(onnx_file)), result
    finally:
        if work is None:
            shutil.rmtree(tmp, ignore_errors=True)


def vendor_check(model_file: Path, fmt: str, target: str, npu: dict[str, Any] | None,
                 platform: str | None) -> tuple[CheckReport, Path]:
    """For ``check_bundle``: the bundle's RKNN report (``npu``) or rknn-toolkit2 run again on
    the ONNX (a bare ONNX, or a bundle's source.onnx for another platform), and the ONNX the
    static table reads."""
    onnx_file = model_file if fmt == "onnx" else model_file.parent / "source.onnx"
    if npu:
        return rknn_report(npu, target, str(model_file)), onnx_file
    if not onnx_file.is_file():
        raise InputError(f"{model_file} cannot be checked again without its source.onnx; pass the ONNX "
                         "model with --target rknn-rk3588-int8")
    return check_with_rknn(onnx_file, target, platform=platform)[0], onnx_file


# ----------------------------------------------------------------------------- pipeline

def build(ctx: Any) -> Any:
    """The ``rknn`` format entry: compile ``ctx.onnx_path``, run the simulator, report."""
    from edge_isp.converters.stages import BuiltArtifact

    precision = ctx.target.precision
    platform = str(ctx.accelerator)     # resolved by the pipeline (--platform or the target's default)
    result = compile_rknn(ctx.onnx_path, platform, precision, ctx.work / "rknn_build",
                          calib=ctx.calib.data if precision == "int8" else None, held_out=ctx.held_out.data)
    if result.outputs is None or len(result.outputs) != len(ctx.held_out.data):
        raise ConversionError(f"rknn-toolkit2's simulator returned {0 if result.outputs is None else len(result.outputs)} "
                              f"outputs for {len(ctx.held_out.data)} held-out inputs")
    main = ctx.work / "model.rknn"
    shutil.copy2(result.rknn, main)
    result.rknn = main
    report = rknn_report(result, ctx.target.name, "source.onnx")
    if precision == "int8":
        quantization = {"weights": "int8", "activations": "int8", "scheme": "rknn-toolkit2 w8a8, per-channel weights",
                        "algorithm": "normal", "calibration_samples": int(len(ctx.calib.data)),
                        "io": "the .rknn takes and gives int8 by default (rknn-toolkit2's choice); the runtime API "
                              "converts float input / output"}
    else:
        quantization = {"weights": "float16", "activations": "float16"}
    npu = {**result.to_dict(), "verified_artifact": "model.rknn (rknn-toolkit2 simulator)",
           "placement_summary": report.summary_line()}
    return BuiltArtifact(main, quantization=quantization, support=report, npu=npu, outputs=result.outputs,
                  outputs_by=f"{result.compiler} simulator")


# Log parsing and node tracing live in converters/rknn_log.py; re-exported for callers of this module.
__all__ = ["MAPPING_NOTE", "OnnxNode", "RknnResult", "build", "check_with_rknn", "compile_rknn", "estimates_from_layers",
           "parse_layer_table", "parse_memory", "parse_rewrites", "place_nodes", "prepare_onnx", "rewrite_counts",
           "rknn_report", "trace_origins", "vendor_check"]
