"""The built-in sample RAW file shipped inside the package (Halide's bayer_small.png, MIT)."""

from __future__ import annotations

import atexit
import contextlib
from importlib import resources
from pathlib import Path

from edge_isp.errors import InputError
from edge_isp.raw.image import RawImage

SAMPLE_NAME = "halide_bayer_small_grbg.png"
SAMPLE_LAYOUT: dict[str, object] = {"cfa": "GRBG", "black_level": 25, "white_level": 1023}
"""What is known about the sample: 10-bit GRBG data with black level 25 (a dog, 256x344 WxH)."""

_files = contextlib.ExitStack()
atexit.register(_files.close)
_cached: Path | None = None


def sample_path() -> Path:
    """Path of the built-in sample (extracted to a temporary file if installed zipped)."""
    global _cached
    if _cached is None or not _cached.exists():
        resource = resources.files("edge_isp") / "assets" / SAMPLE_NAME
        if not resource.is_file():
            raise InputError(
                f"the built-in sample {SAMPLE_NAME} is missing from the installed package; "
                "reinstall edge-isp (the assets/ folder must be included as package data)"
            )
        _cached = Path(_files.enter_context(resources.as_file(resource)))
    return _cached


def read_sample() -> RawImage:
    """The built-in sample as a RawImage (GRBG, black 25, white 1023)."""
    from edge_isp.raw.readers import read_raw

    return read_raw(sample_path(), **SAMPLE_LAYOUT)  # type: ignore[arg-type]
