"""The model matrix: every registry model x the main targets, measured by real conversions.

One cell is what ``edge-isp convert MODEL --target T`` gives a user at the model's default
size: does it convert (or why not), PSNR vs PyTorch (mean and worst held-out crop), ops
delegated per device profile (the static op-support check), artifact size, conversion time
and peak memory (conversion process and its toolchain workers). Each conversion runs in its
own process so its peak memory is its own.

The table is checked in (``docs/model_matrix.json`` and ``docs/MODEL_MATRIX.md``), rebuilt by
``scripts/model_matrix.py``; CI recomputes the cells it can afford and fails when one is
worse than the table (``regressions``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edge_isp._atomic import write_text_atomic
from edge_isp.errors import InputError

SCHEMA = "edge-isp/model-matrix@1"
MATRIX_TARGETS = ("nnapi-int8", "nnapi-fp16", "gpu-fp16", "cpu-int8", "openvino-int8")
# Device profiles each TFLite cell is checked against, next to the target's own default level:
# the newest Pixel and the SoC of the PyNET-V2 Mobile paper.
MATRIX_DEVICES = ("pixel-8", "dimensity-9000")
TARGET_LEVEL = "target"       # the column of the target's own default level (no device)
# What CI tolerates before calling a cell worse: INT8 calibration and float kernels differ a
# little between CPUs, so PSNR is compared with a margin; delegation must not drop at all.
PSNR_TOLERANCE_DB = {"int8": 1.5, "fp16": 1.0, "fp32": 1.0}


@dataclass
class Cell:
    model: str
    target: str
    ok: bool
    reason: str = ""                            # why it does not convert (one line)
    psnr_mean_db: float | None = None
    psnr_worst_db: float | None = None
    size_mb: float | None = None
    time_s: float | None = None
    peak_rss_mb: float | None = None
    input_size: str = ""
    tiling: str = ""
    route: str = ""
    weights: str = ""
    delegated: dict[str, list[int]] = field(default_factory=dict)   # profile -> [delegated, total]
    # Convert flags the cell needed: the tool's own advice after the plain conversion failed
    # (``note`` says how it failed). Empty: `edge-isp convert MODEL --target T` as it is.
    options: str = ""
    note: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cell:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if not isinstance(known.get("model"), str) or not isinstance(known.get("target"), str):
            raise InputError("a model-matrix cell without model/target: regenerate the table with scripts/model_matrix.py")
        return cls(**known)


def _delegation(bundle: Path, target: str) -> dict[str, list[int]]:
    from edge_isp.converters.check import check_bundle
    from edge_isp.converters.targets import get_target

    out: dict[str, list[int]] = {}
    report = check_bundle(bundle)
    out[TARGET_LEVEL] = [report.ops_delegated, report.ops_total]
    if get_target(target).format == "tflite":
        for device in MATRIX_DEVICES:
            r = check_bundle(bundle, device=device)
            out[device] = [r.ops_delegated, r.ops_total]
    return out


# Advice a failed conversion gives that the matrix follows (one retry with these flags):
# what a user reading the error would do next.
ADVISED_RETRIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("--keep-float norm", ("--keep-float", "norm")),
)


def measure_cell(model: str, target: str, input_size: str | None = None,
                 extra_args: Sequence[str] = ()) -> Cell:
    """Convert in a child process (as a user would) and read the bundle it wrote. A failure
    whose message advises one of ``ADVISED_RETRIES`` is converted once more that way."""
    return follow_advice(_convert_cell(model, target, input_size, extra_args), input_size, extra_args)


def pending_advice(cell: Cell) -> tuple[str, tuple[str, ...]] | None:
    """The advice of ``cell``'s failure that was not followed yet, as (advice, flags)."""
    if cell.ok or cell.note:
        return None
    return next(((advice, flags) for advice, flags in ADVISED_RETRIES if advice in cell.reason), None)


def follow_advice(cell: Cell, input_size: str | None = None, extra_args: Sequence[str] = ()) -> Cell:
    """``cell`` converted once more as its failure advises (``ADVISED_RETRIES``), or as it is."""
    pending = pending_advice(cell)
    if pending is None or set(pending[1]) <= set(extra_args):
        return cell
    advice, flags = pending
    retried = _convert_cell(cell.model, cell.target, input_size, (*extra_args, *flags))
    retried.options, retried.note = " ".join(flags), f"plain: {cell.reason[:200]}"
    return retried if retried.ok else replace(cell, note=f"{advice}: {retried.reason[:200]}")


def _convert_cell(model: str, target: str, input_size: str | None, extra_args: Sequence[str]) -> Cell:
    with tempfile.TemporaryDirectory(prefix="edge-isp-matrix-") as tmp:
        bundle = Path(tmp) / "bundle"
        cmd = [sys.executable, "-m", "edge_isp.cli", "convert", model, "--target", target,
               "-o", str(bundle), "--json", *extra_args]
        if input_size:
            cmd += ["--input-size", input_size]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode:
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            reason = next((ln for ln in reversed(lines) if ln.startswith("error:") or "Error" in ln), lines[-1] if lines else "")
            return Cell(model, target, False, reason=reason.removeprefix("error: ")[:400], time_s=round(wall, 1))
        return cell_from_bundle(bundle)


def cell_from_bundle(bundle: Path) -> Cell:
    """The cell a bundle made by ``edge-isp convert MODEL --target T`` (defaults) stands for;
    delegation is checked now, against the current tables."""
    m = json.loads((Path(bundle) / "manifest.json").read_text())
    model, target = m["model"]["name"], m["target"]["name"]
    v, conv = m["verification"], m["conversion"]
    return Cell(
        model, target, True,
        psnr_mean_db=round(float(v["psnr_db"]), 2), psnr_worst_db=round(float(v["min_sample_psnr_db"]), 2),
        size_mb=round(m["artifact"]["size_bytes"] / 1e6, 2), time_s=round(float(conv["time_s"]), 1),
        peak_rss_mb=round(float(conv["peak_rss_mb"])), input_size="x".join(map(str, m["input"]["mosaic_hw"])),
        tiling=m["tiling"]["mode"], route=(m.get("quantization") or {}).get("route", {}).get("route", ""),
        weights=m["model"].get("weights_kind", ""), delegated=_delegation(Path(bundle), target))


@dataclass
class Matrix:
    cells: list[Cell] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    input_size: str = ""            # one RAW size for every model ("": each model's default)

    def get(self, model: str, target: str) -> Cell | None:
        return next((c for c in self.cells if c.model == model and c.target == target), None)

    def put(self, cell: Cell) -> None:
        self.cells = [c for c in self.cells if (c.model, c.target) != (cell.model, cell.target)] + [cell]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "machine": self.machine, "input_size": self.input_size,
                "cells": [asdict(c) for c in self.cells]}

    @classmethod
    def load(cls, path: Path) -> Matrix:
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read the model matrix {path}: {exc}") from exc
        if not isinstance(d, dict) or d.get("schema") != SCHEMA or not isinstance(d.get("cells"), list):
            raise InputError(f"{path} is not an edge-isp model matrix ({SCHEMA}); regenerate it with scripts/model_matrix.py")
        size = d.get("input_size") or ""
        if not isinstance(size, str):
            raise InputError(f"{path}: input_size must be a string such as 256x256; regenerate it with scripts/model_matrix.py")
        return cls([Cell.from_dict(c) for c in d["cells"]], dict(d.get("machine") or {}), size)

    def save(self, json_path: Path, md_path: Path | None = None) -> None:
        write_text_atomic(Path(json_path), json.dumps(self.to_dict(), indent=1) + "\n")
        if md_path is not None:
            write_text_atomic(Path(md_path), render_markdown(self))


def regressions(table: Matrix, fresh: Iterable[Cell]) -> list[str]:
    """What got worse in ``fresh`` than in the checked-in ``table`` (empty = nothing)."""
    from edge_isp.converters.targets import get_target

    found = []
    for new in fresh:
        old = table.get(new.model, new.target)
        where = f"{new.model} -> {new.target}"
        if old is None or not old.ok:
            continue
        if not new.ok:
            found.append(f"{where}: converted in the table, now fails: {new.reason}")
            continue
        tol = PSNR_TOLERANCE_DB.get(get_target(new.target).precision, 1.0)
        if old.psnr_worst_db is not None and new.psnr_worst_db is not None and new.psnr_worst_db < old.psnr_worst_db - tol:
            found.append(f"{where}: worst PSNR {new.psnr_worst_db:.1f} dB < table {old.psnr_worst_db:.1f} dB - {tol}")
        for profile, (was, _total) in old.delegated.items():
            now = new.delegated.get(profile)
            if now is None or now[0] < was:
                found.append(f"{where}: {profile} delegates {now[0] if now else 'nothing'} ops, table {was}")
    return found


def _fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def render_markdown(matrix: Matrix) -> str:
    """One table per target: a row per model (the checked-in, human-readable view)."""
    from edge_isp.models import list_models

    models = list(dict.fromkeys([*sorted(list_models()), *sorted(c.model for c in matrix.cells)]))
    targets = [t for t in MATRIX_TARGETS if any(c.target == t for c in matrix.cells)]
    targets += sorted({c.target for c in matrix.cells} - set(targets))
    size = f"at {matrix.input_size} (`--input-size {matrix.input_size}`)" if matrix.input_size else "at its default size"
    title = f"# Model matrix at {matrix.input_size}" if matrix.input_size else "# Model matrix"
    lines = [title, "",
             f"Every registry model converted to the main targets {size}, as `edge-isp convert MODEL "
             "--target T` does it (random weights unless the model ships trained ones: the figures are for "
             "numerics, delegation, size and cost, not for pictures). PSNR is the converted artifact vs PyTorch on "
             "held-out RAW crops (mean / worst). Delegated ops are the static op-support check at the target's "
             "own level and on two device profiles. A cell whose plain conversion fails with advice the tool "
             "gives (`--keep-float norm` for INT8 of instance norms) is converted once more that way; the "
             "converts column names the flag. " + (
                 "Two-pass models round the asked size up to their smallest exact window (the size column). "
                 f"Regenerate with `.venv/bin/python scripts/model_matrix.py --input-size {matrix.input_size} --json "
                 "THIS.json --markdown THIS.md` (the files of this table)." if matrix.input_size else
                 "Regenerate with `.venv/bin/python scripts/model_matrix.py`; CI recomputes the small models' cells "
                 "and fails when one is worse than this table."), ""]
    if matrix.machine:
        lines += ["Machine: " + ", ".join(f"{k} {v}" for k, v in matrix.machine.items()), ""]
    missing = [f"{m} -> {t}" for m in models for t in targets if matrix.get(m, t) is None]
    if missing:
        lines += ["Not measured yet (`scripts/model_matrix.py` resumes here): " + ", ".join(missing) + ".", ""]
    pending = [f"{c.model} -> {c.target} ({' '.join(advised[1])})" for c in matrix.cells
               if (advised := pending_advice(c)) is not None]
    if pending:
        lines += ["Advice not followed yet (resuming converts these once more with the flag): "
                  + ", ".join(pending) + ".", ""]
    for target in targets:
        devices = [TARGET_LEVEL, *MATRIX_DEVICES]
        lines += [f"## {target}", "",
                  "| model | converts | size | tiling / route | PSNR mean / worst | " + " | ".join(
                      f"delegated ({d})" for d in devices) + " | artifact | time | peak RSS |",
                  "|---|---|---|---|---|" + "---|" * len(devices) + "---|---|---|"]
        for model in models:
            c = matrix.get(model, target)
            if c is None:
                continue
            if not c.ok:
                lines.append(f"| {model} | no: {c.reason.replace('|', '/')} | | | |" + " |" * len(devices) + " | | |")
                continue
            cells = [f"{c.delegated[d][0]}/{c.delegated[d][1]}" if d in c.delegated else "-" for d in devices]
            how = f"{c.weights}, {c.options}" if c.options else c.weights
            lines.append(f"| {model} | yes ({how}) | {c.input_size} | {c.tiling}{' / ' + c.route if c.route else ''} | "
                         f"{_fmt(c.psnr_mean_db, ' dB')} / {_fmt(c.psnr_worst_db, ' dB')} | " + " | ".join(cells)
                         + f" | {_fmt(c.size_mb, ' MB', 2)} | {_fmt(c.time_s, ' s', 0)} | {_fmt(c.peak_rss_mb, ' MB', 0)} |")
        lines.append("")
    return "\n".join(lines)


def machine_description() -> dict[str, Any]:
    import os

    from edge_isp.bench import machine_info
    from edge_isp.converters.bundle import tool_versions

    machine = machine_info()
    mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30) if hasattr(os, "sysconf") else None
    return {"cpu": machine["cpu"], "cores": machine["logical_cores"], "memory_gib": mem_gb,
            "python": machine["python"], **{k: v for k, v in tool_versions().items() if v}}


def build(models: Sequence[str], targets: Sequence[str], table: Matrix, save: Callable[[Matrix], None],
          resume: bool = True, progress: Callable[[Cell], None] = lambda cell: None,
          input_size: str | None = None, retry_failed: bool = False) -> Matrix:
    """Measure every (model, target) cell not in ``table`` yet (all with ``resume=False``),
    saving after each so an interrupted run keeps what it measured. ``input_size``: one size
    for every model instead of each model's default (a table of its own); ``retry_failed``:
    measure the cells that failed again. A failed cell whose advice was not followed yet
    (measured before ``ADVISED_RETRIES``) gets only the advised conversion."""
    for model in models:
        for target in targets:
            known = table.get(model, target)
            if resume and known is not None and (known.ok or not retry_failed):
                advised = follow_advice(known, input_size)       # a failure measured before advice was followed
                if advised is not known:
                    table.put(advised)
                    save(table)
                    progress(advised)
                continue
            cell = measure_cell(model, target, input_size)
            table.put(cell)
            save(table)
            progress(cell)
    return table
