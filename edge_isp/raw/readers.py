"""``read_raw``: one entry point over the registered RAW readers.

The reader is chosen by ``format=`` or by the file extension (see
:func:`supported_extensions`).  Importing this module registers the built-in readers:
``camera`` (rawpy), ``headerless`` (.raw/.bin) and ``bayer-image`` (.png/.tif/.pgm).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edge_isp.errors import EdgeIspError, InputError, RawFormatError
from edge_isp.raw import _bayer_image, _camera, _headerless  # noqa: F401  (register readers)
from edge_isp.raw._registry import (
    RawLayout,
    ReaderSpec,
    get_reader,
    list_formats,
    reader_for_path,
    register_reader,
    supported_extensions,
)
from edge_isp.raw.image import RawImage
from edge_isp.raw.presets import Preset, get_preset

__all__ = [
    "RawLayout",
    "ReaderSpec",
    "get_reader",
    "list_formats",
    "read_raw",
    "reader_for_path",
    "register_reader",
    "supported_extensions",
]


def read_raw(
    path: str | Path,
    *,
    format: str | None = None,
    preset: str | Preset | None = None,
    **layout: Any,
) -> RawImage:
    """Read a RAW file into a :class:`RawImage`.

    Args:
        path: the file.
        format: a reader name (``camera``, ``headerless``, ``bayer-image``); by default
            chosen from the extension.
        preset: a normalisation preset name (``zurich``, ``zurich-ca``, ...): sets the
            black/white levels (overriding the file's) and supplies the CFA when the
            format does not record one.
        **layout: ``width``, ``height``, ``dtype``, ``byte_order``, ``header_bytes``,
            ``cfa``, ``black_level``, ``white_level``; what each format needs is in its
            reader's description (:func:`get_reader`).  Explicit values win over a preset.

    Raises:
        RawFormatError: the file is missing, unreadable, truncated or not what the layout says.
        InputError: a layout option is unknown, missing or does not apply to the format.
        UnknownNameError: unknown format, preset or CFA name.
    """
    file = Path(path)
    if not file.exists():
        raise RawFormatError(f"{file}: no such file")
    if not file.is_file():
        raise RawFormatError(f"{file}: is not a file (a folder? use edge_isp.data.RawFolder for folders)")
    given = RawLayout.from_kwargs(layout)
    spec = get_reader(format) if format is not None else reader_for_path(file)
    not_for_reader = sorted(given.given() - spec.accepts)
    if not_for_reader:
        raise InputError(
            f"{file}: option(s) {', '.join(not_for_reader)} do not apply to {spec.name!r} files; "
            f"this format takes {', '.join(sorted(spec.accepts)) or 'no layout options'}"
        )

    effective = given
    if preset is not None:
        chosen = get_preset(preset)
        effective = dataclasses.replace(
            given,
            black_level=given.black_level if given.black_level is not None else chosen.black_level,
            white_level=given.white_level if given.white_level is not None else chosen.white_level,
            cfa=given.cfa if (given.cfa is not None or spec.self_describing) else chosen.cfa,
        )
    try:
        image = spec.read(file, effective)
    except EdgeIspError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise RawFormatError(f"{file}: cannot be read as {spec.name!r} ({type(exc).__name__}: {exc})") from exc
    if preset is not None:
        image = dataclasses.replace(image, metadata={**image.metadata, "preset": get_preset(preset).name})
    return image
