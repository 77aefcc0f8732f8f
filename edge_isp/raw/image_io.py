"""Writing rendered images: 8-bit PNG/JPEG/TIFF and 16-bit PNG/TIFF, always atomically.

The format comes from the extension through a small writer registry.  16-bit PNG is
encoded here (Pillow cannot write 48-bit RGB PNG); TIFF uses tifffile when installed.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_isp._atomic import atomic_path
from edge_isp._deps import available, require
from edge_isp.errors import InputError

# zlib level of PNG outputs. Measured on the rendered 1920x1080 chart (Pillow, 8-bit RGB):
# level 1 197 ms / 2.75 MB, 4: 389 ms / 2.37 MB, 6 (Pillow's default): 690 ms / 2.36 MB. A
# learned ISP's output is an intermediate a camera pipeline re-encodes: 3.5x faster for 16 %
# more bytes (encoding was half of a 12 MP photo's processing time at level 6).
PNG_COMPRESS_LEVEL = 1

# A writer gets the final path's temporary twin, the quantised (H, W) or (H, W, 3) array
# (uint8 or uint16) and the JPEG quality.
WriteFunction = Callable[[Path, np.ndarray, int], None]


@dataclass(frozen=True)
class ImageWriter:
    """One image format: the extensions it claims and the bit depths it stores."""

    name: str
    extensions: tuple[str, ...]
    bits: tuple[int, ...]
    write: WriteFunction


_WRITERS: dict[str, ImageWriter] = {}


def register_writer(
    name: str, extensions: Iterable[str], bits: Iterable[int]
) -> Callable[[WriteFunction], WriteFunction]:
    """Decorator registering ``fn(tmp_path, array, quality)`` for the given extensions."""

    def decorator(fn: WriteFunction) -> WriteFunction:
        writer = ImageWriter(name, tuple(e.lower() for e in extensions), tuple(bits), fn)
        for ext in writer.extensions:
            _WRITERS[ext] = writer
        return fn

    return decorator


def image_extensions() -> list[str]:
    """Extensions :func:`write_image` can write."""
    return sorted(_WRITERS)


def to_uint(image: np.ndarray, bits: int) -> np.ndarray:
    """Quantise a float image in [0, 1] (clipped) to uint8 (bits=8) or uint16 (bits=16)."""
    if bits not in (8, 16):
        raise InputError(f"bits must be 8 or 16, got {bits!r}")
    data = np.asarray(image, dtype=np.float32)
    if not np.all(np.isfinite(data)):
        raise InputError("the image contains NaN or infinite values; check the model output before writing it")
    top = (1 << bits) - 1
    return np.rint(np.clip(data, 0.0, 1.0) * top).astype(np.uint8 if bits == 8 else np.uint16)


def write_image(path: str | Path, image: np.ndarray, bits: int = 8, *, quality: int = 95) -> Path:
    """Write a float image in [0, 1] — (H, W, 3) RGB or (H, W) grey — atomically.

    The format follows the extension: .png (8/16-bit), .jpg/.jpeg (8-bit), .tif/.tiff
    (8/16-bit).  Values are clipped to [0, 1] and rounded.  Returns the path written.
    """
    target = Path(path)
    ext = target.suffix.lower()
    if target.is_dir():
        raise InputError(f"{target} is a folder; name an image file to write (e.g. {target / 'render.png'})")
    if ext not in _WRITERS:
        raise InputError(
            f"{target}: cannot write images with extension {ext or '(none)'!r}; use one of "
            f"{', '.join(image_extensions())}"
        )
    writer = _WRITERS[ext]
    if bits not in writer.bits:
        raise InputError(
            f"{target}: {writer.name} stores {' or '.join(str(b) for b in writer.bits)}-bit images, not "
            f"{bits}-bit; use .png or .tif for 16-bit output"
        )
    data = np.asarray(image)
    if data.ndim == 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if not (data.ndim == 2 or (data.ndim == 3 and data.shape[-1] == 3)) or data.size == 0:
        raise InputError(f"{target}: expected an (H, W, 3) RGB or (H, W) grey image, got shape {tuple(data.shape)}")
    quantised = to_uint(data, bits)
    with atomic_path(target) as tmp:
        writer.write(tmp, quantised, quality)
    return target


# ----------------------------------------------------------------------------- writers


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def encode_png16(data: np.ndarray) -> bytes:
    """Encode a uint16 (H, W) or (H, W, 3) array as a 16-bit PNG (grey or RGB)."""
    height, width = data.shape[:2]
    colour_type = 0 if data.ndim == 2 else 2
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    rows = np.ascontiguousarray(data, dtype=">u2").reshape(height, -1).view(np.uint8)
    scanlines = np.concatenate([np.zeros((height, 1), dtype=np.uint8), rows], axis=1)  # filter 0
    body = zlib.compress(scanlines.tobytes(), PNG_COMPRESS_LEVEL)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


@register_writer("PNG", (".png",), (8, 16))
def _write_png(tmp: Path, data: np.ndarray, quality: int) -> None:
    if data.dtype == np.uint16:
        tmp.write_bytes(encode_png16(data))
        return
    pil = require("PIL.Image", "writing PNG files")
    pil.fromarray(data).save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


@register_writer("JPEG", (".jpg", ".jpeg"), (8,))
def _write_jpeg(tmp: Path, data: np.ndarray, quality: int) -> None:
    pil = require("PIL.Image", "writing JPEG files")
    pil.fromarray(data).save(tmp, format="JPEG", quality=int(quality))


@register_writer("TIFF", (".tif", ".tiff"), (8, 16))
def _write_tiff(tmp: Path, data: np.ndarray, quality: int) -> None:
    if available("tifffile"):
        tifffile = require("tifffile", "writing TIFF files")
        tifffile.imwrite(str(tmp), data, photometric="rgb" if data.ndim == 3 else "minisblack")
        return
    if data.dtype == np.uint16 and data.ndim == 3:
        require("tifffile", "writing 16-bit RGB TIFF files")
    pil = require("PIL.Image", "writing TIFF files")
    pil.fromarray(data).save(tmp, format="TIFF")
