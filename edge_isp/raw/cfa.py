"""Bayer colour-filter-array (CFA) patterns: names, phase arithmetic, 4-channel packing.

A CFA pattern is named by its 2x2 tile read row by row: ``"RGGB"`` means R at (0, 0),
G at (0, 1) and (1, 0), B at (1, 1).

Packing puts any of the four Bayer patterns into ONE fixed channel order, the order
of the Zurich RAW-to-RGB / PyNET reference code (:data:`PACKED_CHANNELS`)::

    0: B     1: Gr (the green on the red rows)     2: R     3: Gb (the green on the blue rows)

For an RGGB mosaic that is ``(raw[1::2, 1::2], raw[0::2, 1::2], raw[0::2, 0::2],
raw[1::2, 0::2])``, exactly what the reference loaders stack, so a model trained on them
receives the same channels from any camera.  Packing a non-RGGB mosaic keeps the
channel identities right but each colour sits at a different corner of its 2x2 block;
to reproduce RGGB geometry exactly, crop the mosaic to the RGGB phase first
(:func:`crop_to_cfa`).
"""

from __future__ import annotations

from typing import Final

import numpy as np

from edge_isp.errors import RawFormatError, UnknownNameError

CFA_PATTERNS: Final[tuple[str, ...]] = ("RGGB", "BGGR", "GRBG", "GBRG")
"""The four Bayer patterns, named by their 2x2 tile read row by row."""

PACKED_CHANNELS: Final[tuple[str, ...]] = ("B", "Gr", "R", "Gb")
"""Channel order of every packed (4, H/2, W/2) array: the Zurich / PyNET order."""


def normalize_cfa(cfa: str) -> str:
    """Return the canonical upper-case name of a Bayer pattern or raise UnknownNameError."""
    if not isinstance(cfa, str):
        raise UnknownNameError(
            f"CFA pattern must be a string such as 'RGGB', got {type(cfa).__name__}; "
            f"use one of {', '.join(CFA_PATTERNS)}"
        )
    name = cfa.strip().upper()
    if name not in CFA_PATTERNS:
        raise UnknownNameError(
            f"unknown CFA pattern {cfa!r}; use one of {', '.join(CFA_PATTERNS)} "
            "(the 2x2 Bayer tile read row by row, e.g. 'RGGB' = R at the top-left pixel)"
        )
    return name


def channel_offsets(cfa: str) -> dict[str, tuple[int, int]]:
    """Map each packed channel name (B, Gr, R, Gb) to its (row, col) inside the 2x2 tile."""
    name = normalize_cfa(cfa)
    pos = {name[i]: (i // 2, i % 2) for i in (0, 1, 2, 3) if name[i] != "G"}
    r_row, b_row = pos["R"][0], pos["B"][0]
    greens = [(i // 2, i % 2) for i in range(4) if name[i] == "G"]
    g_red = next(g for g in greens if g[0] == r_row)
    g_blue = next(g for g in greens if g[0] == b_row)
    return {"B": pos["B"], "Gr": g_red, "R": pos["R"], "Gb": g_blue}


def color_at(cfa: str, row: int, col: int) -> str:
    """The colour letter ('R', 'G' or 'B') of the pixel at (row, col) of a mosaic."""
    name = normalize_cfa(cfa)
    return name[(row % 2) * 2 + (col % 2)]


def cfa_after_crop(cfa: str, top: int, left: int) -> str:
    """The pattern of a crop whose top-left pixel is (top, left) of the original mosaic."""
    name = normalize_cfa(cfa)
    return "".join(name[((i // 2 + top) % 2) * 2 + (i % 2 + left) % 2] for i in range(4))


def cfa_after_flip(
    cfa: str, shape: tuple[int, int], *, horizontal: bool = False, vertical: bool = False
) -> str:
    """The pattern of a mosaic of ``shape`` (H, W) after a left-right / up-down flip.

    After a horizontal flip the new column 0 is the old column W-1, so the phase changes
    only when W is even (and likewise for H with a vertical flip).
    """
    height, width = int(shape[0]), int(shape[1])
    top = (height - 1) if vertical else 0
    left = (width - 1) if horizontal else 0
    return cfa_after_crop(cfa, top, left)


def cfa_offset(cfa: str, target: str) -> tuple[int, int]:
    """The (top, left) offset in {0, 1} at which a ``cfa`` mosaic shows the ``target`` pattern."""
    name, want = normalize_cfa(cfa), normalize_cfa(target)
    for top in (0, 1):
        for left in (0, 1):
            if cfa_after_crop(name, top, left) == want:
                return top, left
    raise AssertionError("unreachable: every Bayer pattern is a shift of every other")


def check_even(shape: tuple[int, ...], what: str = "mosaic") -> None:
    """Raise RawFormatError unless the last two dimensions are even (whole 2x2 tiles)."""
    if len(shape) < 2:
        raise RawFormatError(f"{what} must be 2-D (H, W), got shape {tuple(shape)}")
    height, width = int(shape[-2]), int(shape[-1])
    if height % 2 or width % 2 or height == 0 or width == 0:
        raise RawFormatError(
            f"{what} of size {height}x{width} (HxW) does not hold whole 2x2 Bayer tiles; "
            "both sides must be even and non-zero: read it with --crop-even (raw option crop_even=true), "
            "or crop it in Python with edge_isp.raw.crop_to_cfa(mosaic, cfa) or RawImage.aligned()"
        )


def pack_bayer(mosaic: np.ndarray, cfa: str) -> np.ndarray:
    """Pack a Bayer mosaic (..., H, W) into (..., 4, H/2, W/2) in the order B, Gr, R, Gb.

    The dtype is kept; normalise first (``RawImage.packed()`` does both).  Odd sizes
    raise RawFormatError, an unknown pattern UnknownNameError.
    """
    arr = np.asarray(mosaic)
    offsets = channel_offsets(cfa)
    check_even(arr.shape)
    planes = [arr[..., dy::2, dx::2] for dy, dx in (offsets[c] for c in PACKED_CHANNELS)]
    return np.stack(planes, axis=-3)


def unpack_bayer(packed: np.ndarray, cfa: str) -> np.ndarray:
    """Inverse of :func:`pack_bayer`: (..., 4, h, w) in B, Gr, R, Gb order -> (..., 2h, 2w)."""
    arr = np.asarray(packed)
    offsets = channel_offsets(cfa)
    if arr.ndim < 3 or arr.shape[-3] != 4:
        raise RawFormatError(
            f"packed Bayer data must have shape (..., 4, h, w), got {tuple(arr.shape)}; "
            "pass the output of pack_bayer / RawImage.packed()"
        )
    height, width = arr.shape[-2] * 2, arr.shape[-1] * 2
    out = np.empty(arr.shape[:-3] + (height, width), dtype=arr.dtype)
    for index, channel in enumerate(PACKED_CHANNELS):
        dy, dx = offsets[channel]
        out[..., dy::2, dx::2] = arr[..., index, :, :]
    return out


def crop_to_cfa(mosaic: np.ndarray, cfa: str, target: str = "RGGB") -> np.ndarray:
    """Crop a mosaic so it starts on the ``target`` pattern and holds whole 2x2 tiles.

    Drops at most one row/column at the top/left to reach the target phase and at most
    one at the bottom/right to make both sides even.  Returns a view.
    """
    arr = np.asarray(mosaic)
    if arr.ndim < 2:
        raise RawFormatError(f"mosaic must be 2-D (H, W), got shape {tuple(arr.shape)}")
    top, left = cfa_offset(cfa, target)
    height = (arr.shape[-2] - top) // 2 * 2
    width = (arr.shape[-1] - left) // 2 * 2
    if height <= 0 or width <= 0:
        raise RawFormatError(
            f"mosaic of size {arr.shape[-2]}x{arr.shape[-1]} is too small to hold one "
            f"{normalize_cfa(target)} tile"
        )
    return arr[..., top : top + height, left : left + width]


def cfa_masks(cfa: str, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Boolean (H, W) masks of the R, G and B sites of a mosaic of ``shape``."""
    name = normalize_cfa(cfa)
    height, width = int(shape[0]), int(shape[1])
    rows = np.arange(height)[:, None] % 2
    cols = np.arange(width)[None, :] % 2
    index = rows * 2 + cols
    letters = np.array(list(name))
    colour = letters[index]
    return {c: colour == c for c in ("R", "G", "B")}
