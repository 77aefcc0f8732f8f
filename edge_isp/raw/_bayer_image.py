"""Bayer mosaics stored as one-sample-per-pixel grey images (8/16-bit PNG, TIFF, PGM)."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge_isp._deps import available, require
from edge_isp.errors import InputError, RawFormatError
from edge_isp.raw._checks import (
    check_even_size,
    check_levels,
    check_sample_range,
    flags,
    positive_int,
)
from edge_isp.raw._registry import RawLayout, register_reader
from edge_isp.raw.image import RawImage

BAYER_IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".tif", ".tiff", ".pgm")

# TIFF tags that say the file records its own colour filter (TIFF/EP, DNG).
_TAG_CFA_PATTERN, _TAG_DNG_VERSION = 33422, 50706
_PHOTOMETRIC_CFA, _PHOTOMETRIC_LINEAR_RAW = 32803, 34892


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage().replace("\n", " "))


@contextlib.contextmanager
def _tifffile_log() -> Iterator[list[str]]:
    """tifffile logs what it finds wrong with a file; collect it instead of letting Python's
    last-resort handler print it (the CLI promises one line per error)."""
    logger = logging.getLogger("tifffile")
    handler = _Collect()
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)


def tiff_stores_cfa(path: Path) -> bool:
    """True when a TIFF file records a colour filter itself (a DNG or TIFF/EP CFA image, i.e.
    a camera RAW container for LibRaw), False for a plain grey TIFF or an unreadable file."""
    if not available("tifffile"):
        return False
    tifffile = require("tifffile", "reading TIFF files")
    try:
        with _tifffile_log(), tifffile.TiffFile(str(path)) as tif:
            pages = list(tif.pages)
            for page in pages:
                pages.extend(getattr(page, "pages", None) or [])  # SubIFDs
                tags = page.tags
                if _TAG_DNG_VERSION in tags or _TAG_CFA_PATTERN in tags:
                    return True
                photometric = tags.get(262)
                if photometric is not None and int(photometric.value) in (_PHOTOMETRIC_CFA, _PHOTOMETRIC_LINEAR_RAW):
                    return True
    except Exception:  # a broken TIFF is the Bayer reader's to report
        return False
    return False


def load_grey_samples(path: Path) -> np.ndarray:
    """The pixel values of an image file exactly as stored (no scaling, no colour conversion)."""
    if path.suffix.lower() in (".tif", ".tiff") and available("tifffile"):
        tifffile = require("tifffile", "reading TIFF files")
        with _tifffile_log() as said:
            try:
                return np.asarray(tifffile.imread(str(path)))
            except Exception as exc:  # tifffile raises many kinds on bad input
                also = f"; {said[0]}" if said else ""
                raise RawFormatError(
                    f"{path}: not a readable TIFF image, or truncated ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''}{also})"
                ) from exc
    pil = require("PIL.Image", "reading Bayer PNG/TIFF files")
    try:
        with warnings.catch_warnings():
            # A sensor mosaic is legitimately larger than Pillow's "decompression bomb" hint.
            warnings.simplefilter("ignore", pil.DecompressionBombWarning)
            with pil.open(path) as img:
                img.load()
                mode = img.mode
                arr = np.asarray(img)
    except Exception as exc:  # Pillow raises OSError, SyntaxError, struct.error, zlib.error ...
        message = str(exc).splitlines()[0] if str(exc) else ""
        raise RawFormatError(
            f"{path}: not a readable image, or truncated ({type(exc).__name__}: {message})"
        ) from exc
    if mode in ("P", "PA"):
        raise RawFormatError(f"{path}: a palette image cannot hold Bayer samples; save the mosaic as 8/16-bit grey")
    return arr


@register_reader(
    "bayer-image",
    BAYER_IMAGE_EXTENSIONS,
    accepts=("cfa", "black_level", "white_level", "width", "height"),
    description="one Bayer sample per pixel in an 8/16-bit grey PNG/TIFF/PGM; needs cfa and white_level",
)
def read_bayer_image(path: Path, layout: RawLayout) -> RawImage:
    """Read a grey image holding a Bayer mosaic; the caller gives the CFA and levels."""
    arr = load_grey_samples(path)  # a broken file is reported as broken before anything else
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
    missing = [n for n in ("cfa", "white_level") if getattr(layout, n) is None]
    if missing:
        raise InputError(
            f"{path}: a Bayer PNG/TIFF does not record its pattern or levels; pass {flags(missing)} "
            f"(e.g. --cfa RGGB --white 1023 for 10-bit data; {flags(['black_level'])} if not 0), "
            "or --preset NAME for a known data set such as zurich"
        )
    for name, actual in (("height", arr.shape[0]), ("width", arr.shape[1])):
        want = getattr(layout, name)
        if want is not None and positive_int(want, name, path) != actual:
            raise RawFormatError(
                f"{path}: the image is {arr.shape[1]}x{arr.shape[0]} (WxH), but --{name} says {want}; "
                f"leave {flags([name])} out for a PNG/TIFF, whose size is in the file"
            )
    black = 0.0 if layout.black_level is None else layout.black_level
    # No check of the white level against the stored sample type: a PNG holds 10-bit data
    # as uint8 when the values happen to fit (some Zurich patches are stored that way).
    check_levels(black, layout.white_level, path)
    check_even_size(path, arr.shape[0], arr.shape[1], given=False, crop=bool(layout.crop_even))
    check_sample_range(arr, float(layout.white_level), path,  # type: ignore[arg-type]
                       stored="that the image holds the sensor values as read out (not scaled)")
    return RawImage(
        mosaic=np.ascontiguousarray(arr),
        cfa=layout.cfa,  # type: ignore[arg-type]
        black_level=black,
        white_level=layout.white_level,  # type: ignore[arg-type]
        source=path,
        format="bayer-image",
        metadata={"stored_dtype": str(arr.dtype)},
    )
