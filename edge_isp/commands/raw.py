"""RAW verbs: ``raw-info`` (what a file holds) and ``render`` (classical ISP to an image)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from edge_isp.commands._common import JsonFlag, out, print_json

app = typer.Typer()

_CFA = typer.Option(None, "--cfa", help="Bayer pattern (RGGB, BGGR, GRBG, GBRG) when the file has none.")


def _layout(width: int | None, height: int | None, dtype: str | None, byte_order: str | None,
            cfa: str | None, black: float | None, white: float | None) -> dict[str, Any]:
    given = {"width": width, "height": height, "dtype": dtype, "byte_order": byte_order,
             "cfa": cfa, "black_level": black, "white_level": white}
    return {k: v for k, v in given.items() if v is not None}


def _read(path: Optional[Path], preset: str | None, layout: dict[str, Any]):
    from edge_isp.raw import read_raw, read_sample

    if path is None:
        return read_sample()
    return read_raw(path, preset=preset, **layout)


@app.command("raw-info")
def raw_info(
    path: Optional[Path] = typer.Argument(None, help="RAW file (DNG/CR2/NEF/..., headerless .raw, Bayer PNG/TIFF); default: the bundled sample."),
    width: Optional[int] = typer.Option(None, "--width"), height: Optional[int] = typer.Option(None, "--height"),
    dtype: Optional[str] = typer.Option(None, "--dtype"), byte_order: Optional[str] = typer.Option(None, "--byte-order"),
    cfa: Optional[str] = _CFA, black: Optional[float] = typer.Option(None, "--black"),
    white: Optional[float] = typer.Option(None, "--white"), preset: Optional[str] = typer.Option(None, "--preset"),
    as_json: bool = JsonFlag,
) -> None:
    """Show what a RAW file holds: size, CFA, levels, white balance, colour matrix."""
    raw = _read(path, preset, _layout(width, height, dtype, byte_order, cfa, black, white))
    norm = raw.normalized()
    info = {
        "source": str(raw.source), "format": raw.format, "height": int(raw.mosaic.shape[0]),
        "width": int(raw.mosaic.shape[1]), "dtype": str(raw.mosaic.dtype), "cfa": raw.cfa,
        "black_level": raw.black_level if not hasattr(raw.black_level, "tolist") else raw.black_level.tolist(),
        "white_level": raw.white_level,
        "wb_gains": None if raw.wb_gains is None else [float(g) for g in raw.wb_gains],
        "color_matrix": None if raw.color_matrix is None else [[float(v) for v in row] for row in raw.color_matrix],
        "raw_min": int(raw.mosaic.min()), "raw_max": int(raw.mosaic.max()),
        "clipped_fraction": float((norm >= 1.0).mean()), "packed_shape": [4, raw.mosaic.shape[0] // 2, raw.mosaic.shape[1] // 2],
    }
    if as_json:
        print_json(info)
        return
    table = Table(title=f"RAW: {info['source']}", show_header=False)
    for key, value in info.items():
        table.add_row(key, str(value))
    out.print(table)


@app.command()
def render(
    path: Optional[Path] = typer.Argument(None, help="RAW file; default: the bundled sample."),
    output: Path = typer.Option(Path("edge-isp-out/render.png"), "--output", "-o", help="PNG/JPEG/TIFF to write."),
    bits: int = typer.Option(8, "--bits", help="8 or 16 (PNG/TIFF)."),
    width: Optional[int] = typer.Option(None, "--width"), height: Optional[int] = typer.Option(None, "--height"),
    dtype: Optional[str] = typer.Option(None, "--dtype"), byte_order: Optional[str] = typer.Option(None, "--byte-order"),
    cfa: Optional[str] = _CFA, black: Optional[float] = typer.Option(None, "--black"),
    white: Optional[float] = typer.Option(None, "--white"), preset: Optional[str] = typer.Option(None, "--preset"),
) -> None:
    """Render a RAW file with the classical reference ISP (demosaic, WB, colour, tone)."""
    from edge_isp.raw import render as classical_render
    from edge_isp.raw import write_image

    raw = _read(path, preset, _layout(width, height, dtype, byte_order, cfa, black, white))
    written = write_image(output, classical_render(raw), bits=bits)
    out.print(f"wrote {written} ({raw.mosaic.shape[1]}x{raw.mosaic.shape[0]}, classical ISP)")
