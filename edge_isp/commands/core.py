"""Core verbs: version, models, targets."""

from __future__ import annotations

import typer
from rich.table import Table

from edge_isp import __version__
from edge_isp.commands._common import JsonFlag, out, print_json

app = typer.Typer()


@app.command()
def version(as_json: bool = JsonFlag) -> None:
    """Show the versions of edge-isp and the toolchain it finds."""
    from edge_isp.converters.bundle import tool_versions

    versions = tool_versions()
    versions["edge-isp"] = __version__
    if as_json:
        print_json(versions)
        return
    for name, ver in versions.items():
        out.print(f"{name:16s} {ver}")


@app.command()
def models(as_json: bool = JsonFlag) -> None:
    """List the registered ISP models with their exact parameter counts and compute cost.

    GFLOP/MP is measured on the graph (edge_isp.models.flops): FLOPs =
    2 x the multiply-accumulates of every conv / linear / matmul in one
    forward pass, per megapixel of the RAW mosaic (= of the output photo:
    every model here outputs full resolution), probed on a 1088x1920
    mosaic. Norms, activations, resizes and elementwise ops are not counted.
    """
    from edge_isp.models import list_models, model_info, params_of
    from edge_isp.models.flops import model_flops

    rows = []
    for name in list_models():
        info = model_info(name)
        params = params_of(name, **info.reference_options)
        cost = model_flops(name, **info.reference_options)
        rows.append({
            "name": name, "params": params, "reference_params": info.reference_params,
            "gflop_per_raw_mp": round(cost.gflop_per_raw_mp, 3),
            "flop_probe_mosaic": "x".join(map(str, cost.mosaic_hw)),
            "input": "packed Bayer (N,4,H/2,W/2)", "output_scale": info.output_scale,
            "default_input_size": "x".join(map(str, info.default_input_size)),
            "summary": info.summary, "notes": info.notes,
        })
    if as_json:
        print_json(rows)
        return
    table = Table(title="edge-isp models")
    table.add_column("name", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("reference", no_wrap=True)
    table.add_column("GFLOP/MP RAW\n(2xMAC)", justify="right", no_wrap=True)
    table.add_column("input", no_wrap=True)
    table.add_column("summary", overflow="fold")
    for r in rows:
        ref = "-" if r["reference_params"] is None else ("exact" if r["reference_params"] == r["params"] else f"{r['reference_params']:,}")
        gflop = r["gflop_per_raw_mp"]
        table.add_row(r["name"], f"{r['params']:,}", ref, f"{gflop:,.1f}" if gflop < 1000 else f"{gflop:,.0f}",
                      r["default_input_size"], r["summary"])
    out.print(table)


@app.command()
def targets(as_json: bool = JsonFlag) -> None:
    """List the conversion targets."""
    from dataclasses import asdict

    from edge_isp.converters import list_targets

    rows = [asdict(t) for t in list_targets()]
    if as_json:
        print_json(rows)
        return
    table = Table(title="edge-isp targets")
    for col in ("target", "format", "precision", "I/O", "runtime", "support table", "min PSNR dB", "default fit"):
        table.add_column(col, no_wrap=col == "target")
    for t in list_targets():
        fit = ", ".join(f"{k}={v}" for k, v in t.fit.items()) or "-"
        table.add_row(t.name, t.format, t.precision, t.io_dtype, t.runtime, t.support_table, f"{t.min_psnr_db:g}", fit)
    out.print(table)
