"""Budgets and the CI gate: stored results checked against limits in a TOML file.

A budgets file::

    [defaults]
    device = "local"            # filters every budget inherits (model, target, runtime, device, kind)
    baseline = "previous"       # "previous" | "commit:<sha>" | path to a results store / JSON export

    [[budget]]
    name = "mobile fp32 on the CI host"
    model = "pynet-v2-mobile"
    target = "cpu-fp32"
    checks = [
      "latency_ms.p90 <= 700",
      "peak_rss_mb <= 900",
      "latency_ms.median <= baseline * 1.10",   # regression vs the baseline's same metric
    ]

    [[budget]]
    model = "pynet-v2-mobile"
    target = "openvino-int8"
    optional = true             # no result yet is reported, not failed
    checks = ["psnr_db >= 40"]

Filters left out match anything, so one budget can cover every target of a model. Each
check is evaluated on the newest stored measurement of each matching series that has the
metric. A budget that matches no result fails (unless ``optional``), saying so.

    >>> report = gate("budgets.toml", results="edge-isp-results.sqlite")
    >>> report.passed, report.to_junit_xml()
"""

from __future__ import annotations

import json
import operator
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_isp._toml import read_toml
from edge_isp.errors import InputError
from edge_isp.results import Measurement, ResultsStore, from_json

FILTERS = ("model", "target", "runtime", "device", "kind")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq,
}
_CHECK = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(<=|>=|==|<|>)\s*(.+?)\s*$")
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RHS_NUM = re.compile(rf"^({_NUM})$")
_RHS_BASE = re.compile(rf"^baseline(?:\s*([*+\-])\s*({_NUM}))?$")
_RHS_BASE_LEFT = re.compile(rf"^({_NUM})\s*\*\s*baseline$")


@dataclass(frozen=True)
class Check:
    """``metric op limit`` where limit is a number or ``baseline [* + -] k``."""

    text: str
    metric: str
    op: str
    value: float | None = None           # fixed limit
    baseline_op: str | None = None       # "*", "+", "-" or "" (= baseline itself)
    baseline_k: float = 1.0
    optional: bool = False

    @property
    def uses_baseline(self) -> bool:
        return self.baseline_op is not None

    @classmethod
    def parse(cls, text: str, optional: bool = False) -> Check:
        m = _CHECK.match(text)
        if not m:
            raise InputError(f"budget check {text!r} is not 'metric op limit' (e.g. 'latency_ms.p90 <= 700')")
        metric, op, rhs = m.groups()
        rhs = rhs.strip()
        if n := _RHS_NUM.match(rhs):
            return cls(text.strip(), metric, op, value=float(n.group(1)), optional=optional)
        if b := _RHS_BASE.match(rhs):
            bop, k = b.groups()
            return cls(text.strip(), metric, op, baseline_op=bop or "", baseline_k=float(k) if k else 0.0,
                       optional=optional)
        if b := _RHS_BASE_LEFT.match(rhs):
            return cls(text.strip(), metric, op, baseline_op="*", baseline_k=float(b.group(1)), optional=optional)
        raise InputError(
            f"budget check {text!r}: the limit {rhs!r} is not a number or 'baseline', 'baseline * 1.10', "
            "'baseline + 50'"
        )

    def limit(self, baseline: float | None) -> float | None:
        if not self.uses_baseline:
            return self.value
        if baseline is None:
            return None
        return {"": baseline, "*": baseline * self.baseline_k, "+": baseline + self.baseline_k,
                "-": baseline - self.baseline_k}[self.baseline_op or ""]


@dataclass
class Budget:
    name: str
    filters: dict[str, str]
    checks: list[Check]
    optional: bool = False
    baseline: str | None = None

    def matches(self, m: Measurement) -> bool:
        return all(getattr(m, k) == v or v == "*" for k, v in self.filters.items())


@dataclass
class BudgetFile:
    path: Path | None
    budgets: list[Budget]
    baseline: str = "previous"


def _as_list(value: Any, where: str) -> list[Any]:
    if isinstance(value, (str, dict)):
        return [value]
    if not isinstance(value, list):
        raise InputError(f"{where}: 'checks' must be a list of strings like 'latency_ms.p90 <= 700'")
    return value


def parse_budgets(data: dict[str, Any], path: Path | None = None) -> BudgetFile:
    where = str(path) if path else "budgets"
    defaults = data.get("defaults", {})
    unknown = set(defaults) - set(FILTERS) - {"baseline", "optional"}
    if unknown:
        raise InputError(f"{where}: unknown key(s) in [defaults]: {', '.join(sorted(unknown))}")
    raw = data.get("budget", data.get("budgets", []))
    if isinstance(raw, dict):
        raw = [raw]
    if not raw:
        raise InputError(f"{where}: no budgets; add [[budget]] tables with model/target/checks")
    budgets = []
    for i, b in enumerate(raw):
        if not isinstance(b, dict):
            raise InputError(f"{where}: budget #{i + 1} is not a table")
        unknown = set(b) - set(FILTERS) - {"name", "checks", "optional", "baseline"}
        if unknown:
            raise InputError(f"{where}: budget #{i + 1} has unknown key(s) {', '.join(sorted(unknown))}; "
                             f"use {', '.join(FILTERS)}, name, checks, optional, baseline")
        filters = {k: str(b.get(k, defaults.get(k))) for k in FILTERS if b.get(k, defaults.get(k)) is not None}
        optional = bool(b.get("optional", defaults.get("optional", False)))
        checks = []
        for c in _as_list(b.get("checks", []), f"{where} budget #{i + 1}"):
            if isinstance(c, dict):
                if "check" not in c:
                    raise InputError(f"{where}: a check table needs check = '...'")
                checks.append(Check.parse(str(c["check"]), optional=bool(c.get("optional", optional))))
            else:
                checks.append(Check.parse(str(c), optional=optional))
        if not checks:
            raise InputError(f"{where}: budget #{i + 1} has no checks")
        name = str(b.get("name") or "/".join(filters.get(k, "*") for k in ("model", "target", "device")))
        budgets.append(Budget(name, filters, checks, optional, b.get("baseline")))
    return BudgetFile(path, budgets, str(defaults.get("baseline", "previous")))


def load_budgets(path: Path | str) -> BudgetFile:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such budgets file")
    return parse_budgets(read_toml(path, "budgets file"), path)


# ------------------------------------------------------------------------------ gate

@dataclass
class CheckResult:
    budget: str
    check: str
    metric: str
    op: str
    status: str                     # "pass" | "fail" | "missing" | "skipped"
    model: str | None = None
    target: str | None = None
    runtime: str | None = None
    device: str | None = None
    value: float | None = None
    limit: float | None = None
    margin: float | None = None     # headroom in the metric's unit (negative = over budget)
    margin_pct: float | None = None
    measurement_id: int | None = None
    measured_at: str | None = None
    commit: str | None = None
    baseline_value: float | None = None
    baseline_id: int | None = None
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.status in ("fail", "missing")


@dataclass
class GateReport:
    results: list[CheckResult] = field(default_factory=list)
    budgets_file: str | None = None
    results_store: str | None = None

    @property
    def passed(self) -> bool:
        return not any(r.failed for r in self.results)

    @property
    def counts(self) -> dict[str, int]:
        c = {"pass": 0, "fail": 0, "missing": 0, "skipped": 0}
        for r in self.results:
            c[r.status] = c.get(r.status, 0) + 1
        return c

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "counts": self.counts, "budgets_file": self.budgets_file,
                "results_store": self.results_store, "checks": [asdict(r) for r in self.results]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def to_junit_xml(self) -> str:
        c = self.counts
        suite = ET.Element("testsuite", name="edge-isp gate", tests=str(len(self.results)),
                           failures=str(c["fail"]), errors=str(c["missing"]), skipped=str(c["skipped"]))
        for r in self.results:
            cls = ".".join(x for x in (r.model, r.target, r.runtime, r.device) if x) or r.budget
            case = ET.SubElement(suite, "testcase", classname=cls, name=r.check)
            if r.status == "fail":
                ET.SubElement(case, "failure", message=r.message, type="BudgetExceeded").text = r.message
            elif r.status == "missing":
                ET.SubElement(case, "error", message=r.message, type="NoResult").text = r.message
            elif r.status == "skipped":
                ET.SubElement(case, "skipped", message=r.message)
            else:
                ET.SubElement(case, "system-out").text = r.message
        ET.indent(suite)
        return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def _load_measurements(source: Path | str | None) -> list[Measurement]:
    if source is None:
        return ResultsStore().query()
    p = Path(source)
    if p.suffix.lower() == ".json":
        if not p.is_file():
            raise InputError(f"{p}: no such results export")
        return from_json(p.read_text())
    if not p.exists():
        raise InputError(f"{p}: no such results store; run 'edge-isp bench' first or pass --results")
    return ResultsStore(p).query()


def _series(m: Measurement) -> tuple[str, str, str, str]:
    return (m.model, m.target, m.runtime, m.device)


def _order(m: Measurement) -> tuple[str, int]:
    return (m.created, m.id or 0)


class _Baselines:
    """Resolves a baseline measurement for (series, metric, current measurement)."""

    def __init__(self, rows: list[Measurement], base_dir: Path | None, override: str | None) -> None:
        self.rows = rows
        self.base_dir = base_dir
        self.override = override
        self._files: dict[str, list[Measurement]] = {}
        self.missing: set[str] = set()

    def find(self, spec: str | None, series: tuple[str, ...], metric: str, current: Measurement) -> Measurement | None:
        spec = self.override or spec or "previous"
        if spec == "previous":
            older = [m for m in self.rows if _series(m) == series and metric in m.metrics
                     and _order(m) < _order(current)]
            return max(older, key=_order) if older else None
        if spec.startswith("commit:"):
            sha = spec.split(":", 1)[1]
            same = [m for m in self.rows if _series(m) == series and metric in m.metrics
                    and (m.commit or "").startswith(sha)]
            return max(same, key=_order) if same else None
        if spec.startswith("id:"):
            want = int(spec.split(":", 1)[1])
            return next((m for m in self.rows if m.id == want), None)
        path = Path(spec.removeprefix("file:"))
        if not path.is_absolute() and self.base_dir is not None and not path.exists():
            path = self.base_dir / path
        key = str(path)
        if key not in self._files:
            try:
                self._files[key] = _load_measurements(path)
            except InputError:          # e.g. the first run on main: no baseline export yet
                self._files[key] = []
                self.missing.add(key)
        cands = [m for m in self._files[key] if _series(m) == series and metric in m.metrics]
        return max(cands, key=_order) if cands else None


def _fmt(v: float | None) -> str:
    return "?" if v is None else f"{v:.4g}"


def evaluate(budgets: BudgetFile, measurements: list[Measurement], baseline: str | None = None) -> GateReport:
    """Check the newest measurement of each matching series against every budget."""
    report = GateReport(budgets_file=str(budgets.path) if budgets.path else None)
    base_dir = budgets.path.parent if budgets.path else None
    baselines = _Baselines(measurements, base_dir, baseline)
    for b in budgets.budgets:
        matching = [m for m in measurements if b.matches(m)]
        for chk in b.checks:
            with_metric = [m for m in matching if chk.metric in m.metrics]
            latest: dict[tuple[str, ...], Measurement] = {}
            for m in sorted(with_metric, key=_order):
                latest[_series(m)] = m
            if not latest:
                what = ", ".join(f"{k}={v}" for k, v in b.filters.items()) or "any"
                why = (f"no stored result has {chk.metric!r}" if matching else "no stored result matches")
                status = "skipped" if chk.optional else "missing"
                report.results.append(CheckResult(
                    budget=b.name, check=chk.text, metric=chk.metric, op=chk.op, status=status,
                    model=b.filters.get("model"), target=b.filters.get("target"), runtime=b.filters.get("runtime"),
                    device=b.filters.get("device"),
                    message=f"{why} ({what}){'; optional, not failed' if chk.optional else ''}"))
                continue
            for series, m in latest.items():
                value = m.metrics[chk.metric]
                res = CheckResult(budget=b.name, check=chk.text, metric=chk.metric, op=chk.op, status="pass",
                                  model=m.model, target=m.target, runtime=m.runtime, device=m.device, value=value,
                                  measurement_id=m.id, measured_at=m.created, commit=m.commit)
                base_m = None
                if chk.uses_baseline:
                    base_m = baselines.find(b.baseline or budgets.baseline, series, chk.metric, m)
                    if base_m is None:
                        res.status = "skipped" if chk.optional else "missing"
                        spec = baseline or b.baseline or budgets.baseline
                        gone = [k for k in baselines.missing if spec.removeprefix("file:") in k]
                        res.message = (f"no baseline for {chk.metric} ({spec}) of {'/'.join(series)}"
                                       + (f"; the baseline file {gone[0]} does not exist" if gone else ""))
                        report.results.append(res)
                        continue
                    res.baseline_value, res.baseline_id = base_m.metrics[chk.metric], base_m.id
                limit = chk.limit(res.baseline_value)
                res.limit = limit
                ok = _OPS[chk.op](value, limit)
                if chk.op in ("<=", "<"):
                    res.margin = limit - value
                elif chk.op in (">=", ">"):
                    res.margin = value - limit
                else:
                    res.margin = -abs(value - limit)
                res.margin_pct = 100.0 * res.margin / abs(limit) if limit else None
                res.status = "pass" if ok else "fail"
                base = f" (baseline {_fmt(res.baseline_value)})" if base_m is not None else ""
                res.message = (f"{chk.metric} = {_fmt(value)} {'meets' if ok else 'breaks'} {chk.op} {_fmt(limit)}{base}; "
                               f"margin {_fmt(res.margin)}" + (f" ({res.margin_pct:+.1f}%)" if res.margin_pct is not None else ""))
                report.results.append(res)
    return report


def gate(budgets: Path | str | BudgetFile, results: Path | str | None = None, baseline: str | None = None,
         junit: Path | str | None = None, json_path: Path | str | None = None) -> GateReport:
    """Evaluate ``budgets`` against the results store (or a JSON export); write reports."""
    from edge_isp._atomic import write_text_atomic

    bf = budgets if isinstance(budgets, BudgetFile) else load_budgets(budgets)
    report = evaluate(bf, _load_measurements(results), baseline=baseline)
    report.results_store = str(results if results is not None else ResultsStore().path)
    if junit is not None:
        write_text_atomic(Path(junit), report.to_junit_xml())
    if json_path is not None:
        write_text_atomic(Path(json_path), report.to_json() + "\n")
    return report


__all__ = ["Budget", "BudgetFile", "Check", "CheckResult", "GateReport", "evaluate", "gate", "load_budgets",
           "parse_budgets"]
