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
    take ``black_level`` / ``white_level`` as overrides of their metadata, and ``cfa``
    only together with ``force_cfa=True`` when it differs from the pattern the file stores.

    ``crop_even`` (drop the last row/column of an odd-sized mosaic) and ``force_cfa`` are
    switches every reader takes (:data:`SWITCHES`).
    """

    width: int | None = None
    height: int | None = None
    dtype: str | None = None
    byte_order: str | None = None
    header_bytes: int | None = None
    cfa: str | None = None
    black_level: BlackLevel | None = None
    white_level: float | None = None
    crop_even: bool | None = None
    force_cfa: bool | None = None

    @classmethod
    def from_kwargs(cls, layout: dict[str, Any]) -> RawLayout:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(layout) - known)
        if unknown:
            raise InputError(
                f"unknown layout option(s) {', '.join(unknown)} (raw option / read_raw keyword); "
                f"valid options are {', '.join(sorted(known))}"
            )
        for name in SWITCHES:
            value = layout.get(name)
            if value is not None and not isinstance(value, bool):
                if str(value).strip().lower() in ("true", "1", "yes"):
                    layout = {**layout, name: True}
                elif str(value).strip().lower() in ("false", "0", "no"):
                    layout = {**layout, name: False}
                else:
                    raise InputError(
                        f"--{name.replace('_', '-')} (raw option {name}=) is a switch: true or false, got {value!r}"
                    )
        return cls(**layout)

    def given(self) -> set[str]:
        """Names of the options that were set (a switch counts when it is on)."""
        return {
            f.name for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None and not (f.name in SWITCHES and not getattr(self, f.name))
        }


SWITCHES: frozenset[str] = frozenset({"crop_even", "force_cfa"})
"""Layout options every reader takes: on/off switches about how strict to be."""


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


def reader_for_path(path: Path, *, note: str = "") -> ReaderSpec:
    """The reader claiming ``path``'s extension, or UnknownNameError (``note`` is added to it)."""
    ext = path.suffix.lower()
    if ext not in _BY_EXTENSION:
        raise UnknownNameError(
            f"{path}: no RAW reader for extension {ext or '(none)'!r}{note}; supported extensions: "
            f"{', '.join(supported_extensions())}; rename "
            "it (e.g. .raw for a headerless sensor dump), or in Python choose a reader with "
            f"read_raw(path, format=<one of {', '.join(list_formats())}>)"
        )
    return _READERS[_BY_EXTENSION[ext]]


def list_formats() -> list[str]:
    """Names of the registered readers, sorted."""
    return sorted(_READERS)


def supported_extensions() -> list[str]:
    """Every extension some reader claims (lower case, with the dot), sorted."""
    return sorted(_BY_EXTENSION)
