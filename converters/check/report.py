"""What a check found: one result per op, the delegate's partitions, the verdict, and the
``--require`` gate. Vendor compilers (Vela, RKNN, LiteRT AOT) build the same report from
their own placement with ``apply_partitions``."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

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


def apply_partitions(results: list[OpResult], nodes: Sequence[tuple[Sequence[Hashable], Sequence[Hashable]]],
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
