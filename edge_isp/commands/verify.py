"""``edge-isp verify``: whole photos through a bundle or a tiled model vs the untiled model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from edge_isp.commands._common import JsonFlag, err, out, parse_hw, parse_options, print_json
from edge_isp.commands.raw import _CFA, _CROP_EVEN, _FORCE_CFA, _HEADER
from edge_isp.errors import CheckFailedError, InputError, UsageError

app = typer.Typer()


@app.command()
def verify(
    paths: list[Path] = typer.Argument(..., help="[BUNDLE] PHOTO...: a bundle folder first (optional), then RAW photos."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Registry model run tiled in PyTorch (default: the built-in default model)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Weights for --model, or the bundle's source weights when they moved."),
    option: list[str] = typer.Option([], "--option", "-O", help="Model option key=value for --model."),
    tile: Optional[str] = typer.Option(None, "--tile", help="RAW mosaic tile HxW for --model's blended tiles (with --no-two-pass)."),
    two_pass: bool = typer.Option(True, "--two-pass/--no-two-pass", help="Exact two-pass tiling for models with global ops (PyTorch subjects)."),
    block: int = typer.Option(288, "--block", help="Two-pass owned block, packed px (rounded to the model's alignment)."),
    untiled_subject: bool = typer.Option(False, "--untiled-subject", help="Also run the bundle's own artifacts reshaped to the whole photo (OpenVINO two-pass bundles): tiled vs untiled of the same INT8/FP model."),
    overlap: int = typer.Option(32, "--overlap", help="Blended-tile overlap, packed px (also the seam score's blend width)."),
    output_dir: Path = typer.Option(Path("edge-isp-out/verify"), "--output", "-o", help="Folder for the diff heat-maps."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace heat-maps that exist already."),
    min_psnr: Optional[float] = typer.Option(None, "--min-psnr", help="Whole-image PSNR bar, dB (default 50)."),
    min_tile_psnr: Optional[float] = typer.Option(None, "--min-tile-psnr", help="Worst-tile PSNR bar, dB (default 45)."),
    max_seam: Optional[float] = typer.Option(None, "--max-seam-score", help="Seam score bar (default 1.05; 1.0 = no seam)."),
    width: Optional[int] = typer.Option(None, "--width"), height: Optional[int] = typer.Option(None, "--height"),
    cfa: Optional[str] = _CFA, force_cfa: bool = _FORCE_CFA, crop_even: bool = _CROP_EVEN,
    header_bytes: Optional[int] = _HEADER,
    black: Optional[float] = typer.Option(None, "--black"), white: Optional[float] = typer.Option(None, "--white"),
    as_json: bool = JsonFlag,
) -> None:
    """Verify whole photos: the subject tiled at full resolution vs the untiled PyTorch model."""
    from edge_isp._atomic import ensure_writable_folder
    from edge_isp.converters.bundle import is_bundle_dir
    from edge_isp.whole_photo import default_bars, reference_net_for_bundle, verify_photos

    bundle = paths[0] if paths and is_bundle_dir(paths[0]) else None
    photos = paths[1:] if bundle is not None else paths
    if not photos:
        raise InputError("name at least one RAW photo to verify (after the bundle folder)")
    missing = [str(p) for p in photos if not p.is_file()]
    if missing:
        raise InputError(f"photo(s) not found: {', '.join(missing[:3])}")
    if untiled_subject and bundle is None:
        raise InputError("--untiled-subject compares a bundle's tiled run with its own artifacts untiled; name a bundle")
    if bundle is not None and (model or option or tile):
        raise InputError("--model, --option and --tile describe a PyTorch subject; a bundle brings its own")
    ensure_writable_folder(output_dir, "--output")
    taken = [output_dir / f"{p.stem}_diff.png" for p in photos]
    existing = [str(p) for p in taken if p.exists()]
    if existing and not overwrite:
        raise InputError(f"heat-map(s) exist already ({', '.join(existing[:3])}); pass --overwrite to replace them "
                         f"or choose another --output folder")
    layout: dict[str, Any] = {k: v for k, v in {
        "width": width, "height": height, "cfa": cfa, "black_level": black, "white_level": white,
        "header_bytes": header_bytes, "force_cfa": force_cfa or None, "crop_even": crop_even or None}.items()
        if v is not None}
    from edge_isp.runtimes.subject import open_subject

    with err.status("loading the models"):
        if bundle is not None:
            subject = open_subject(bundle)
            # --weights here are the bundle's source weights, for the reference only.
            reference = reference_net_for_bundle(subject.bundle.manifest, weights)
        else:
            subject = open_subject(model, weights=weights, options=parse_options(option),
                                   input_size=parse_hw(tile, "--tile"))
            reference = subject.net           # the same PyTorch model, run untiled
    if subject.warning:
        err.print(f"[yellow]warning:[/] {subject.warning}", highlight=False, soft_wrap=True)
    if untiled_subject and (subject.split is None or subject.runtime != "openvino"):
        raise UsageError(f"--untiled-subject needs a two-pass OpenVINO bundle (only IR can be reshaped to a whole "
                         f"photo); {bundle} is {'one artifact' if subject.split is None else subject.runtime}")
    bars = default_bars(min_psnr, min_tile_psnr, max_seam)
    if bundle is not None:
        # An INT8 bundle is judged as convert --verify-photo judges it: the target's own bar.
        from edge_isp.whole_photo import bars_for_target
        from edge_isp.converters.targets import get_target

        asked = {"min_psnr_db": min_psnr, "min_worst_tile_psnr_db": min_tile_psnr, "max_seam_score": max_seam}
        bars = {k: (asked[k] if asked[k] is not None else v) for k, v in bars_for_target(get_target(subject.target)).items()}
    with err.status("verifying") as status:
        report = verify_photos(subject, reference, photos, out_dir=output_dir, raw_layout=layout, overlap=overlap,
                               two_pass=two_pass, bars=bars, block=block, untiled_subject=untiled_subject,
                               progress=lambda stage: status.update(f"[bold]verify[/]: {stage}"))
    if as_json:
        print_json(report.to_dict())
    else:
        _print(report)
    if not report.passed:
        failed = [f"{Path(p.source).name}: {', '.join(p.failures)}" for p in report.photos if not p.passed]
        raise CheckFailedError(f"whole-photo verification failed: {'; '.join(failed)}")


def _print(report: Any) -> None:
    s = report.subject
    table = Table(title=f"whole-photo verification: {s.get('model')} ({s.get('target')}, {s.get('runtime')}) "
                        f"vs untiled PyTorch")
    for col in ("photo", "size", "mode", "tiles", "PSNR", "SSIM", "worst tile", "seam score", "time", "diff"):
        table.add_column(col)
    for p in report.photos:
        seam = "-" if p.seam_score is None else f"{p.seam_score:.3f}"
        table.add_row(Path(p.source).name, f"{p.mosaic_hw[1]}x{p.mosaic_hw[0]}", p.mode, str(p.tiles),
                      f"{p.psnr_db:.1f} dB", f"{p.ssim:.4f}", f"{p.worst_tile_psnr_db:.1f} dB", seam,
                      f"{p.subject_s:.1f} s (ref {p.reference_s:.1f} s)", p.diff_png or "-")
    b = report.bars
    seam = "reported, not gated" if b.get("max_seam_score") is None else f"<= {b['max_seam_score']:g}"
    table.caption = (f"bars: PSNR >= {b['min_psnr_db']:g} dB, worst tile >= {b['min_worst_tile_psnr_db']:g} dB, "
                     f"seam score {seam}")
    out.print(table)
    for p in report.photos:
        if p.untiled_subject_psnr_db is not None:
            out.print(f"{Path(p.source).name}: the same artifacts untiled {p.untiled_subject_psnr_db:.1f} dB vs the "
                      f"reference (tiled {p.psnr_db:.1f} dB); tiled vs untiled {p.tiled_vs_untiled_subject_psnr_db:.1f} dB",
                      highlight=False, markup=False, soft_wrap=True)
