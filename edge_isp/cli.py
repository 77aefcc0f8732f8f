"""The ``edge-isp`` command line: thin over the library (parse, call, render, exit code)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from edge_isp import __version__
from edge_isp.errors import EdgeIspError, InputError

app = typer.Typer(
    help="edge-isp: learned ISP networks from PyTorch to phones and boards, verified at every step.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
)
out = Console()
err = Console(stderr=True)

JsonFlag = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")


def _print_json(data: Any) -> None:
    # Plain print: rich would re-wrap long strings and break the JSON for tools.
    print(json.dumps(data, indent=2, default=str))


def _parse_hw(text: str | None, what: str) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"{what} {text!r} is not HxW (for example 544x960)") from None
    return h, w


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    """``--option key=value`` pairs; values parsed as JSON when they can be (ints, bools)."""
    result: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InputError(f"model option {pair!r} is not key=value (for example level=1)")
        key, value = pair.split("=", 1)
        try:
            result[key] = json.loads(value)
        except json.JSONDecodeError:
            result[key] = value
    return result


@app.command()
def version(as_json: bool = JsonFlag) -> None:
    """Show the versions of edge-isp and the toolchain it finds."""
    from edge_isp.converters.bundle import tool_versions

    versions = tool_versions()
    versions["edge-isp"] = __version__
    if as_json:
        _print_json(versions)
        return
    for name, ver in versions.items():
        out.print(f"{name:16s} {ver}")


@app.command()
def models(as_json: bool = JsonFlag) -> None:
    """List the registered ISP models with their exact parameter counts."""
    from edge_isp.models import count_params, create, list_models, model_info

    rows = []
    for name in list_models():
        info = model_info(name)
        params = count_params(create(name, **info.reference_options))
        rows.append({
            "name": name, "params": params, "reference_params": info.reference_params,
            "input": "packed Bayer (N,4,H/2,W/2)", "output_scale": info.output_scale,
            "default_input_size": "x".join(map(str, info.default_input_size)),
            "summary": info.summary, "notes": info.notes,
        })
    if as_json:
        _print_json(rows)
        return
    table = Table(title="edge-isp models")
    for col in ("name", "params", "output", "default input", "notes"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], f"{r['params']:,}", f"x{r['output_scale']:g} of mosaic",
                      r["default_input_size"], r["summary"])
    out.print(table)


@app.command()
def targets(as_json: bool = JsonFlag) -> None:
    """List the conversion targets."""
    from dataclasses import asdict

    from edge_isp.converters import list_targets

    rows = [asdict(t) for t in list_targets()]
    if as_json:
        _print_json(rows)
        return
    table = Table(title="edge-isp targets")
    for col in ("target", "format", "precision", "I/O", "runtime", "support table", "min PSNR dB"):
        table.add_column(col)
    for t in list_targets():
        table.add_row(t.name, t.format, t.precision, t.io_dtype, t.runtime, t.support_table, f"{t.min_psnr_db:g}")
    out.print(table)


@app.command()
def convert(
    model: Optional[str] = typer.Argument(None, help="Registered model (default: the built-in default model)."),
    target: str = typer.Option("nnapi-int8", "--target", "-t", help="Target name; see 'edge-isp targets'."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="State-dict checkpoint for the model."),
    input_size: Optional[str] = typer.Option(None, "--input-size", help="RAW mosaic HxW, e.g. 544x960."),
    calib: Optional[Path] = typer.Option(None, "--calib", help="Folder of RAW files for calibration and verification."),
    calib_samples: int = typer.Option(16, "--calib-samples", help="Calibration crops."),
    verify_samples: int = typer.Option(4, "--verify-samples", help="Held-out crops for verification."),
    min_psnr: Optional[float] = typer.Option(None, "--min-psnr", help="Override the PSNR (dB) the artifact must reach vs PyTorch."),
    keep_float: list[str] = typer.Option([], "--keep-float", help="Leave these ops in float in INT8 ('norm' = normalisation ops, or op types)."),
    per_tensor: bool = typer.Option(False, "--per-tensor", help="Per-tensor instead of per-channel INT8 weights."),
    io_dtype: Optional[str] = typer.Option(None, "--io-dtype", help="int8 or uint8 model I/O for INT8 TFLite targets."),
    nncf_preset: str = typer.Option("mixed", "--nncf-preset", help="OpenVINO INT8: mixed or performance."),
    layer_report: bool = typer.Option(False, "--layer-report", help="Report the INT8 layers that lose the most."),
    option: list[str] = typer.Option([], "--option", "-O", help="Model option key=value (repeatable)."),
    seed: int = typer.Option(0, "--seed"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Bundle folder to write."),
    as_json: bool = JsonFlag,
) -> None:
    """Convert a model for a target, verify it against PyTorch, and write a bundle."""
    from edge_isp.converters.pipeline import DEFAULT_MODEL, ConvertOptions
    from edge_isp.converters.pipeline import convert as run_convert

    if io_dtype not in (None, "int8", "uint8"):
        raise InputError(f"--io-dtype {io_dtype!r} is not int8 or uint8")
    opts = ConvertOptions(
        model=model or DEFAULT_MODEL, target=target, model_options=_parse_options(option), weights=weights,
        input_size=_parse_hw(input_size, "--input-size"), calib_dir=calib, calib_samples=calib_samples,
        verify_samples=verify_samples, seed=seed, min_psnr_db=min_psnr, keep_float=tuple(keep_float),
        per_channel=not per_tensor, io_dtype=io_dtype, nncf_preset=nncf_preset, layer_report=layer_report,
        output=output,
    )
    if as_json:
        result = run_convert(opts)
        _print_json(result.manifest)
        return
    with err.status("converting") as status:
        result = run_convert(opts, progress=lambda s: status.update(f"[bold]{opts.model} -> {opts.target}[/]: {s}"))
    m = result.manifest
    table = Table(title=f"{m['model']['name']} -> {m['target']['name']}")
    for col in ("target", "artifact", "size", "PSNR vs PyTorch", "max abs err", "time", "peak RSS"):
        table.add_column(col)
    v = m["verification"]
    table.add_row(m["target"]["name"], str(result.bundle.model_file), f"{m['artifact']['size_bytes'] / 1e6:.2f} MB",
                  f"{v['psnr_db']:.1f} dB (>= {v['min_psnr_db']:g})", f"{v['max_abs_err']:.2e}",
                  f"{m['conversion']['time_s']:.1f} s", f"{m['conversion']['peak_rss_mb']:.0f} MB")
    out.print(table)
    if m.get("layer_errors"):
        lt = Table(title="INT8 layers with the largest error (RMSE in quantisation steps)")
        for col in ("op", "tensor", "RMSE/scale", "max abs err"):
            lt.add_column(col, overflow="fold")
        for row in m["layer_errors"]:
            lt.add_row(row["op"], row["tensor"][:60], f"{row['rmse_over_scale']:.2f}", f"{row['max_abs_error']:.3g}")
        out.print(lt)


def main() -> None:
    """Console entry point: EdgeIspError -> one line on stderr and a non-zero exit."""
    try:
        app()
    except EdgeIspError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted; nothing half-written was left behind")
        sys.exit(130)


if __name__ == "__main__":
    main()
