"""Named normalisation presets for data sets whose files carry no usable metadata.

The default path reads black/white levels and the CFA from the file itself; a preset is
how a data set's own convention is reproduced.  ``zurich`` is the Zurich RAW-to-RGB /
PyNET / UltraISP convention (RGGB, no black level, divide by 4 * 255 = 1020);
``zurich-ca`` is PyNET-CA's variant of it (divide by 1023).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from edge_isp.errors import InputError, UnknownNameError
from edge_isp.raw.cfa import normalize_cfa
from edge_isp.raw.image import BlackLevel, RawImage


@dataclass(frozen=True)
class Preset:
    """How one data set wants its RAW values normalised."""

    name: str
    black_level: BlackLevel
    white_level: float
    cfa: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.cfa is not None:
            object.__setattr__(self, "cfa", normalize_cfa(self.cfa))


_PRESETS: dict[str, Preset] = {}


def register_preset(preset: Preset, *, replace: bool = False) -> Preset:
    """Add a preset to the registry (``replace=True`` to redefine an existing name)."""
    key = preset.name.strip().lower()
    if key in _PRESETS and not replace:
        raise InputError(f"preset {preset.name!r} is already registered; pass replace=True to redefine it")
    _PRESETS[key] = preset
    return preset


def get_preset(name: str | Preset) -> Preset:
    """Look a preset up by name (case-insensitive); a Preset passes through."""
    if isinstance(name, Preset):
        return name
    key = str(name).strip().lower()
    if key not in _PRESETS:
        raise UnknownNameError(
            f"unknown normalisation preset {name!r}; known presets: {', '.join(list_presets())} "
            "(or leave it out to use the file's own black/white levels)"
        )
    return _PRESETS[key]


def list_presets() -> list[str]:
    """Names of all registered presets, sorted."""
    return sorted(_PRESETS)


def apply_preset(raw: RawImage, preset: str | Preset) -> RawImage:
    """Return ``raw`` with the preset's black/white levels (its CFA is kept)."""
    chosen = get_preset(preset)
    return dataclasses.replace(raw, black_level=chosen.black_level, white_level=chosen.white_level)


register_preset(
    Preset(
        name="zurich",
        black_level=0.0,
        white_level=1020.0,
        cfa="RGGB",
        description="Zurich RAW-to-RGB / PyNET / UltraISP: RGGB, no black level, / (4 * 255)",
    )
)
register_preset(
    Preset(
        name="zurich-ca",
        black_level=0.0,
        white_level=1023.0,
        cfa="RGGB",
        description="PyNET-CA's reading of the Zurich data: RGGB, no black level, / 1023",
    )
)
