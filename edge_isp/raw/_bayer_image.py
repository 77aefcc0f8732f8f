"""Bayer mosaics stored as one-sample-per-pixel grey images (8/16-bit PNG, TIFF, PGM)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_isp._deps import available, require
from edge_isp.errors import InputError, RawFormatError
from edge_isp.raw._registry import RawLayout, register_reader
from edge_isp.raw.image import RawImage


def load_grey_samples(path: Path) -> np.ndarray:
    """The pixel values of an image file exactly as stored (no scaling, no colour conversion)."""
    if path.suffix.lower() in (".tif", ".tiff") and available("tifffile"):
        tifffile = require("tifffile", "reading TIFF files")
        try:
            return np.asarray(tifffile.imread(str(path)))
        except Exception as exc:  # tifffile raises many kinds on bad input
            raise RawFormatError(f"{path}: not a readable TIFF image ({type(exc).__name__}: {exc})") from exc
    pil = require("PIL.Image", "reading Bayer PNG/TIFF files")
    try:
        with pil.open(path) as img:
            img.load()
            mode = img.mode
            arr = np.asarray(img)
    except (OSError, SyntaxError, ValueError) as exc:  # UnidentifiedImageError is an OSError
        raise RawFormatError(
            f"{path}: not a readable image or truncated ({type(exc).__name__}: {exc})"
        ) from exc
    if mode in ("P", "PA"):
        raise RawFormatError(f"{path}: a palette image cannot hold Bayer samples; save the mosaic as 8/16-bit grey")
    return arr


@register_reader(
    "bayer-image",
    (".png", ".tif", ".tiff", ".pgm"),
    accepts=("cfa", "black_level", "white_level", "width", "height"),
    description="one Bayer sample per pixel in an 8/16-bit grey PNG/TIFF/PGM; needs cfa and white_level",
)
def read_bayer_image(path: Path, layout: RawLayout) -> RawImage:
    """Read a grey image holding a Bayer mosaic; the caller gives the CFA and levels."""
    missing = [n for n in ("cfa", "white_level") if getattr(layout, n) is None]
    if missing:
        raise InputError(
            f"{path}: a Bayer PNG/TIFF does not record its pattern or levels; pass "
            f"{', '.join(m + '=' for m in missing)} (e.g. cfa='RGGB', white_level=1023 for 10-bit "
            "data; black_level= if not 0), or preset=<name> for a known data set such as 'zurich'"
        )
    arr = load_grey_samples(path)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise RawFormatError(
            f"{path}: has shape {tuple(arr.shape)}; a Bayer image holds one sample per pixel (H, W). "
            "This looks like an already-processed colour image, not RAW data"
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise RawFormatError(f"{path}: samples are {arr.dtype}; a Bayer image must hold integer samples")
    if arr.dtype.itemsize > 2 and arr.size and 0 <= int(arr.min()) and int(arr.max()) <= 0xFFFF:
        arr = arr.astype(np.uint16)  # Pillow returns 16-bit PNGs as int32 in some modes
    for name, actual in (("height", arr.shape[0]), ("width", arr.shape[1])):
        want = getattr(layout, name)
        if want is not None and int(want) != actual:
            raise RawFormatError(f"{path}: {name} is {actual}, but the layout says {want}")
    return RawImage(
        mosaic=np.ascontiguousarray(arr),
        cfa=layout.cfa,  # type: ignore[arg-type]
        black_level=0.0 if layout.black_level is None else layout.black_level,
        white_level=layout.white_level,  # type: ignore[arg-type]
        source=path,
        format="bayer-image",
        metadata={"stored_dtype": str(arr.dtype)},
    )
