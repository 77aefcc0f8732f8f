"""``edge-isp gate``: check the latest results against budgets; non-zero exit on failure."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from edge_isp.commands._common import JsonFlag, err, out, print_json

app = typer.Typer()

_STYLE = {"pass": "green", "fail": "red", "missing": "red", "skipped": "yellow"}


@app.command()
def gate(
    budgets: Path = typer.Option(Path("budgets.toml"), "--budgets", "-b", help="Budgets TOML file."),
    results: Optional[Path] = typer.Option(None, "--results", "-r", help="Results store or JSON export (default $EDGE_ISP_RESULTS or ./edge-isp-results.sqlite)."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="'previous', 'commit:<sha>', or a results store / JSON export for 'baseline' checks."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Write JUnit XML here."),
    json_out: Optional[Path] = typer.Option(None, "--json-out", help="Write the JSON report here."),
    as_json: bool = JsonFlag,
) -> None:
    """Evaluate budgets (latency, memory, quality, regressions) on stored results: pass/fail for CI."""
    from edge_isp._atomic import ensure_writable_file
    from edge_isp.budgets import gate as run_gate

    for path, flag in ((junit, "--junit"), (json_out, "--json-out")):
        if path is not None:
            ensure_writable_file(path, flag)  # before the work, not after it
    report = run_gate(budgets, results=results, baseline=baseline, junit=junit, json_path=json_out)
    if as_json:
        print_json(report.to_dict())
    else:
        table = Table(title=f"budgets {budgets} vs {report.results_store}")
        for col in ("status", "model", "target", "runtime", "device", "check", "value", "limit", "margin"):
            table.add_column(col, justify="right" if col in ("value", "limit", "margin") else "left")
        for r in report.results:
            margin = "" if r.margin is None else f"{r.margin:+.4g}" + (f" ({r.margin_pct:+.1f}%)" if r.margin_pct is not None else "")
            table.add_row(f"[{_STYLE[r.status]}]{r.status.upper()}[/]", r.model or "*", r.target or "*",
                          r.runtime or "*", r.device or "*", r.check,
                          "" if r.value is None else f"{r.value:.4g}", "" if r.limit is None else f"{r.limit:.4g}", margin)
        out.print(table)
        for r in report.results:
            if r.status in ("missing", "skipped"):
                err.print(f"[{_STYLE[r.status]}]{r.status}:[/] {r.budget}: {r.check}: {r.message}", highlight=False, soft_wrap=True)
        c = report.counts
        verdict = "[green]PASSED[/]" if report.passed else "[red]FAILED[/]"
        out.print(f"{verdict}: {c['pass']} passed, {c['fail']} failed, {c['missing']} without a result, "
                  f"{c['skipped']} optional skipped")
    if not report.passed:
        raise typer.Exit(1)
