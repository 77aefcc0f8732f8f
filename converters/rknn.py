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

import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.converters.check import CheckReport, OpResult, apply_partitions, read_onnx
from edge_isp.errors import ConversionError, InputError

TOOLCHAIN = "rknn"
ESTIMATE_SOURCE = "rknn-toolkit2 build-time estimate, nothing executed on a board"
NO_REASON = "RKNN placed it on the CPU; rknn-toolkit2 gives no reason"
SIMULATOR_NOTE = ("verified with rknn-toolkit2's host simulator (generic: the same output for every platform), "
                  "not on a board; on a board the .rknn runs with rknn-toolkit-lite2 / librknnrt")
MAPPING_NOTE = ("RKNN layers are traced to ONNX nodes by FullName and fuse_ops rewrites; an ONNX node with no "
                "layer of its own was fused into a neighbour (it takes the placement of the nearest traced "
                "neighbour, producers first) or removed by a rewrite that added nothing (it computes nothing "
                "and counts as on the NPU)")
IO_LAYERS = ("InputOperator", "OutputOperator")
RKNN_MAX_OPSET = 19          # rknn-toolkit2 2.5.0: "Unsupport onnx opset 20, need <= 19"
DEFAULT_TIMEOUT_S = 900.0
KIB = 1024

_PREFIX = re.compile(r"^[DIWE] RKNN: \[[\d:.]+\]\s?")
_ROW = re.compile(r"^(?P<id>\d+)\s+(?P<op>\S+)\s+(?P<dtype>\S+)\s+(?P<target>NPU|CPU|GPU)\s+(?P<ins>\S+)\s+"
                  r"(?P<out>\S+)\s+(?P<ddr>\d+)/(?P<npu>\d+)/(?P<total>\d+)\s+(?P<rw>[\d.]+)\s*(?P<name>.*?)\s*$")
_REWRITE = re.compile(r"^D\s+(?P<rule>\w+): remove node = \[(?P<removed>[^\]]*)\](?:, add node = \[(?P<added>[^\]]*)\])?")
_MEMORY = re.compile(r"Total (?P<what>Internal|Weight) Memory Size: (?P<kb>[\d.]+)\s*(?P<unit>[KMG]?B)")
_UNITS = {"B": 1, "KB": KIB, "MB": KIB ** 2, "GB": KIB ** 3}


# ----------------------------------------------------------------------------- parsed log

@dataclass(frozen=True)
class RknnLayer:
    """One row of RKNN's "Network Layer Information Table"."""

    id: int
    op: str                  # RKNN's (possibly fused) op type, e.g. ConvPReluAdd
    dtype: str
    target: str              # "NPU" | "CPU"
    input_shapes: str
    output_shape: str
    cycles_ddr: int
    cycles_npu: int
    cycles_total: int
    rw_kb: float
    full_name: str           # "Conv:node_conv2d_5" ("" for layers RKNN made up)

    @property
    def name(self) -> str:
        """The layer's node name (FullName without the original op type)."""
        return self.full_name.partition(":")[2] if ":" in self.full_name else self.full_name

    @property
    def io(self) -> bool:
        return self.op in IO_LAYERS

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "op": self.op, "dtype": self.dtype, "target": self.target,
                "input_shapes": self.input_shapes, "output_shape": self.output_shape,
                "cycles": {"ddr": self.cycles_ddr, "npu": self.cycles_npu, "total": self.cycles_total},
                "rw_kb": self.rw_kb, "full_name": self.full_name}


@dataclass(frozen=True)
class Rewrite:
    """One line of RKNN's ``fuse_ops results``: a rule that removed and added nodes."""

    rule: str
    removed: tuple[str, ...]
    added: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "removed": list(self.removed), "added": list(self.added)}


def _strip(line: str) -> str:
    return _PREFIX.sub("", line.rstrip("\n"))


def parse_layer_table(log: str) -> list[RknnLayer]:
    """The rows of the last "Network Layer Information Table" in RKNN's verbose log."""
    tables: list[list[RknnLayer]] = []
    rows: list[RknnLayer] | None = None
    for raw in log.splitlines():
        line = _strip(raw)
        if "Network Layer Information Table" in line:
            rows = []
            tables.append(rows)
            continue
        if rows is None:
            continue
        m = _ROW.match(line.strip())
        if m:
            rows.append(RknnLayer(int(m["id"]), m["op"], m["dtype"], m["target"], m["ins"], m["out"],
                                  int(m["ddr"]), int(m["npu"]), int(m["total"]), float(m["rw"]), m["name"]))
        elif rows and not line.strip().startswith("-"):
            rows = None      # the table ended (its closing rule line or any other line)
    return tables[-1] if tables else []


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(n.strip().strip("'\"") for n in (text or "").split(",") if n.strip())


def parse_rewrites(log: str) -> list[Rewrite]:
    """RKNN's graph rewrites in order (``fuse_ops results`` lines), e.g. convert_in_to_exnorm."""
    out = []
    for raw in log.splitlines():
        m = _REWRITE.match(raw.strip())
        if m:
            out.append(Rewrite(m["rule"], _names(m["removed"]), _names(m["added"])))
    return out


def parse_memory(log: str) -> dict[str, int]:
    """RKNN's memory totals in bytes: ``internal_bytes`` (feature maps), ``weight_bytes``."""
    found: dict[str, int] = {}
    for raw in log.splitlines():
        m = _MEMORY.search(raw)
        if m:
            found[f"{m['what'].lower()}_bytes"] = int(round(float(m["kb"]) * _UNITS.get(m["unit"], KIB)))
    return found


# ----------------------------------------------------------------------------- ONNX graph

@dataclass(frozen=True)
class OnnxNode:
    index: int
    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def read_onnx_nodes(path: Path) -> list[OnnxNode]:
    graph = read_onnx(path, "reading the ONNX graph RKNN compiled").graph
    return [OnnxNode(i, n.name or (n.output[0] if n.output else f"#{i}"), n.op_type, tuple(x for x in n.input if x),
                     tuple(n.output)) for i, n in enumerate(graph.node)]


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


# ----------------------------------------------------------------------------- layer -> ONNX node

def _candidates(name: str) -> Iterable[str]:
    """``name``, then without a ``#n`` suffix, then with trailing ``_part`` segments dropped.

    RKNN names fused layers after the node they grew from (``node_conv2d_11_ConvAdd``).
    """
    yield name
    base = name.split("#", 1)[0]
    if base != name:
        yield base
    parts = base.split("_")
    for k in range(len(parts) - 1, 0, -1):
        yield "_".join(parts[:k])


def trace_origins(rewrites: list[Rewrite], node_names: set[str]) -> tuple[dict[str, set[str]], dict[str, str]]:
    """(name -> ONNX nodes it came from, ONNX node -> rule that removed it and added nothing)."""
    origin: dict[str, set[str]] = {}

    def of(name: str) -> set[str]:
        return origin.get(name, {name} if name in node_names else set())

    dropped: dict[str, str] = {}
    for rw in rewrites:
        removed = {n: of(n) for n in rw.removed}
        fresh = [n for n in rw.removed if n not in rw.added] or list(rw.removed)
        pooled = set().union(*(removed[n] for n in fresh)) if fresh else set()
        for name in rw.added:
            # A re-added name (swap / fuse in place) keeps its own origin; a new one gets the pool.
            origin[name] = set(removed[name]) if name in removed else set(pooled)
        if not rw.added:
            for name in rw.removed:
                for node in of(name):
                    dropped.setdefault(node, rw.rule)
    return origin, dropped


def _layer_nodes(layer: RknnLayer, origin: dict[str, set[str]], node_names: set[str],
                 by_output: dict[str, str]) -> set[str]:
    if not layer.name:
        return set()
    for cand in _candidates(layer.name):
        if cand in origin:
            return origin[cand]
        if cand in node_names:
            return {cand}
        if cand in by_output:
            return {by_output[cand]}
    return set()


@dataclass
class NodePlacement:
    """Where one ONNX node ended up."""

    index: int
    op: str
    name: str
    output: str
    target: str                         # "NPU" | "CPU"
    how: str                            # "layers" | "fused" | "removed" | "unknown"
    layers: list[int] = field(default_factory=list)
    reason: str | None = None
    note: str | None = None
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "op": self.op, "name": self.name, "output": self.output, "target": self.target,
                "how": self.how, "layers": self.layers, "reason": self.reason, "note": self.note,
                "inputs": self.inputs, "outputs": self.outputs}


def _own_placement(node: OnnxNode, layers: list[RknnLayer]) -> NodePlacement:
    cpu = [la for la in layers if la.target != "NPU"]
    desc = ", ".join(f"#{la.id} {la.op} {la.target}" for la in layers[:6]) + (" ..." if len(layers) > 6 else "")
    reason = None
    if cpu and len(cpu) == len(layers):
        reason = NO_REASON
    elif cpu:
        # No counts in the reason: `check` groups ops by (op, reason).
        reason = (f"RKNN placed part of it on the CPU ({', '.join(sorted({la.op for la in cpu}))} layers it made "
                  "from it); rknn-toolkit2 gives no reason")
    note = f"RKNN layers: {desc}" + (f" ({len(cpu)} of {len(layers)} on the CPU)" if cpu else "")
    return NodePlacement(node.index, node.op, node.name, node.outputs[0] if node.outputs else "",
                         "CPU" if cpu else "NPU", "layers", [la.id for la in layers], reason, note,
                         list(node.inputs), list(node.outputs))


def _neighbour(node: OnnxNode, placed: dict[str, NodePlacement], layer_ops: dict[str, set[str]],
               producer: dict[str, OnnxNode], consumers: dict[str, list[OnnxNode]],
               depth: int = 4) -> NodePlacement | None:
    """The traced node ``node`` was most likely fused into.

    Candidates are traced nodes up to ``depth`` steps away, producers before consumers; one
    whose RKNN layer op names the node's op (``ConvPReluAdd`` for an Add) wins, then the nearest.
    """
    best: tuple[tuple[int, int, int], NodePlacement] | None = None
    for direction, step in enumerate((lambda n: [producer[t] for t in n.inputs if t in producer],
                                      lambda n: [c for t in n.outputs for c in consumers.get(t, [])])):
        seen, frontier = {node.name}, step(node)
        for dist in range(depth):
            nxt = []
            for n in frontier:
                if n.name in seen:
                    continue
                seen.add(n.name)
                if n.name in placed:
                    named = any(node.op.lower() in op.lower() for op in layer_ops.get(n.name, ()))
                    key = (0 if named else 1, dist, direction)
                    if best is None or key < best[0]:
                        best = (key, placed[n.name])
                    continue          # do not look past a traced node
                nxt.extend(step(n))
            frontier = nxt
    return best[1] if best else None


def place_nodes(nodes: list[OnnxNode], layers: list[RknnLayer], rewrites: list[Rewrite]) -> list[NodePlacement]:
    """NPU / CPU for every ONNX node, traced from RKNN's layer table and rewrites.

    Each placement keeps the node's activation inputs (weights dropped) and outputs, so the
    report's partitions can be rebuilt from a manifest.
    """
    produced = {o for n in nodes for o in n.outputs}
    return [_with_activations(p, produced) for p in _place(nodes, layers, rewrites)]


def _with_activations(p: NodePlacement, produced: set[str]) -> NodePlacement:
    p.inputs = [t for t in p.inputs if t in produced]
    return p


def _place(nodes: list[OnnxNode], layers: list[RknnLayer], rewrites: list[Rewrite]) -> list[NodePlacement]:
    names = {n.name for n in nodes}
    by_output = {o: n.name for n in nodes for o in n.outputs}
    origin, dropped = trace_origins(rewrites, names)
    per_node: dict[str, list[RknnLayer]] = {}
    for layer in layers:
        if layer.io:
            continue
        for name in _layer_nodes(layer, origin, names, by_output):
            per_node.setdefault(name, []).append(layer)
    placed = {n.name: _own_placement(n, per_node[n.name]) for n in nodes if n.name in per_node}
    layer_ops = {name: {la.op for la in ls} for name, ls in per_node.items()}
    producer = {o: n for n in nodes for o in n.outputs}
    consumers: dict[str, list[OnnxNode]] = {}
    for n in nodes:
        for t in n.inputs:
            consumers.setdefault(t, []).append(n)
    result = []
    for n in nodes:
        if n.name in placed:
            result.append(placed[n.name])
            continue
        out = n.outputs[0] if n.outputs else ""
        if n.name in dropped:
            result.append(NodePlacement(n.index, n.op, n.name, out, "NPU", "removed", [], None,
                                        f"removed by RKNN's rewrite {dropped[n.name]} (computes nothing)",
                                        list(n.inputs), list(n.outputs)))
            continue
        near = _neighbour(n, placed, layer_ops, producer, consumers)
        if near is None:
            result.append(NodePlacement(n.index, n.op, n.name, out, "NPU", "unknown", [], None,
                                        "no RKNN layer traced to it or to a neighbour (folded or renamed)",
                                        list(n.inputs), list(n.outputs)))
            continue
        reason = None if near.target == "NPU" else f"{NO_REASON} (fused into the layer(s) of #{near.index} {near.op})"
        result.append(NodePlacement(n.index, n.op, n.name, out, near.target, "fused", list(near.layers), reason,
                                    f"no RKNN layer of its own: fused with #{near.index} {near.op} ({near.name})",
                                    list(n.inputs), list(n.outputs)))
    return result


# ----------------------------------------------------------------------------- estimates / summary

def estimates_from_layers(layers: list[RknnLayer], memory: dict[str, int], platform: str) -> dict[str, Any]:
    """Cycle and memory figures from the layer table, labelled as estimates."""
    work = [la for la in layers if not la.io]
    cpu = [la for la in work if la.target != "NPU"]
    return {
        "estimate": True, "source": ESTIMATE_SOURCE, "platform": platform,
        "cycles_total": sum(la.cycles_total for la in work), "cycles_npu": sum(la.cycles_npu for la in work),
        "cycles_ddr": sum(la.cycles_ddr for la in work), "rw_kb_total": round(sum(la.rw_kb for la in layers), 3),
        "internal_memory_bytes": memory.get("internal_bytes"), "weight_memory_bytes": memory.get("weight_bytes"),
        "total_memory_bytes": (memory["internal_bytes"] + memory["weight_bytes"]
                               if {"internal_bytes", "weight_bytes"} <= set(memory) else None),
        "layers_npu": len(work) - len(cpu), "layers_cpu": len(cpu),
        "cpu_time_not_included": bool(cpu),
        "note": "cycles are the compiler's per-layer model summed over layers (no clock, no CPU layers' time)",
    }


def rewrite_counts(rewrites: list[Rewrite]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for rw in rewrites:
        counts[rw.rule] = counts.get(rw.rule, 0) + 1
    return counts


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
