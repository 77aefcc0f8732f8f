"""The reader registry: one entry per RAW file format, looked up by name or extension."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_isp.errors import InputError, UnknownNameError
from edge_isp.raw.image import BlackLevel, RawImage


@dataclass(frozen=True)
class RawLayout:
    """What the caller says about a file's layout; None means "not given".

    Headerless files need ``width``, ``height``, ``cfa`` and ``white_level``; Bayer
    PNG/TIFF files need ``cfa`` and ``white_level``; camera RAW files need nothing and
    take ``cfa`` / ``black_level`` / ``white_level`` only as overrides of their metadata.
    """

    width: int | None = None
    height: int | None = None
    dtype: str | None = None
    byte_order: str | None = None
    header_bytes: int | None = None
    cfa: str | None = None
    black_level: BlackLevel | None = None
    white_level: float | None = None

    @classmethod
    def from_kwargs(cls, layout: dict[str, Any]) -> RawLayout:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(layout) - known)
        if unknown:
            raise InputError(
                f"unknown layout option(s) {', '.join(unknown)}; "
                f"valid options are {', '.join(sorted(known))}"
            )
        return cls(**layout)

    def given(self) -> set[str]:
        """Names of the options that were set."""
        return {f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None}


ReadFunction = Callable[[Path, RawLayout], RawImage]


@dataclass(frozen=True)
class ReaderSpec:
    """One registered reader: its name, the extensions it claims and the options it takes.

    ``self_describing`` readers take CFA and levels from the file's metadata; for the
    others a preset's CFA fills in a pattern the caller did not give.
    """

    name: str
    extensions: tuple[str, ...]
    accepts: frozenset[str]
    read: ReadFunction
    self_describing: bool = False
    description: str = ""


_READERS: dict[str, ReaderSpec] = {}
_BY_EXTENSION: dict[str, str] = {}


def _norm_ext(ext: str) -> str:
    ext = ext.strip().lower()
    return ext if ext.startswith(".") else "." + ext


def register_reader(
    name: str,
    extensions: Iterable[str],
    *,
    accepts: Iterable[str] = (),
    self_describing: bool = False,
    description: str = "",
) -> Callable[[ReadFunction], ReadFunction]:
    """Decorator registering ``fn(path, layout) -> RawImage`` as the reader ``name``.

    A later registration of an extension takes it over (so users can plug in their own
    reader for, say, ``.raw``).
    """
    valid = {f.name for f in dataclasses.fields(RawLayout)}
    bad = set(accepts) - valid
    if bad:
        raise InputError(f"reader {name!r} accepts unknown layout option(s) {sorted(bad)}")

    def decorator(fn: ReadFunction) -> ReadFunction:
        exts = tuple(_norm_ext(e) for e in extensions)
        _READERS[name] = ReaderSpec(name, exts, frozenset(accepts), fn, self_describing, description)
        for ext in exts:
            _BY_EXTENSION[ext] = name
        return fn

    return decorator


def get_reader(name: str) -> ReaderSpec:
    """The reader registered as ``name`` or UnknownNameError listing the known ones."""
    key = name.strip().lower()
    if key not in _READERS:
        raise UnknownNameError(f"unknown RAW format {name!r}; known formats: {', '.join(list_formats())}")
    return _READERS[key]


def reader_for_path(path: Path) -> ReaderSpec:
    """The reader claiming ``path``'s extension, or RawFormatError-like UnknownNameError."""
    ext = path.suffix.lower()
    if ext not in _BY_EXTENSION:
        raise UnknownNameError(
            f"{path}: no RAW reader for extension {ext or '(none)'!r}; supported: "
            f"{', '.join(supported_extensions())}; pass format=<one of {', '.join(list_formats())}> "
            "to choose a reader explicitly"
        )
    return _READERS[_BY_EXTENSION[ext]]


def list_formats() -> list[str]:
    """Names of the registered readers, sorted."""
    return sorted(_READERS)


def supported_extensions() -> list[str]:
    """Every extension some reader claims (lower case, with the dot), sorted."""
    return sorted(_BY_EXTENSION)
