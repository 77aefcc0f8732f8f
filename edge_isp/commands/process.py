"""``edge-isp process``: RAW photos -> RGB images through any runtime, tiled at full resolution."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edge_isp.commands._common import JsonFlag, err, out, print_json
from edge_isp.commands.raw import _CFA, _CROP_EVEN, _FORCE_CFA, _HEADER

app = typer.Typer()


@app.command()
def process(
    photos: Optional[list[Path]] = typer.Argument(None, help="RAW files (DNG/CR2/NEF/..., headerless .raw, Bayer PNG/TIFF); default: the bundled sample."),
    output_dir: Path = typer.Option(Path("edge-isp-out/process"), "--output", "-o", help="Folder for the images."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace output images that exist already."),
    bundle: Optional[Path] = typer.Option(None, "--bundle", "-b", help="Bundle folder made by 'edge-isp convert'."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Registry model run in PyTorch (the reference)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="State-dict checkpoint for --model."),
    runtime: Optional[str] = typer.Option(None, "--runtime", help="Another runtime for the bundle's format (e.g. tflite-runtime)."),
    fmt: str = typer.Option("png", "--format", "-f", help="png, jpg or tif."),
    bits: int = typer.Option(8, "--bits", help="8 or 16 (PNG/TIFF)."),
    quality: int = typer.Option(95, "--quality", help="JPEG quality."),
    overlap: int = typer.Option(32, "--overlap", help="Tile overlap in packed pixels (2x in RAW pixels)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for the runtime."),
    max_memory: Optional[str] = typer.Option(None, "--max-memory", help="Working-memory budget of one tile, e.g. 512MB: PyTorch models that read the whole image get the largest exact two-pass block that fits (measured)."),
    width: Optional[int] = typer.Option(None, "--width"), height: Optional[int] = typer.Option(None, "--height"),
    dtype: Optional[str] = typer.Option(None, "--dtype"), byte_order: Optional[str] = typer.Option(None, "--byte-order"),
    cfa: Optional[str] = _CFA, force_cfa: bool = _FORCE_CFA, crop_even: bool = _CROP_EVEN,
    header_bytes: Optional[int] = _HEADER,
    black: Optional[float] = typer.Option(None, "--black"), white: Optional[float] = typer.Option(None, "--white"),
    preset: Optional[str] = typer.Option(None, "--preset", help="Normalisation preset (e.g. zurich)."),
    profile: bool = typer.Option(False, "--profile", help="Print seconds per stage (decode, plan, infer, write) per file; the batch overlaps them."),
    as_json: bool = JsonFlag,
) -> None:
    """Process RAW photos into RGB images (tiled with blending when larger than the model)."""
    from edge_isp.process import check_output_format, load_runner, plan_outputs, process_files
    from edge_isp.raw import RawInputWarning

    layout: dict[str, Any] = {k: v for k, v in {
        "width": width, "height": height, "dtype": dtype, "byte_order": byte_order, "cfa": cfa,
        "black_level": black, "white_level": white, "preset": preset, "header_bytes": header_bytes,
        "force_cfa": force_cfa or None, "crop_even": crop_even or None}.items() if v is not None}
    ext = check_output_format(fmt, bits)
    budget = None
    if max_memory is not None:
        from edge_isp.tile_planner import parse_memory

        budget = parse_memory(max_memory)
    used_sample = not photos
    if not photos:
        from edge_isp.raw.samples import SAMPLE_LAYOUT, sample_path

        photos = [sample_path()]
        layout = {**SAMPLE_LAYOUT, **layout}
    plan_outputs(photos, output_dir, ext, overwrite=overwrite)  # seconds, not after minutes of inference
    with err.status("loading the model"):
        runner = load_runner(bundle=bundle, model=model, weights=weights, threads=threads, runtime=runtime)
    if used_sample and not as_json:
        err.print("no photos given: processing the bundled sample")
    if runner.warning:
        err.print(f"[yellow]warning:[/] {runner.warning}", highlight=False, soft_wrap=True)
    if runner.origin.kind == "model" and runner.origin.weights is None:
        err.print(f"[yellow]warning:[/] {model} has random weights (no --weights): the pictures are noise-like; "
                  f"pass --weights PATH, or omit --model for the trained default model", highlight=False, soft_wrap=True)
    if not as_json:
        split = getattr(runner, "split", None)
        if split is not None:
            d = split[1].to_dict()
            err.print(f"{runner.model} on {runner.runtime} ({runner.target}), exact two-pass windows of "
                      f"{runner.mosaic_hw[0]}x{runner.mosaic_hw[1]} RAW px ({d['passes']} passes, owned block "
                      f"{2 * d['block_packed'][0]}x{2 * d['block_packed'][1]})", highlight=False)
        else:
            err.print(f"{runner.model} on {runner.runtime} ({runner.target}), tiles of "
                      f"{runner.mosaic_hw[0]}x{runner.mosaic_hw[1]} RAW px, overlap {overlap}")

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err, disable=as_json, transient=False)
    state: dict[str, Any] = {}

    def on_start(path: Path, index: int) -> None:
        state["task"] = progress.add_task(f"[{index + 1}/{len(photos)}] {path.name}", total=None)

    def on_tile(done: int, total: int) -> None:
        progress.update(state["task"], completed=done, total=total)

    def on_done(result) -> None:
        task = state["task"]
        if result.ok:
            progress.update(task, description=f"[green]ok[/] {result.source.name} -> {result.output}")
        else:
            progress.update(task, description=f"[red]failed[/] {result.source.name}", total=1, completed=0)
            progress.console.print(f"[red]error:[/] {result.error}", highlight=False, soft_wrap=True)

    with progress, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RawInputWarning)
        report = process_files(photos, output_dir, runner=runner, ext=ext, bits=bits, overlap=overlap,
                               quality=quality, raw_layout=layout, overwrite=overwrite, on_start=on_start, on_tile=on_tile, on_done=on_done,
                               max_memory_mb=budget)
    for warning in caught:
        if issubclass(warning.category, RawInputWarning):
            err.print(f"[yellow]warning:[/] {warning.message}", highlight=False, soft_wrap=True)
    if as_json:
        print_json(report.to_dict())
    else:
        if report.runner.get("tile_plan"):
            err.print(f"tile plan: {report.runner['tile_plan']}", highlight=False, soft_wrap=True)
        done = [r for r in report.results if r.ok]
        for r in done:
            out.print(f"{r.output}  ({r.mosaic_hw[0]}x{r.mosaic_hw[1]}, {r.tiles} tiles, {r.tiling}, {r.seconds:.1f} s"
                      + (f" (statistics pass {r.stats_pass_s:.1f} s, tile pass {r.tile_pass_s:.1f} s)"
                         if r.stats_pass_s is not None else "") + ", "
                      f"peak RSS {r.peak_rss_mb:.0f} MB)", highlight=False)
        if profile and done:
            _print_profile(done)
        if report.failed:
            err.print(f"[red]{len(report.failed)} of {len(report.results)} file(s) failed[/]")
    if not report.ok:
        raise typer.Exit(1)


def _print_profile(results: list[Any]) -> None:
    """Seconds per stage and file, and the batch's sums: where the time goes."""
    from rich.table import Table

    stages = ("decode", "plan", "infer", "write")
    table = Table(title="seconds per stage (decode and write of neighbouring files overlap inference)")
    for col in ("file", *stages, "wall"):
        table.add_column(col, justify="left" if col == "file" else "right")
    for r in results:
        table.add_row(r.source.name, *[f"{r.stages_s.get(k, 0.0):.2f}" for k in stages], f"{r.seconds:.2f}")
    sums = [sum(r.stages_s.get(k, 0.0) for r in results) for k in stages]
    table.add_row("sum", *[f"{v:.2f}" for v in sums], f"{sum(r.seconds for r in results):.2f}")
    out.print(table)
