"""Headerless sensor dumps: row-major samples, no header; the caller gives the layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_isp.errors import InputError, RawFormatError
from edge_isp.raw._registry import RawLayout, register_reader
from edge_isp.raw.image import RawImage

SAMPLE_DTYPES: tuple[str, ...] = ("uint8", "uint16", "uint32", "int16", "int32")
_BYTE_ORDERS = {"little": "<", "le": "<", "<": "<", "big": ">", "be": ">", ">": ">"}


def parse_dtype(dtype: object, byte_order: str | None) -> np.dtype:
    """A numpy dtype from a sample type ('uint16', 'u2', '<u2', np.uint16) and a byte order.

    ``byte_order`` is 'little' (default) or 'big'; an explicit '<'/'>' in ``dtype`` is used
    when ``byte_order`` is not given.
    """
    explicit = None
    if dtype is None:
        name = "uint16"
    else:
        try:
            spec = dtype.strip().lower() if isinstance(dtype, str) else dtype
            parsed = np.dtype(spec)  # type: ignore[call-overload]
        except TypeError:
            parsed = None
        name = parsed.name if parsed is not None else str(dtype)
        if parsed is not None and parsed.byteorder in "<>":
            explicit = parsed.byteorder
    if name not in SAMPLE_DTYPES:
        raise InputError(f"unsupported sample dtype {dtype!r}; use one of {', '.join(SAMPLE_DTYPES)}")
    if byte_order is None:
        order = explicit or "<"
    else:
        key = str(byte_order).strip().lower()
        if key not in _BYTE_ORDERS:
            raise InputError(f"unknown byte order {byte_order!r}; use 'little' or 'big'")
        order = _BYTE_ORDERS[key]
    return np.dtype(name).newbyteorder(order)


@register_reader(
    "headerless",
    (".raw", ".bin"),
    accepts=("width", "height", "dtype", "byte_order", "header_bytes", "cfa", "black_level", "white_level"),
    description=(
        "headerless row-major samples; needs width, height, cfa, white_level "
        "(dtype uint16 little-endian by default)"
    ),
)
def read_headerless(path: Path, layout: RawLayout) -> RawImage:
    """Read ``height * width`` samples; the file size must match the layout exactly."""
    missing = [n for n in ("width", "height", "cfa", "white_level") if getattr(layout, n) is None]
    if missing:
        raise InputError(
            f"{path}: a headerless RAW file does not describe itself; pass {', '.join(m + '=' for m in missing)} "
            "(and dtype=, byte_order=, black_level=, header_bytes= unless uint16 little-endian, black 0, "
            "no header), or preset=<name> for a known data set"
        )
    width, height = int(layout.width), int(layout.height)  # type: ignore[arg-type]
    header = int(layout.header_bytes or 0)
    if width <= 0 or height <= 0 or header < 0:
        raise InputError(
            f"{path}: width and height must be positive and header_bytes >= 0, "
            f"got {width}x{height} and {header}"
        )
    dtype = parse_dtype(layout.dtype, layout.byte_order)
    expected = header + width * height * dtype.itemsize
    actual = path.stat().st_size
    if actual != expected:
        hint = ""
        payload = actual - header
        if payload > 0 and payload % dtype.itemsize == 0:
            hint = f" ({payload // dtype.itemsize} samples of {dtype.itemsize} byte(s))"
        raise RawFormatError(
            f"{path}: a {width}x{height} (WxH) {dtype.name} headerless file must be exactly "
            f"{expected} bytes ({header} header + {width}*{height}*{dtype.itemsize}), but it is "
            f"{actual} bytes{hint}; check width, height, dtype and header_bytes, or the file is truncated"
        )
    data = np.fromfile(path, dtype=dtype, count=width * height, offset=header)
    mosaic = data.reshape(height, width).astype(dtype.newbyteorder("="), copy=False)
    return RawImage(
        mosaic=mosaic,
        cfa=layout.cfa,  # type: ignore[arg-type]
        black_level=0.0 if layout.black_level is None else layout.black_level,
        white_level=layout.white_level,  # type: ignore[arg-type]
        source=path,
        format="headerless",
        metadata={"dtype": dtype.name, "byte_order": "big" if dtype.byteorder == ">" else "little"},
    )
