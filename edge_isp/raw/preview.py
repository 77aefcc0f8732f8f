"""The camera's own rendering: the preview image a camera RAW file embeds.

CR2, NEF, ARW, most DNGs and many other containers carry a JPEG (sometimes an RGB bitmap)
the camera or the converter rendered from the same exposure. LibRaw finds it
(``rawpy.RawPy.extract_thumb``); it is the reference of ``edge-isp eval --data camera:``.

    >>> from edge_isp.raw.preview import read_preview
    >>> p = read_preview("photo.cr2")          # NoPreviewError when there is none
    >>> p.image.shape, p.format, p.flip        # float32 (h, w, 3) in [0, 1]

The preview is returned as stored. ``flip`` is the file's orientation in LibRaw's code
(:func:`orient` applies it); whether a camera stored its preview rotated or not differs
between makers, so a comparison tries both (:mod:`edge_isp.training.align`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_isp._deps import require
from edge_isp.errors import NoPreviewError, RawFormatError

# A preview smaller than this (on its short side) says too little to compare against.
MIN_PREVIEW_SIDE = 64


@dataclass(frozen=True)
class Preview:
    """An embedded preview: ``image`` float32 (h, w, 3) display RGB in [0, 1], as stored."""

    image: np.ndarray
    format: str  # "jpeg" | "bitmap"
    flip: int  # the file's orientation, LibRaw code (0 = none, 3 = 180, 5 = 90 CCW, 6 = 90 CW)
    source: Path
    bayer: bool = True  # the file's sensor data is a 2x2 Bayer mosaic (what edge-isp renders)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) as stored."""
        return int(self.image.shape[0]), int(self.image.shape[1])


def orient(image: np.ndarray, flip: int) -> np.ndarray:
    """Apply a LibRaw orientation code to an (H, W, ...) image (as ``postprocess`` does).

    Bits: 2 = mirror the rows, 1 = mirror the columns, 4 = transpose (after mirroring);
    6 is a quarter turn clockwise, 5 counter-clockwise, 3 a half turn.
    """
    if flip & 2:
        image = image[::-1]
    if flip & 1:
        image = image[:, ::-1]
    if flip & 4:
        image = image.swapaxes(0, 1)
    return image


def _decode_jpeg(data: bytes, path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            # As stored: an EXIF orientation inside the preview is not applied here (the
            # comparison tries the orientations itself).
            rgb = np.asarray(img.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise NoPreviewError(f"{path}: the embedded JPEG preview cannot be decoded ({exc})") from exc
    return rgb.astype(np.float32) / np.float32(255.0)


def _bitmap(data: np.ndarray) -> np.ndarray:
    data = np.asarray(data)
    if data.ndim == 2:
        data = np.repeat(data[..., None], 3, axis=2)
    top = float(np.iinfo(data.dtype).max) if np.issubdtype(data.dtype, np.integer) else 1.0
    return (data[..., :3].astype(np.float32) / np.float32(top)).clip(0.0, 1.0)


def read_preview(path: Path | str, *, min_side: int = MIN_PREVIEW_SIDE) -> Preview:
    """The largest preview LibRaw finds in ``path``.

    Raises:
        NoPreviewError: the file embeds none, one LibRaw cannot extract, one that does not
            decode, or one smaller than ``min_side`` pixels.
        RawFormatError: the file is not a camera RAW file LibRaw can open.
    """
    rawpy = require("rawpy", "reading the preview a camera RAW file embeds")
    from edge_isp.raw._camera import _libraw_detail, libraw_stderr

    path = Path(path)
    try:
        with libraw_stderr(), rawpy.imread(str(path)) as raw:
            flip = int(raw.sizes.flip)
            pattern = raw.raw_pattern
            bayer = pattern is not None and np.asarray(pattern).shape == (2, 2)
            try:
                thumb = raw.extract_thumb()
            except rawpy.LibRawNoThumbnailError as exc:
                raise NoPreviewError(f"{path}: no embedded JPEG preview") from exc
            except rawpy.LibRawUnsupportedThumbnailError as exc:
                raise NoPreviewError(
                    f"{path}: the embedded preview is in a format LibRaw cannot extract") from exc
    except NoPreviewError:
        raise
    except rawpy.LibRawFileUnsupportedError as exc:
        raise RawFormatError(f"{path}: not a camera RAW file LibRaw recognises") from exc
    except Exception as exc:  # LibRawError and whatever rawpy raises on damaged data
        raise RawFormatError(
            f"{path}: LibRaw cannot read this file ({_libraw_detail(exc)}); it is truncated or corrupt") from exc
    if thumb.format == rawpy.ThumbFormat.JPEG:
        image, kind = _decode_jpeg(bytes(thumb.data), path), "jpeg"
    else:
        image, kind = _bitmap(thumb.data), "bitmap"
    if min(image.shape[:2]) < min_side:
        raise NoPreviewError(
            f"{path}: the embedded preview is only {image.shape[1]}x{image.shape[0]} px (under {min_side})")
    return Preview(image=np.ascontiguousarray(image), format=kind, flip=flip, source=path, bayer=bayer)


__all__ = ["MIN_PREVIEW_SIDE", "Preview", "orient", "read_preview"]
