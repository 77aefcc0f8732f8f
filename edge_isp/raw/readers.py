"""``read_raw``: one entry point over the registered RAW readers.

The reader is chosen by ``format=`` or by the file extension (see
:func:`supported_extensions`).  Importing this module registers the built-in readers:
``camera`` (rawpy), ``headerless`` (.raw/.bin) and ``bayer-image`` (.png/.tif/.pgm).

An extension does not always say what a file is: ``.raw`` is the name of Kodak, Leica and
Panasonic camera files as well as of headerless sensor dumps, and a DNG is a TIFF.  So a
file the headerless or Bayer-image reader would take, or one with an unknown extension,
is first shown to LibRaw, and read as a camera RAW file when LibRaw recognises its header
(a match of the file size alone does not count: see :func:`edge_isp.raw._camera.probe_container`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edge_isp.errors import EdgeIspError, InputError, RawFormatError, UnknownNameError
from edge_isp.raw import _bayer_image, _camera, _headerless  # (importing them registers the readers)
from edge_isp.raw._checks import cli_flag, flags, switch
from edge_isp.raw._registry import (
    SWITCHES,
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
            chosen from the extension, after asking LibRaw whether the file is a camera
            RAW container (a Kodak ``.raw``, a DNG under another name).
        preset: a normalisation preset name (``zurich``, ``zurich-ca``, ...): sets the
            black/white levels (overriding the file's) and supplies the CFA when the
            format does not record one.
        **layout: ``width``, ``height``, ``dtype``, ``byte_order``, ``header_bytes``,
            ``cfa``, ``black_level``, ``white_level``; what each format needs is in its
            reader's description (:func:`get_reader`).  Explicit values win over a preset.
            Two switches apply to every format: ``crop_even=True`` drops the last
            row/column of a mosaic with an odd side (refused otherwise), and
            ``force_cfa=True`` lets ``cfa`` relabel a file that stores another pattern
            (refused otherwise; a :class:`~edge_isp.raw.RawInputWarning` is issued).

    Raises:
        RawFormatError: the file is missing, empty, unreadable, truncated or not what the layout says.
        InputError: a layout option is unknown, missing or does not apply to the format.
        UnknownNameError: unknown format, preset or CFA name.
    """
    file = Path(path)
    if not file.exists():
        raise RawFormatError(f"{file}: no such file")
    if not file.is_file():
        raise RawFormatError(f"{file}: is not a file (a folder? use edge_isp.data.RawFolder for folders)")
    try:
        empty = file.stat().st_size == 0
        with open(file, "rb"):
            pass
    except OSError as exc:
        raise RawFormatError(f"{file}: cannot be opened ({exc.strerror or type(exc).__name__})") from exc
    if empty:
        raise RawFormatError(f"{file}: the file is empty (0 bytes): the capture or the copy did not complete")
    given = RawLayout.from_kwargs(layout)
    if given.force_cfa and given.cfa is None:
        raise InputError(f"{file}: {switch('force_cfa')} only makes sense together with {flags(['cfa'])}")
    spec, verdict = _choose_reader(file, format, given)
    not_for_reader = sorted(given.given() - spec.accepts - SWITCHES)
    if not_for_reader:
        if verdict in ("container", "broken-container"):
            raise InputError(
                f"{file}: is a camera RAW file (LibRaw recognises its header), not a headerless dump: "
                f"leave out {flags(not_for_reader)}; its size, pattern and levels come from the file"
            )
        raise InputError(
            f"{file}: {flags(not_for_reader)} do not apply to {spec.name} files; "
            f"this format takes {', '.join(cli_flag(k) for k in sorted(spec.accepts)) or 'no layout options'}"
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
    except (OSError, ValueError, EOFError, MemoryError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else ""
        raise RawFormatError(f"{file}: cannot be read as {spec.name!r} ({type(exc).__name__}: {message})") from exc
    if format is None and verdict is None and spec.read is _camera.read_camera_raw:
        _camera.refuse_size_only_match(file)  # chosen by its extension: it must have a header
    metadata = dict(image.metadata)
    if given.crop_even and (image.height % 2 or image.width % 2):
        metadata["cropped_from"] = image.shape
        image = image.crop(0, 0, image.height // 2 * 2, image.width // 2 * 2)  # bottom/right: CFA unchanged
    if verdict is not None:
        metadata["libraw_probe"] = verdict
    if preset is not None:
        metadata["preset"] = get_preset(preset).name
    if metadata != image.metadata:
        image = dataclasses.replace(image, metadata=metadata)
    return image


_BUILTIN_GUESSED = (_headerless.read_headerless, _bayer_image.read_bayer_image)


def _choose_reader(file: Path, format: str | None, given: RawLayout) -> tuple[ReaderSpec, str | None]:
    """The reader for ``file`` and, when LibRaw was asked, its verdict (``probe_container``)."""
    if format is not None:
        return get_reader(format), None
    try:
        spec: ReaderSpec | None = reader_for_path(file)
    except UnknownNameError:
        spec = None
    if spec is not None and spec.read not in _BUILTIN_GUESSED:
        return spec, None  # camera extensions, and readers users registered for an extension
    if spec is not None and spec.read is _headerless.read_headerless and _describes_exactly(file, given):
        return spec, None  # the caller's width x height x dtype fills the file to the byte
    if spec is not None and spec.read is _bayer_image.read_bayer_image and not _image_may_be_container(file):
        return spec, None
    verdict = _camera.probe_container(file)
    if verdict in ("container", "broken-container"):
        return get_reader("camera"), verdict
    if spec is None:
        note = (" and LibRaw recognises it only by its size, not by a header" if verdict == "size-only"
                else " and LibRaw does not recognise it as a camera RAW file")
        reader_for_path(file, note=note)  # raises UnknownNameError
    return spec, verdict  # type: ignore[return-value]


def _describes_exactly(file: Path, given: RawLayout) -> bool:
    if given.width is None or given.height is None:
        return False
    try:
        dtype = _headerless.parse_dtype(given.dtype, given.byte_order)
        size = int(given.header_bytes or 0) + int(given.width) * int(given.height) * dtype.itemsize
    except (EdgeIspError, TypeError, ValueError):
        return False
    return size > 0 and file.stat().st_size == size


def _image_may_be_container(file: Path) -> bool:
    head = _camera.read_head(file)
    if head.startswith((b"\x89PNG", b"P2", b"P5")):
        return False
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return _bayer_image.tiff_stores_cfa(file)  # a DNG / TIFF-EP; a plain grey TIFF is a Bayer image
    return _camera.has_container_magic(head)
