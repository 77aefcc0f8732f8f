"""Headerless sensor dumps: row-major samples, no header; the caller gives the layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_isp.errors import InputError, RawFormatError
from edge_isp.raw._checks import (
    check_even_size,
    check_levels,
    check_sample_range,
    cli_flag,
    flag_value,
    flags,
    positive_int,
)
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
        raise InputError(
            f"{flag_value('dtype', dtype)} is not a supported sample type; use one of "
            f"{', '.join(SAMPLE_DTYPES)} (raw option dtype=)"
        )
    if byte_order is None:
        order = explicit or "<"
    else:
        key = str(byte_order).strip().lower()
        if key not in _BYTE_ORDERS:
            raise InputError(
                f"{flag_value('byte_order', byte_order)} is not a byte order; use little or big "
                "(raw option byte_order=)"
            )
        order = _BYTE_ORDERS[key]
    return np.dtype(name).newbyteorder(order)


@register_reader(
    "headerless",
    (".raw", ".bin"),
    accepts=("width", "height", "dtype", "byte_order", "header_bytes", "cfa", "black_level", "white_level"),
    description=(
        "headerless row-major samples; needs width, height, cfa, white_level "
        "(dtype uint16 little-endian by default); a .raw file LibRaw recognises by its header "
        "is read as a camera RAW file instead"
    ),
)
def read_headerless(path: Path, layout: RawLayout) -> RawImage:
    """Read ``height * width`` samples; the file size must match the layout exactly."""
    missing = [n for n in ("width", "height", "cfa", "white_level") if getattr(layout, n) is None]
    if missing:
        raise RawFormatError(
            f"{path}: read as a headerless sensor dump (it is not a camera RAW file LibRaw recognises), "
            f"which does not describe itself: pass {flags(missing)}; also "
            f"{flags(['dtype', 'byte_order', 'black_level', 'header_bytes'])} unless it is uint16 "
            "little-endian with black level 0 and no header; or --preset NAME for a known data set"
        )
    width = positive_int(layout.width, "width", path)
    height = positive_int(layout.height, "height", path)
    header = 0 if layout.header_bytes is None else _header_bytes(layout.header_bytes, path)
    dtype = parse_dtype(layout.dtype, layout.byte_order)
    black = 0.0 if layout.black_level is None else layout.black_level
    check_levels(black, layout.white_level, path, dtype)
    check_even_size(path, height, width, given=True, crop=bool(layout.crop_even))
    _check_file_size(path, width, height, header, dtype)
    data = np.fromfile(path, dtype=dtype, count=width * height, offset=header)
    mosaic = data.reshape(height, width).astype(dtype.newbyteorder("="), copy=False)
    check_sample_range(mosaic, float(layout.white_level), path,  # type: ignore[arg-type]
                       stored=f"{flags(['dtype', 'byte_order'])} and {cli_flag('width')}")
    return RawImage(
        mosaic=mosaic,
        cfa=layout.cfa,  # type: ignore[arg-type]
        black_level=black,
        white_level=layout.white_level,  # type: ignore[arg-type]
        source=path,
        format="headerless",
        metadata={"dtype": dtype.name, "byte_order": "big" if dtype.byteorder == ">" else "little"},
    )


def _header_bytes(value: object, path: Path) -> int:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not number.is_integer() or number < 0:
        raise InputError(
            f"{path}: {flag_value('header_bytes', value)} is not a byte count: it must be a whole number >= 0 "
            "(raw option header_bytes=)"
        )
    return int(number)


def _check_file_size(path: Path, width: int, height: int, header: int, dtype: np.dtype) -> None:
    """The file must hold exactly the header and ``width * height`` samples."""
    expected = header + width * height * dtype.itemsize
    actual = path.stat().st_size
    if actual == expected:
        return
    layout = (
        f"a {width}x{height} (WxH) {dtype.name} headerless dump must be exactly {expected} bytes "
        f"({header} header + {width}*{height}*{dtype.itemsize})"
    )
    fits = [
        name for name in SAMPLE_DTYPES
        if name != dtype.name and header + width * height * np.dtype(name).itemsize == actual
    ]
    hint = f"; the size fits --dtype {' or '.join(fits)}" if fits else ""
    payload = actual - header
    if payload > 0 and payload % dtype.itemsize == 0 and not fits:
        hint = f"; it holds {payload // dtype.itemsize} samples of {dtype.itemsize} byte(s)"
    if actual < expected:
        raise RawFormatError(
            f"{path}: {layout}, but the file is {actual} bytes ({expected - actual} short): it is "
            f"truncated, or {flags(['width', 'height', 'dtype'])} are wrong{hint}"
        )
    extra = actual - expected
    raise RawFormatError(
        f"{path}: {layout}, but the file is {actual} bytes ({extra} more): {flags(['width', 'height', 'dtype'])} "
        f"are wrong{hint}, or the file has a header (skip it with {flag_value('header_bytes', header + extra)}, "
        f"raw option header_bytes={header + extra}) or trailing data"
    )
