"""The RawImage record: one Bayer mosaic as stored plus what is needed to normalise it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

from edge_isp.errors import RawFormatError
from edge_isp.raw.cfa import (
    PACKED_CHANNELS,
    cfa_after_crop,
    cfa_after_flip,
    cfa_offset,
    channel_offsets,
    check_even,
    normalize_cfa,
    pack_bayer,
)

BlackLevel = Union[float, tuple[float, float, float, float]]
"""One black level for all pixels, or one per packed channel in B, Gr, R, Gb order."""


@dataclass(frozen=True, eq=False)
class RawImage:
    """A Bayer mosaic exactly as stored, with its levels, pattern and colour metadata.

    Attributes:
        mosaic: (H, W) integer array, the sensor values as stored (visible area only).
        cfa: the Bayer pattern of ``mosaic`` ("RGGB", "BGGR", "GRBG", "GBRG").
        black_level: a scalar, or four values in packed-channel order (B, Gr, R, Gb),
            so they follow the colours through crops and flips.
        white_level: the saturation value (same units as ``mosaic``).
        wb_gains: as-shot white-balance multipliers (R, G, B), normalised to G = 1,
            or None when the file does not record them.
        color_matrix: 3x3 matrix from white-balanced camera RGB to linear sRGB, or None.
        source: the file it was read from, if any.
        format: the reader that produced it ("camera", "headerless", "bayer-image", ...).
        metadata: free-form extras (camera make/model, orientation flag, ...).
    """

    mosaic: np.ndarray
    cfa: str
    black_level: BlackLevel
    white_level: float
    wb_gains: tuple[float, float, float] | None = None
    color_matrix: np.ndarray | None = None
    source: Path | None = None
    format: str = "array"
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f" ({self.source})" if self.source else ""
        mosaic = np.asarray(self.mosaic)
        if mosaic.ndim != 2:
            raise RawFormatError(
                f"a Bayer mosaic must be one sample per pixel (H, W); got shape "
                f"{tuple(mosaic.shape)}{where}. An RGB image is not RAW data."
            )
        if not np.issubdtype(mosaic.dtype, np.integer):
            raise RawFormatError(
                f"RawImage.mosaic holds the values as stored and must be integer, got "
                f"{mosaic.dtype}{where}; for float data use pack_bayer() directly"
            )
        object.__setattr__(self, "mosaic", mosaic)
        object.__setattr__(self, "cfa", normalize_cfa(self.cfa))
        black = self.black_level
        if np.ndim(black) == 0:
            black = float(black)
        else:
            values = tuple(float(v) for v in np.asarray(black, dtype=np.float64).ravel())
            if len(values) != 4:
                raise RawFormatError(
                    f"the black level (--black, raw option black_level=) must be one number or four "
                    f"(B, Gr, R, Gb), got {black!r}{where}"
                )
            black = values[0] if len(set(values)) == 1 else values
        object.__setattr__(self, "black_level", black)
        white = float(self.white_level)
        highest_black = max(black) if isinstance(black, tuple) else black
        if not np.isfinite(white) or white <= highest_black:
            raise RawFormatError(
                f"white level {white:g} must be above the black level {highest_black:g}{where}; "
                "check --white and --black (raw options white_level=, black_level=), "
                "e.g. --white 1023 for 10-bit data"
            )
        object.__setattr__(self, "white_level", white)
        if self.wb_gains is not None:
            gains = tuple(float(g) for g in self.wb_gains)
            if len(gains) != 3 or not all(np.isfinite(g) and g > 0 for g in gains):
                raise RawFormatError(f"wb_gains must be three positive numbers (R, G, B), got {self.wb_gains!r}")
            object.__setattr__(self, "wb_gains", tuple(g / gains[1] for g in gains))
        if self.color_matrix is not None:
            matrix = np.asarray(self.color_matrix, dtype=np.float32)
            if matrix.shape != (3, 3):
                raise RawFormatError(f"color_matrix must be 3x3, got shape {matrix.shape}")
            object.__setattr__(self, "color_matrix", matrix)
        if self.source is not None:
            object.__setattr__(self, "source", Path(self.source))

    # ----------------------------------------------------------------- geometry
    @property
    def height(self) -> int:
        return int(self.mosaic.shape[0])

    @property
    def width(self) -> int:
        return int(self.mosaic.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def crop(self, top: int, left: int, height: int, width: int) -> RawImage:
        """A sub-rectangle; the CFA name follows the phase of ``(top, left)``."""
        inside = top >= 0 and left >= 0 and top + height <= self.height and left + width <= self.width
        if not inside or height <= 0 or width <= 0:
            raise RawFormatError(
                f"crop {height}x{width} at ({top}, {left}) does not fit inside the "
                f"{self.height}x{self.width} mosaic"
            )
        return dataclasses.replace(
            self,
            mosaic=self.mosaic[top : top + height, left : left + width],
            cfa=cfa_after_crop(self.cfa, top, left),
        )

    def flip(self, *, horizontal: bool = False, vertical: bool = False) -> RawImage:
        """Mirror the mosaic; the CFA name is updated (per-channel black levels follow)."""
        mosaic = self.mosaic
        if horizontal:
            mosaic = mosaic[:, ::-1]
        if vertical:
            mosaic = mosaic[::-1, :]
        cfa = cfa_after_flip(self.cfa, self.shape, horizontal=horizontal, vertical=vertical)
        return dataclasses.replace(self, mosaic=mosaic, cfa=cfa)

    def aligned(self, target: str = "RGGB") -> RawImage:
        """Crop (at most one row/column per side) to start on ``target`` with even sides."""
        top, left = cfa_offset(self.cfa, target)
        height = (self.height - top) // 2 * 2
        width = (self.width - left) // 2 * 2
        return self.crop(top, left, height, width)

    def with_levels(self, black_level: BlackLevel | None = None, white_level: float | None = None) -> RawImage:
        """A copy with other black / white levels (e.g. a dataset preset)."""
        return dataclasses.replace(
            self,
            black_level=self.black_level if black_level is None else black_level,
            white_level=self.white_level if white_level is None else white_level,
        )

    # ------------------------------------------------------------ normalisation
    def black_map(self) -> np.ndarray | float:
        """The black level per pixel as an (H, W) float32 array, or a scalar when uniform."""
        if not isinstance(self.black_level, tuple):
            return self.black_level
        out = np.empty(self.shape, dtype=np.float32)
        offsets = channel_offsets(self.cfa)
        for value, channel in zip(self.black_level, PACKED_CHANNELS):
            dy, dx = offsets[channel]
            out[dy::2, dx::2] = value
        return out

    def normalized(self) -> np.ndarray:
        """float32 (H, W) mosaic: (value - black) / (white - black), clipped to [0, 1]."""
        black = self.black_map()
        data = self.mosaic.astype(np.float32)
        data -= black
        data /= np.float32(self.white_level) - black
        np.clip(data, 0.0, 1.0, out=data)
        return data

    def packed(self) -> np.ndarray:
        """float32 (4, H/2, W/2) in B, Gr, R, Gb order, normalised as :meth:`normalized`."""
        check_even(self.shape, what=f"mosaic{f' of {self.source}' if self.source else ''}")
        return pack_bayer(self.normalized(), self.cfa)

    def __repr__(self) -> str:
        src = f", source={str(self.source)!r}" if self.source else ""
        return (
            f"RawImage({self.height}x{self.width} {self.mosaic.dtype}, cfa={self.cfa!r}, "
            f"black_level={self.black_level!r}, white_level={self.white_level:g}, "
            f"wb_gains={self.wb_gains!r}, color_matrix={'yes' if self.color_matrix is not None else None}"
            f"{src}, format={self.format!r})"
        )
