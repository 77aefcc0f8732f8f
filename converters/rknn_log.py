"""What rknn-toolkit2 decided, read from its verbose log and traced back to the ONNX graph.

The "Network Layer Information Table" (one row per compiled layer: ID, OpType, DataType,
Target NPU/CPU, shapes, cycles DDR/NPU/Total, RW KB, FullName), the graph rewrites of its
``fuse_ops`` pass ("rule: remove node = [...], add node = [...]") and the memory totals.
Each RKNN layer is traced back to ONNX nodes through its FullName and the rewrites (a layer
a rewrite added belongs to the nodes that rewrite removed); a node with no layer of its own
takes its nearest traced neighbour's placement (``MAPPING_NOTE`` in converters/rknn.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_isp.converters.check import read_onnx

ESTIMATE_SOURCE = "rknn-toolkit2 build-time estimate, nothing executed on a board"
NO_REASON = "RKNN placed it on the CPU; rknn-toolkit2 gives no reason"
IO_LAYERS = ("InputOperator", "OutputOperator")
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
