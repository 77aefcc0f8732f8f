"""``edge-isp eval``: image quality of models, checkpoints, bundles and the classical ISP."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from edge_isp.commands._common import JsonFlag, err, out, parse_options, print_json

app = typer.Typer()


def _fmt(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


@app.command("eval")
def eval_(
    subjects: list[str] = typer.Argument(
        None, help="What to evaluate: 'default', a registry model, a training checkpoint (.pt) or a "
                   "bundle folder; several allowed. Default: the default model."),
    data: str = typer.Option("synthetic", "--data", "-d",
                             help="synthetic (held-out photos) | zurich:PATH | ultraisp:PATH | pairs:PATH."),
    draws: int = typer.Option(32, "--draws", help="Synthetic held-out images (random camera + noise each)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic held-out draws."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Evaluate at most N images."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Weights for a registry model subject."),
    option: list[str] = typer.Option([], "--option", "-O", help="Model option key=value."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Also evaluate the classical ISP."),
    per_image: bool = typer.Option(False, "--per-image", help="Show every image, not only the means."),
    lpips: Optional[bool] = typer.Option(None, "--lpips/--no-lpips", help="LPIPS (default: when available locally)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Runtime threads for bundles."),
    store: Optional[Path] = typer.Option(None, "--store", help="Results store file (default: EDGE_ISP_RESULTS or ./edge-isp-results.sqlite)."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not record the results."),
    device: str = typer.Option("local", "--device-name", help="Device name recorded with the results."),
    as_json: bool = JsonFlag,
) -> None:
    """Evaluate PSNR / SSIM / MS-SSIM (and LPIPS) per image and mean; record them for 'gate'."""
    from edge_isp.training.evaluate import _dataset_label, evaluate, evaluation_pairs, load_subject, record

    names = list(subjects or ["default"])
    if baseline and "classical" not in names:
        names.append("classical")
    pairs = evaluation_pairs(data, draws=draws, seed=seed, limit=limit)
    label = _dataset_label(data, draws, seed)
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
    if as_json:
        print_json({"dataset": label, "images": len(pairs), "reports": [r.to_dict() for r in reports]})
        return
    has_lpips = any(r.mean.get("lpips") is not None for r in reports)
    if per_image:
        table = Table(title=f"per image ({label})")
        table.add_column("image")
        for r in reports:
            table.add_column(f"{r.subject}\nPSNR dB / SSIM", justify="right")
        for i, pair in enumerate(pairs):
            table.add_row(pair.name, *[f"{r.images[i].psnr_db:.2f} / {r.images[i].ssim:.3f}" for r in reports])
        out.print(table)
    table = Table(title=f"mean over {len(pairs)} images ({label})")
    for col in ("subject", "kind", "model", "target", "PSNR dB", "SSIM", "MS-SSIM") + (("LPIPS",) if has_lpips else ()):
        table.add_column(col, justify="right" if col in ("PSNR dB", "SSIM", "MS-SSIM", "LPIPS") else "left")
    for r in reports:
        m = r.mean
        row = [r.subject, r.kind, r.model, r.target, _fmt(m.get("psnr_db"), 2), _fmt(m.get("ssim"), 3),
               _fmt(m.get("ms_ssim"), 3)]
        if has_lpips:
            row.append(_fmt(m.get("lpips"), 3))
        table.add_row(*row)
    out.print(table)
    if not no_store:
        out.print("[dim]recorded in the results store (kind=eval)[/]")
