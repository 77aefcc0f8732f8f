"""``edge-isp convert``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from edge_isp.commands._common import (
    JsonFlag,
    err,
    out,
    parse_hw,
    parse_options,
    print_json,
)
from edge_isp.converters.artifact_formats import DEFAULT_ROUTE, TFLITE_ROUTES
from edge_isp.errors import InputError

app = typer.Typer()


@app.command()
def convert(
    model: Optional[str] = typer.Argument(None, help="Registered model (default: the built-in default model)."),
    target: str = typer.Option("nnapi-int8", "--target", "-t", help="Target name; see 'edge-isp targets'."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="State-dict checkpoint for the model; 'default' = the packaged trained weights. Without it a named model has random weights."),
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
    fit: list[str] = typer.Option([], "--fit", help="Fit rewrite key=value: pixel_shuffle=dcr|deconv, drop_noop_pads=true, split_as_slice=true."),
    require_full: bool = typer.Option(False, "--require-full-delegation", help="Fail unless the target's accelerator takes every op."),
    soc: Optional[str] = typer.Option(None, "--soc", "--platform", help="SoC / platform for vendor-compiler targets (rknn-*: rk3576, rv1106 ...; litert-npu-*: SM8650, MT6989 ...)."),
    raw_option: list[str] = typer.Option([], "--raw-option", help="RAW layout for --calib files, key=value (width=, height=, cfa=, black_level=, white_level=, header_bytes=, crop_even=true, force_cfa=true)."),
    seed: int = typer.Option(0, "--seed"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Bundle folder to write (new, empty, or an earlier bundle with --overwrite)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing bundle at the output folder (never anything else)."),
    verify_photo: list[Path] = typer.Option([], "--verify-photo", help="RAW photo to run whole through the new artifact(s) against the untiled PyTorch model (PSNR, worst tile, seam score); below the bars no bundle is written. Repeatable."),
    max_memory: Optional[str] = typer.Option(None, "--max-memory", help="Working-memory budget of one window, e.g. 512MB: the largest two-pass window that fits is chosen (measured on the model; instead of --input-size)."),
    route: str = typer.Option("auto", "--route", "--via", help="TFLite targets: auto | onnx2tf | litert-torch. litert-torch converts PyTorch directly, FP32/FP16/INT8 ('edge-isp toolchain install litert-torch'); auto takes it when onnx2tf's layout guess is ambiguous at this size."),
    compare_routes: bool = typer.Option(False, "--compare-routes", help="Convert the model through onnx2tf and litert-torch and print both side by side (PSNR, ops delegated, size, host latency); writes no bundle."),
    tiling: str = typer.Option("auto", "--tiling", help="auto | two-pass | blended. two-pass (auto for models that read the whole image, e.g. channel attention or instance norm): a statistics part and a tile part, exact at any photo size."),
    results: Optional[Path] = typer.Option(None, "--results", help="Results store for vendor-compiler estimates (default $EDGE_ISP_RESULTS or ./edge-isp-results.sqlite)."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not record vendor-compiler estimates."),
    as_json: bool = JsonFlag,
) -> None:
    """Convert a model for a target, verify it against PyTorch, and write a bundle."""
    from edge_isp.converters.estimates import record_estimates
    from edge_isp.converters.pipeline import convert as run_convert
    from edge_isp.converters.stages import ConvertOptions
    from edge_isp.models.pretrained import RANDOM_WEIGHTS_WARNING
    from edge_isp.tile_planner import parse_memory

    if io_dtype not in (None, "int8", "uint8"):
        raise InputError(f"--io-dtype {io_dtype!r} is not int8 or uint8")
    opts = ConvertOptions(
        model=model, target=target, model_options=parse_options(option), weights=weights,
        input_size=parse_hw(input_size, "--input-size"), calib_dir=calib, calib_samples=calib_samples,
        verify_samples=verify_samples, seed=seed, min_psnr_db=min_psnr, keep_float=tuple(keep_float),
        per_channel=not per_tensor, io_dtype=io_dtype, nncf_preset=nncf_preset, layer_report=layer_report,
        fit=parse_options(fit, "fit option"), require_full_delegation=require_full,
        raw_layout=parse_options(raw_option, "RAW option"), soc=soc, output=output, overwrite=overwrite,
        tiling=tiling, route=route, verify_photos=tuple(verify_photo),
        max_memory_mb=parse_memory(max_memory) if max_memory is not None else None,
    )
    if compare_routes:
        _compare(opts, as_json)
        return
    if as_json:
        result = run_convert(opts)
        if result.manifest["model"].get("weights_kind") == "random":
            err.print(f"[yellow]warning:[/] {RANDOM_WEIGHTS_WARNING}", highlight=False, soft_wrap=True)
        stored = None if no_store else record_estimates(result.manifest, results)
        print_json({**result.manifest, **({"estimate_row": stored} if stored is not None else {})})
        return
    with err.status("converting") as status:
        result = run_convert(opts, progress=lambda s: status.update(f"[bold]{opts.model or 'default model'} -> {opts.target}[/]: {s}"))
    stored = None if no_store else record_estimates(result.manifest, results)
    m = result.manifest
    table = Table(title=f"{m['model']['name']} -> {m['target']['name']}")
    for col in ("target", "artifact", "size", "PSNR vs PyTorch (worst / mean)", "max abs err", "time", "peak RSS"):
        table.add_column(col)
    v = m["verification"]
    table.add_row(m["target"]["name"], str(result.bundle.model_file), f"{m['artifact']['size_bytes'] / 1e6:.2f} MB",
                  f"{v['min_sample_psnr_db']:.1f} / {v['psnr_db']:.1f} dB (>= {v['min_psnr_db']:g})", f"{v['max_abs_err']:.2e}",
                  f"{m['conversion']['time_s']:.1f} s", f"{m['conversion']['peak_rss_mb']:.0f} MB")
    calib, held = m.get("calibration"), v["inputs"]
    if calib:
        table.caption = (f"calibrated on {calib['samples']} crops ({calib['source']}); "
                         f"verified on {held['samples']} held-out crops ({held['files'][0]}...)")
    else:
        table.caption = f"verified on {held['samples']} RAW crops ({held['source']})"
    out.print(table)
    kind = m["model"].get("weights_kind", "file")
    out.print(f"weights: {m['model']['weights']} ({kind})", highlight=False)
    if kind == "random":
        err.print(f"[yellow]warning:[/] {RANDOM_WEIGHTS_WARNING}", highlight=False, soft_wrap=True)
    out.print(f"support check: {m['support_check']['summary']}")
    for photo in m.get("photo_verification", []):
        out.print(f"whole photo {Path(photo['source']).name}: {photo['psnr_db']:.1f} dB, worst tile "
                  f"{photo['worst_tile_psnr_db']:.1f} dB, seam score {photo['seam_score'] if photo['seam_score'] is not None else '-'} "
                  f"({photo['mode']}, {photo['tiles']} tiles) vs untiled PyTorch", highlight=False)
    route = (m.get("quantization") or {}).get("route")
    if isinstance(route, dict) and route.get("route") not in (None, DEFAULT_ROUTE):
        known = TFLITE_ROUTES.get(route["route"])
        out.print(f"route: {route['route']} {route.get('version') or ''} ({known.summary if known else 'unknown route'}): "
                  f"{route.get('why')}", highlight=False, soft_wrap=True)
    tiling_ = m.get("tiling") or {}
    if tiling_.get("mode") == "two-pass":
        parts = v.get("parts", {})
        out.print(f"tiling: two-pass, exact ({tiling_['passes']} passes; {tiling_['window_note']}); statistics part "
                  f"{', '.join(tiling_['stats_artifact']['files'])}: {tiling_['stats_artifact']['support_check']['summary']}; "
                  f"tile part alone {parts.get('tile_part_worst_psnr_db', float('nan')):.1f} dB, statistics within "
                  f"{100 * parts.get('stats_part_max_rel_err', float('nan')):.2g} % of their range", highlight=False)
    elif tiling_.get("note"):
        err.print(f"[yellow]note:[/] {tiling_['note']}", highlight=False, soft_wrap=True)
    if m.get("layer_errors"):
        lt = Table(title="INT8 layers with the largest error (RMSE in quantisation steps)")
        for col in ("op", "tensor", "RMSE/scale", "max abs err"):
            lt.add_column(col, overflow="fold")
        for row in m["layer_errors"]:
            lt.add_row(row["op"], row["tensor"][:60], f"{row['rmse_over_scale']:.2f}", f"{row['max_abs_error']:.3g}")
        out.print(lt)
    npu = m.get("npu") or {}
    if npu.get("estimates"):
        est = npu["estimates"]
        figure = (f"{est['inference_time_ms']} ms/inference" if est.get("inference_time_ms") is not None
                  else f"{est.get('cycles_total')} cycles")
        out.print(f"vendor compiler {npu.get('compiler')}: estimate {figure} ({est.get('source')})" + (f"; recorded in the results store, row {stored} (kind=estimate)"
                                              if stored is not None else ""), highlight=False)


def _compare(opts: Any, as_json: bool) -> None:
    from edge_isp.converters.compare_routes import compare_routes

    if as_json:
        print_json([r.to_dict() for r in compare_routes(opts)])
        return
    with err.status("comparing routes") as status:
        rows = compare_routes(opts, progress=lambda s: status.update(f"[bold]--compare-routes[/]: {s}"))
    tables = list(dict.fromkeys(k for r in rows for k in r.delegated))
    table = Table(title=f"{opts.model or 'default model'} -> {opts.target}: {' vs '.join(TFLITE_ROUTES)}")
    for col in ("route", "PSNR vs PyTorch (worst / mean)", "ops", *[f"delegated: {t}" for t in tables], "size",
                "host latency", "convert", "peak RSS"):
        table.add_column(col)
    for r in rows:
        if not r.ok:
            error = r.error if len(r.error or "") <= 90 else f"{(r.error or '')[:87]}..."     # whole in --json
            table.add_row(r.route, f"failed: {error}", *["-"] * (5 + len(tables)))
            continue
        table.add_row(r.route, f"{r.psnr_worst_db:.1f} / {r.psnr_mean_db:.1f} dB", str(r.ops),
                      *[r.delegated.get(t, "-") for t in tables], f"{r.size_mb:.2f} MB", f"{r.host_latency_ms:.1f} ms",
                      f"{r.convert_s:.0f} s", f"{r.peak_rss_mb:.0f} MB")
    out.print(table)
