"""Shared pieces of the RAW readers: how to name an option in a message, and checks of
what the caller says against what the file holds.

Messages name options the way a user types them: the CLI flag first (``--width``), then
the key of ``convert --raw-option key=value`` / the ``read_raw`` keyword (``width=``),
because the same reader serves ``raw-info``, ``render``, ``process``, ``convert --calib``
and the Python API.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.errors import InputError, RawFormatError

# layout key -> CLI flag of the RAW verbs (raw-info, render, process)
CLI_FLAGS: dict[str, str] = {
    "width": "--width",
    "height": "--height",
    "dtype": "--dtype",
    "byte_order": "--byte-order",
    "header_bytes": "--header-bytes",
    "cfa": "--cfa",
    "black_level": "--black",
    "white_level": "--white",
    "crop_even": "--crop-even",
    "force_cfa": "--force-cfa",
    "preset": "--preset",
}


class RawInputWarning(UserWarning):
    """Something about a RAW file was accepted only because the caller asked for it."""


def cli_flag(key: str) -> str:
    """``--white`` for ``white_level``."""
    return CLI_FLAGS.get(key, "--" + key.replace("_", "-"))


def flags(keys: Iterable[str]) -> str:
    """``--width, --height (raw options width=, height=)``: both spellings, in one go."""
    keys = list(keys)
    cli = ", ".join(cli_flag(k) for k in keys)
    plural = "s" if len(keys) > 1 else ""
    return f"{cli} (raw option{plural} {', '.join(k + '=' for k in keys)})"


def switch(key: str) -> str:
    """``--crop-even (raw option crop_even=true)`` for an on/off option."""
    return f"{cli_flag(key)} (raw option {key}=true)"


def flag_value(key: str, value: Any) -> str:
    """``--width 767`` (the value as the user typed it, when it is a plain number)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{cli_flag(key)} {value}"


def warn(message: str) -> None:
    """One-line warning about the input (the CLI prints it as ``warning: ...``)."""
    warnings.warn(message, RawInputWarning, stacklevel=3)


def positive_int(value: Any, key: str, path: Path) -> int:
    """A width/height given by the caller as a whole number > 0, or InputError."""
    if isinstance(value, bool):
        raise InputError(f"{path}: {cli_flag(key)} must be a whole number of pixels, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{path}: {cli_flag(key)} must be a whole number of pixels, got {value!r}") from None
    if not number.is_integer():
        raise InputError(f"{path}: {cli_flag(key)} must be a whole number of pixels, got {value!r}")
    if number <= 0:
        raise InputError(
            f"{path}: {flag_value(key, value)} is not a size: {cli_flag(key)} must be a positive number of pixels"
        )
    return int(number)


def level(value: Any, key: str, path: Path | None = None) -> float:
    """A black/white level given by the caller: a finite number >= 0, or InputError."""
    where = f"{path}: " if path else ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}{cli_flag(key)} must be a number, got {value!r}") from None
    if not np.isfinite(number) or number < 0:
        raise InputError(f"{where}{flag_value(key, value)} is not a level: it must be a finite number >= 0")
    return number


def check_levels(black: Any, white: Any, path: Path, dtype: np.dtype | None = None) -> None:
    """The levels the caller gave: numbers, white above black, white within the sample type."""
    white_v = level(white, "white_level", path)
    blacks = [level(b, "black_level", path) for b in np.ravel(np.asarray(black, dtype=object))] if black is not None else [0.0]
    if white_v <= max(blacks):
        raise InputError(
            f"{path}: {flag_value('white_level', white)} must be above the black level {max(blacks):g}: "
            f"check {flags(['white_level', 'black_level'])}, e.g. --white 1023 for 10-bit data"
        )
    if dtype is not None and np.issubdtype(dtype, np.integer):
        top = int(np.iinfo(dtype).max)
        if white_v > top:
            raise InputError(
                f"{path}: {flag_value('white_level', white)} is above what {dtype.name} samples can hold "
                f"({top}): check {flags(['white_level', 'dtype'])}"
            )


def check_even_size(path: Path, height: int, width: int, *, given: bool, crop: bool) -> None:
    """Refuse an odd-sized mosaic unless the caller asked to crop it (``crop_even``;
    :func:`edge_isp.raw.readers.read_raw` then drops the last row/column).

    ``given`` says whether the sizes came from the caller (headerless) or from the file.
    """
    if height % 2 == 0 and width % 2 == 0:
        return
    odd = [(k, v) for k, v in (("width", width), ("height", height)) if v % 2]
    if crop:
        if height < 2 or width < 2:
            raise RawFormatError(f"{path}: a {width}x{height} (WxH) mosaic is too small to hold one 2x2 Bayer tile")
        return
    if given:
        what = " and ".join(flag_value(k, v) for k, v in odd)
        raise RawFormatError(
            f"{path}: {what} is odd, but a Bayer mosaic is made of whole 2x2 tiles, so --width and "
            f"--height must be even: check them (raw options width=, height=; a wrong --width shears the "
            f"picture), or if the dump really has an extra {'/'.join('column' if k == 'width' else 'row' for k, _ in odd)}, "
            f"add {switch('crop_even')} to drop it explicitly"
        )
    raise RawFormatError(
        f"{path}: the mosaic is {width}x{height} (WxH); a Bayer mosaic is made of whole 2x2 tiles, so "
        f"both sides must be even: add {switch('crop_even')} to drop the last "
        f"{' and '.join('column' if k == 'width' else 'row' for k, _ in odd)} explicitly"
    )


def check_sample_range(mosaic: np.ndarray, white: float, path: Path, *, stored: str) -> None:
    """Refuse a white level far below what the samples reach (wrong --white, --dtype or byte order).

    Samples may exceed the white level a little (a white level below the ADC range is
    common), but data that needs two or more bits more than the white level does not
    come from a sensor saturating at that level.
    """
    if mosaic.size == 0:
        return
    top = int(mosaic.max())
    white_bits = max(int(white), 1).bit_length()
    if top >= 1 << (white_bits + 1):
        data_bits = top.bit_length()
        raise RawFormatError(
            f"{path}: samples reach {top} ({data_bits}-bit data) but the white level is {white:g} "
            f"({white_bits}-bit): pass the sensor's saturation value with {flags(['white_level'])}, "
            f"e.g. --white {(1 << data_bits) - 1}; if the values look wrong, check {stored}"
        )
