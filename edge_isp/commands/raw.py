"""RAW verbs: ``raw-info`` (what a file holds) and ``render`` (classical ISP to an image)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from edge_isp.commands._common import JsonFlag, err, out, print_json

app = typer.Typer()

_CFA = typer.Option(None, "--cfa", help="Bayer pattern (RGGB, BGGR, GRBG, GBRG) of a headerless or PNG/TIFF Bayer file; "
                    "a camera RAW file stores its own (see --force-cfa).")
_FORCE_CFA = typer.Option(False, "--force-cfa", help="Let --cfa override the pattern a camera RAW file stores (warns).")
_CROP_EVEN = typer.Option(False, "--crop-even", help="Drop the last column/row of a mosaic with an odd width/height "
                          "(refused otherwise: a Bayer mosaic is whole 2x2 tiles).")
_HEADER = typer.Option(None, "--header-bytes", help="Bytes to skip at the start of a headerless dump.")


def _layout(width: int | None, height: int | None, dtype: str | None, byte_order: str | None,
            cfa: str | None, black: float | None, white: float | None, header_bytes: int | None = None,
            crop_even: bool = False, force_cfa: bool = False) -> dict[str, Any]:
    given = {"width": width, "height": height, "dtype": dtype, "byte_order": byte_order,
             "header_bytes": header_bytes, "cfa": cfa, "black_level": black, "white_level": white,
             "crop_even": crop_even or None, "force_cfa": force_cfa or None}
    return {k: v for k, v in given.items() if v is not None}


def _read(path: Optional[Path], preset: str | None, layout: dict[str, Any]):
    """Read the file; warnings about the input (e.g. --force-cfa) go to stderr, one line each."""
    from edge_isp.raw import RawInputWarning, read_raw, read_sample

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RawInputWarning)
        raw = read_sample() if path is None else read_raw(path, preset=preset, **layout)
    for warning in caught:
        if issubclass(warning.category, RawInputWarning):
            err.print(f"[yellow]warning:[/] {warning.message}", highlight=False, soft_wrap=True)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return raw


@app.command("raw-info")
def raw_info(
    path: Optional[Path] = typer.Argument(None, help="RAW file (DNG/CR2/NEF/..., headerless .raw, Bayer PNG/TIFF); default: the bundled sample."),
    width: Optional[int] = typer.Option(None, "--width"), height: Optional[int] = typer.Option(None, "--height"),
    dtype: Optional[str] = typer.Option(None, "--dtype"), byte_order: Optional[str] = typer.Option(None, "--byte-order"),
    header_bytes: Optional[int] = _HEADER,
    cfa: Optional[str] = _CFA, black: Optional[float] = typer.Option(None, "--black"),
    white: Optional[float] = typer.Option(None, "--white"), preset: Optional[str] = typer.Option(None, "--preset"),
    force_cfa: bool = _FORCE_CFA, crop_even: bool = _CROP_EVEN,
    as_json: bool = JsonFlag,
) -> None:
    """Show what a RAW file holds: size, CFA, levels, white balance, colour matrix."""
    raw = _read(path, preset, _layout(width, height, dtype, byte_order, cfa, black, white, header_bytes,
                                      crop_even, force_cfa))
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
    if "stored_cfa" in raw.metadata:
        info["stored_cfa"] = raw.metadata["stored_cfa"]
    if "cropped_from" in raw.metadata:
        info["cropped_from"] = list(raw.metadata["cropped_from"])
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
    header_bytes: Optional[int] = _HEADER,
    cfa: Optional[str] = _CFA, black: Optional[float] = typer.Option(None, "--black"),
    white: Optional[float] = typer.Option(None, "--white"), preset: Optional[str] = typer.Option(None, "--preset"),
    force_cfa: bool = _FORCE_CFA, crop_even: bool = _CROP_EVEN,
) -> None:
    """Render a RAW file with the classical reference ISP (demosaic, WB, colour, tone)."""
    from edge_isp._atomic import ensure_writable_file
    from edge_isp.raw import render as classical_render
    from edge_isp.raw import write_image

    ensure_writable_file(output, "--output")  # before reading and rendering
    raw = _read(path, preset, _layout(width, height, dtype, byte_order, cfa, black, white, header_bytes,
                                      crop_even, force_cfa))
    written = write_image(output, classical_render(raw), bits=bits)
    out.print(f"wrote {written} ({raw.mosaic.shape[1]}x{raw.mosaic.shape[0]}, classical ISP)")
