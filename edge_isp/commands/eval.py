"""``edge-isp eval``: image quality of models, checkpoints, bundles and the classical ISP."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.table import Table

from edge_isp.commands._common import JsonFlag, err, out, parse_options, print_json

if TYPE_CHECKING:
    from edge_isp.training.evaluate import ImageScore

app = typer.Typer()


def _fmt(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _per_image_cell(img: ImageScore, colour: bool) -> str:
    cell = f"{img.psnr_db:.2f} / {img.ssim:.3f}"
    if colour:
        cell += f" / {_fmt(img.delta_e00, 2)} / {_fmt(img.delta_l, 2)}"
    return cell


@app.command("eval")
def eval_(
    subjects: list[str] = typer.Argument(
        None, help="What to evaluate: 'default', a registry model, a training checkpoint (.pt) or a "
                   "bundle folder; several allowed. Default: the default model."),
    data: str = typer.Option("synthetic", "--data", "-d",
                             help="synthetic (held-out photos) | zurich:PATH | ultraisp:PATH | pairs:PATH | "
                                  "camera:FOLDER (camera RAW files vs the JPEG their camera embedded)."),
    draws: int = typer.Option(32, "--draws", help="Synthetic held-out images (random camera + noise each)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic held-out draws."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Evaluate at most N images."),
    scale: float = typer.Option(1.0, "--scale", help="camera: compare at this share of the embedded JPEG's size "
                                                     "(e.g. 0.5; default: its full size)."),
    bin_: int = typer.Option(1, "--bin", help="camera: render from an N x N binned mosaic, N^2 times faster "
                                              "(the render sees less noise and detail; default 1: full resolution)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Weights for a registry model subject."),
    option: list[str] = typer.Option([], "--option", "-O", help="Model option key=value."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Also evaluate the classical ISP."),
    per_image: bool = typer.Option(False, "--per-image", help="Show every image, not only the means."),
    lpips: Optional[bool] = typer.Option(None, "--lpips/--no-lpips", help="LPIPS (default: when available locally)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for the runtime (bundles and PyTorch)."),
    store: Optional[Path] = typer.Option(None, "--store", help="Results store file (default: EDGE_ISP_RESULTS or ./edge-isp-results.sqlite)."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not record the results."),
    device: str = typer.Option("local", "--device-name", help="Device name recorded with the results."),
    as_json: bool = JsonFlag,
) -> None:
    """Evaluate PSNR / SSIM / MS-SSIM (and LPIPS) per image and mean; record them for 'gate'.

    With --data camera:FOLDER each camera RAW file is rendered whole and compared with the
    JPEG its camera embedded (aligned for crop, scale and orientation), adding the mean
    CIEDE2000 (dE00) and the mean L* difference (dL*, > 0: brighter than the camera's).
    """
    from edge_isp.errors import UsageError
    from edge_isp.training.evaluate import DataOptions, evaluate, evaluation_data, load_subject, record

    if (scale != 1.0 or bin_ != 1) and not data.startswith("camera:"):
        raise UsageError("--scale and --bin apply to --data camera:FOLDER only")

    names = list(subjects or ["default"])
    if baseline and "classical" not in names:
        names.append("classical")
    ev = evaluation_data(data, DataOptions(draws=draws, seed=seed, limit=limit, scale=scale, binning=bin_))
    pairs, label = ev.pairs, ev.label
    for note in ev.notes:
        err.print(f"note: {note}", markup=False, highlight=False)
    reports = []
    for name in names:
        sub = load_subject(name, weights=weights, options=parse_options(option), threads=threads)
        if as_json:
            rep = evaluate(sub, pairs, name=name, dataset=label, use_lpips=lpips)
        else:
            with err.status(f"evaluating {name} on {len(pairs)} images") as status:
                rep = evaluate(sub, pairs, name=name, dataset=label, use_lpips=lpips,
                               progress=lambda i, n, s=status, nm=name: s.update(f"evaluating {nm}: {i}/{n}"))
        if not no_store:
            rep.extra["results_row"] = record(rep, store, device=device)
        reports.append(rep)
    image_notes = [img.note for r in reports for img in r.images if img.note]
    for note in image_notes:
        err.print(f"note: {note}", markup=False, highlight=False)
    if as_json:
        print_json({"dataset": label, "images": len(pairs), "notes": ev.notes + image_notes,
                    "reports": [r.to_dict() for r in reports]})
        return
    has_lpips = any(r.mean.get("lpips") is not None for r in reports)
    has_colour = any(r.mean.get("delta_e00") is not None for r in reports)
    if per_image:
        table = Table(title=f"per image ({label})")
        table.add_column("image")
        for r in reports:
            table.add_column(f"{r.subject}\nPSNR dB / SSIM" + (" / dE00 / dL*" if has_colour else ""), justify="right")
        for i, pair in enumerate(pairs):
            table.add_row(pair.name, *[_per_image_cell(r.images[i], has_colour) for r in reports])
        out.print(table)
    table = Table(title=f"mean over {len(pairs)} images ({label})")
    numbers = ("PSNR dB", "SSIM", "MS-SSIM") + (("LPIPS",) if has_lpips else ()) + (
        ("dE00", "|dL*|") if has_colour else ())
    for col in ("subject", "kind", "model", "target") + numbers:
        table.add_column(col, justify="right" if col in numbers else "left")
    for r in reports:
        m = r.mean
        row = [r.subject, r.kind, r.model, r.target, _fmt(m.get("psnr_db"), 2), _fmt(m.get("ssim"), 3),
               _fmt(m.get("ms_ssim"), 3)]
        if has_lpips:
            row.append(_fmt(m.get("lpips"), 3))
        if has_colour:
            row += [_fmt(m.get("delta_e00"), 2), _fmt(m.get("abs_delta_l"), 2)]
        table.add_row(*row)
    out.print(table)
    if not no_store:
        out.print("[dim]recorded in the results store (kind=eval)[/]")
