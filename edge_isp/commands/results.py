"""``edge-isp results``: list, filter and export stored measurements."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from edge_isp.commands._common import JsonFlag, out
from edge_isp._names import did_you_mean
from edge_isp.errors import InputError, UsageError

app = typer.Typer()

_SHOWN = ("latency_ms.median", "latency_ms.p90", "throughput_fps", "peak_rss_mb", "psnr_db", "power_w")


@app.command()
def results(
    store: Optional[Path] = typer.Option(None, "--results", "-r", help="Results store (default $EDGE_ISP_RESULTS or ./edge-isp-results.sqlite)."),
    model: Optional[str] = typer.Option(None, "--model", "-m"),
    target: Optional[str] = typer.Option(None, "--target", "-t"),
    runtime: Optional[str] = typer.Option(None, "--runtime"),
    device: Optional[str] = typer.Option(None, "--device", "-d"),
    kind: Optional[str] = typer.Option(None, "--kind", help="bench, profile, eval or estimate."),
    commit: Optional[str] = typer.Option(None, "--commit"),
    since: Optional[str] = typer.Option(None, "--since", help="ISO date/time (UTC), e.g. 2026-11-01."),
    latest: bool = typer.Option(False, "--latest", help="Only the newest row of each model/target/runtime/device/kind."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Only the newest N rows."),
    metric: list[str] = typer.Option([], "--metric", help="Metric columns to show (repeatable)."),
    export: Optional[str] = typer.Option(None, "--export", help="csv or json: print (or write with -o) every field."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="File to write the export to."),
    as_json: bool = JsonFlag,
) -> None:
    """List, filter and export the results store (bench, device profiles, evals)."""
    from edge_isp._atomic import ensure_writable_file, write_text_atomic
    from edge_isp.results import KINDS, ResultsStore, to_csv, to_json

    if kind is not None and kind not in KINDS:
        raise InputError(f"--kind {kind!r} is not one of {', '.join(KINDS)}")
    if output is not None:
        if export is None and not as_json:
            raise UsageError("-o/--output writes an export: add --export csv or --export json")
        ensure_writable_file(output, "--output")
    rs = ResultsStore(store)
    rows = rs.query(model=model, target=target, device=device, kind=kind, latest=latest, runtime=runtime,
                    commit=commit, since=since, limit=limit)
    if as_json and export is None:
        export = "json"
    if export is not None:
        if export not in ("csv", "json"):
            raise InputError(f"--export {export!r}: use csv or json")
        text = to_csv(rows) if export == "csv" else to_json(rows) + "\n"
        if output is not None:
            write_text_atomic(output, text)
            out.print(f"wrote {len(rows)} row(s) to {output}", style="dim")
        else:
            print(text, end="")
        return
    if not rows:
        out.print(f"no results in {rs.path} match" if rs.path.exists() else f"no results store at {rs.path} yet "
                  "(run 'edge-isp bench' to make one)")
        return
    known = sorted({k for r in rows for k in r.metrics})
    for name in metric:
        if name not in known:
            raise InputError(f"--metric {name!r}: no matching row has that metric{did_you_mean(name, known)}; "
                             f"these rows have: {', '.join(known)}")
    shown = list(metric) or [k for k in _SHOWN if any(k in r.metrics for r in rows)]
    table = Table(title=f"{len(rows)} result(s) in {rs.path}")
    for col in ("id", "created", "kind", "model", "target", "runtime", "device", "commit", *shown):
        table.add_column(col, justify="right" if col in shown or col == "id" else "left")
    for r in rows:
        table.add_row(str(r.id), r.created[:19].replace("T", " "), r.kind, r.model, r.target, r.runtime, r.device,
                      (r.commit or "")[:8], *[f"{r.metrics[k]:.4g}" if k in r.metrics else "" for k in shown])
    out.print(table)
