"""``edge-isp check``: which ops the target's accelerator takes, which fall back, and why."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from edge_isp.commands._common import JsonFlag, out, print_json

app = typer.Typer()

_VERDICT_STYLE = {"full": "green", "partial": "yellow", "none": "red"}


@app.command()
def check(
    artifact: Path = typer.Argument(..., help="Bundle folder (from 'edge-isp convert') or a .tflite / .xml / .onnx model."),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="Target to check for (default: the bundle's)."),
    api_level: Optional[str] = typer.Option(
        None, "--api-level", help="Android API level (27-35) or NNAPI feature level FL1..FL8 (default: the target's)."),
    device: Optional[str] = typer.Option(None, "--device", help="Device profile name or alias (API level, accelerator)."),
    accelerator: Optional[str] = typer.Option(
        None, "--accelerator", help="NNAPI accelerator name (nnapi_accelerator_name), e.g. google-edgetpu."),
    max_partitions: Optional[int] = typer.Option(
        None, "--max-partitions", help="Delegated partitions kept (default: the delegate's; 0 = no limit)."),
    platform: Optional[str] = typer.Option(
        None, "--platform", "--soc", help="SoC for vendor-compiler targets (rknn-*: rk3576, rv1106 ...); compiles again."),
    profiles: Optional[Path] = typer.Option(None, "--profiles", help="Folder with your own op tables (ops/*.toml)."),
    require: Optional[str] = typer.Option(
        None, "--require", help="Exit non-zero unless delegation is at least this: full | partial | any."),
    show_ops: bool = typer.Option(False, "--ops", help="List every op, not only the rejected ones."),
    as_json: bool = JsonFlag,
) -> None:
    """Check a converted model against its target's op-support table."""
    from edge_isp.converters.check import REQUIRE_LEVELS, check_bundle, require_delegation
    from edge_isp.errors import InputError

    if require is not None and require.lower() not in REQUIRE_LEVELS:
        raise InputError(f"--require {require!r} must be one of {', '.join(REQUIRE_LEVELS)}")
    level: int | str | None = int(api_level) if api_level and api_level.isdigit() else api_level
    report = check_bundle(artifact, target=target, api_level=level, accelerator=accelerator,
                          profiles_dir=profiles, device=device, max_partitions=max_partitions, platform=platform)
    if as_json:
        print_json(report.to_dict())
    else:
        render(report, show_ops)
    if require is not None:
        require_delegation(report, require.lower())


def _render_comparison(report) -> None:  # noqa: ANN001 - CheckReport
    """The vendor compiler's placement next to the static table's verdict for the same ops."""
    groups = report.disagreements()
    if not groups:
        out.print(f"static table {report.compared_table}: same placement for every op", highlight=False)
        return
    ct = Table(title=f"vendor compiler vs static table {report.compared_table} (where they disagree)",
               title_justify="left")
    for col in ("op", "n", "where (op #)", "compiler", "table", "why"):
        ct.add_column(col, overflow="fold")
    for g in groups:
        idx = ", ".join(f"#{i}" for i in g["ops"][:5]) + (" ..." if len(g["ops"]) > 5 else "")
        why = g["table_reason"] if g["table"] == "CPU" else g["compiler_reason"]
        ct.add_row(g["op"], str(g["count"]), idx, g["compiler"], g["table"], escape(why or ""))
    out.print(ct)


def render(report, show_ops: bool = False) -> None:  # noqa: ANN001 - CheckReport, imported lazily
    style = _VERDICT_STYLE[report.verdict]
    where = report.table_title + (f" at {report.level_label}" if report.level is not None else "")
    if report.accelerator:
        where += f", accelerator {report.accelerator}"
    if report.device:
        where += f", device {report.device}"
    out.print(f"[bold]{report.target}[/] on {where}: [bold {style}]{report.verdict} delegation[/]")
    counts = Table(show_header=True, title=str(report.model_file), title_justify="left")
    for col in ("ops", "delegated", "on CPU", "partitions", "delegated partitions", "partition limit"):
        counts.add_column(col, justify="right")
    counts.add_row(str(report.ops_total), str(report.ops_delegated), str(report.ops_on_cpu),
                   str(len(report.partitions)), str(report.delegated_partitions), str(report.max_partitions or "none"))
    out.print(counts)
    if report.partitions and report.ops_on_cpu:
        pt = Table(title="partitions (execution order)", title_justify="left")
        for col in ("#", "runs on", "ops", "first op", "last op"):
            pt.add_column(col)
        rows = report.partitions if len(report.partitions) <= 15 else [p for p in report.partitions if p.delegated]
        for p in rows:
            kind = "[green]accelerator[/]" if p.delegated else ("CPU (over the limit)" if p.dropped else "CPU")
            pt.add_row(str(p.index), kind, str(len(p.ops)), f"#{p.ops[0]}", f"#{p.ops[-1]}")
        if len(rows) < len(report.partitions):
            pt.add_row("...", f"{len(report.partitions) - len(rows)} CPU partitions", "", "", "")
        out.print(pt)
    groups = report.rejected_groups()
    if groups:
        title = "left on the CPU by the vendor compiler" if report.compared_table else "refused by the delegate"
        rt = Table(title=title, title_justify="left")
        for col in ("op", "n", "where (op #)", "why"):
            rt.add_column(col, overflow="fold")
        fits: dict[str, list[str]] = {}
        for g in groups:
            idx = ", ".join(f"#{i}" for i in g["ops"][:5]) + (" ..." if len(g["ops"]) > 5 else "")
            rt.add_row(g["op"], str(g["count"]), idx, escape(g["reason"] or ""))
            if g["fit"]:
                fits.setdefault(g["fit"], []).append(g["op"])
        out.print(rt)
        for fit, ops in fits.items():
            out.print(f"[cyan]fit[/] ({', '.join(dict.fromkeys(ops))}): {escape(fit)}", highlight=False)
    if report.limited:
        dropped = sum(1 for p in report.partitions if p.dropped)
        out.print(f"{len(report.limited)} supported ops in {dropped} partitions beyond the delegate's limit of "
                  f"{report.max_partitions} run on the CPU (--max-partitions 0 lifts the limit, as "
                  "benchmark_model does by default)", highlight=False)
    if report.compared_table:
        _render_comparison(report)
    if show_ops:
        ot = Table(title="all ops", title_justify="left")
        cols = ["#", "op", "v", "inputs", "runs on", "partition", "note"]
        if report.compared_table:
            cols.insert(5, "static table")
        for col in cols:
            ot.add_column(col, overflow="fold")
        for o in report.ops:
            row = [str(o.index), o.op, str(o.version), "; ".join(o.inputs[:3]),
                   "accelerator" if o.delegated else "CPU", str(o.partition), escape(o.note or o.reason or "")]
            if report.compared_table:
                table = "-" if o.table_delegated is None else ("accelerator" if o.table_delegated else "CPU")
                row.insert(5, f"[yellow]{table}[/]" if o.disagrees else table)
            ot.add_row(*row)
        out.print(ot)
    for note in report.notes:
        out.print(f"[dim]note: {escape(note)}[/]", highlight=False)
