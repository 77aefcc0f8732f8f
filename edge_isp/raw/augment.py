"""CFA-consistent crops and flips for training data (numpy only).

Flipping a Bayer mosaic changes its pattern (an RGGB image of even width becomes GRBG
after a left-right flip).  Packing that as-is would keep the channel names right but
move every colour to another corner of its 2x2 block, so a model would see a different
sub-pixel geometry for flipped samples.  Here a flip is always followed by a crop whose
origin has the parity that restores the original pattern:

1. flip the full mosaic (and the paired target) with numpy;
2. pick the crop origin among positions whose phase shows the wanted pattern
   (:func:`edge_isp.raw.cfa.cfa_offset` gives the parity);
3. if the wanted window is the whole image, that origin is one pixel off the edge: the
   missing row/column is filled by mirror padding (``numpy.pad(mode="reflect")``), which
   repeats a sample two pixels away and so keeps the pattern.  The target gets exactly
   the same window, so the pair stays aligned.

The same plan (:class:`Window`) is applied to the mosaic and to its target image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge_isp.errors import InputError
from edge_isp.raw.cfa import cfa_after_flip, cfa_offset, normalize_cfa

RandInt = Callable[[int], int]
"""``rand(n)`` returns an integer in [0, n)."""


@dataclass(frozen=True)
class Window:
    """Where to cut a training sample from a mosaic: flips first, then the crop.

    ``top``/``left`` are in the flipped image and may be -1 or reach one pixel past the
    far edge; those rows/columns come from mirror padding.
    """

    top: int
    left: int
    height: int
    width: int
    hflip: bool = False
    vflip: bool = False


def _origin(size: int, extent: int, parity: int, rand: RandInt | None) -> int:
    inside = list(range(parity, size - extent + 1, 2))
    if not inside:
        return parity  # whole-image window with the other phase: one mirrored line
    if rand is None:
        return inside[len(inside) // 2] if extent < size else inside[0]
    return inside[rand(len(inside))]


def plan_window(
    shape: tuple[int, int],
    cfa: str,
    size: tuple[int, int] | None = None,
    *,
    target_cfa: str | None = None,
    hflip: bool = False,
    vflip: bool = False,
    rand: RandInt | None = None,
) -> Window:
    """Plan a crop of ``size`` (H, W; even) from a mosaic of ``shape`` and pattern ``cfa``.

    After the requested flips the window starts on ``target_cfa`` (default: ``cfa``, so
    flipped samples look like unflipped ones).  ``size=None`` takes the whole image
    rounded down to even sides.  With ``rand`` the origin is random among the valid
    ones, else the window is centred.
    """
    height, width = int(shape[0]), int(shape[1])
    want = normalize_cfa(target_cfa or cfa)
    crop_h, crop_w = (height // 2 * 2, width // 2 * 2) if size is None else (int(size[0]), int(size[1]))
    if crop_h <= 0 or crop_w <= 0 or crop_h % 2 or crop_w % 2:
        raise InputError(f"crop size must be positive and even (whole Bayer tiles), got {crop_h}x{crop_w}")
    if crop_h > height or crop_w > width:
        raise InputError(f"crop {crop_h}x{crop_w} is larger than the {height}x{width} mosaic")
    flipped = cfa_after_flip(cfa, (height, width), horizontal=hflip, vertical=vflip)
    dy, dx = cfa_offset(flipped, want)
    return Window(
        top=_origin(height, crop_h, dy, rand),
        left=_origin(width, crop_w, dx, rand),
        height=crop_h,
        width=crop_w,
        hflip=hflip,
        vflip=vflip,
    )


def apply_window(array: np.ndarray, window: Window) -> np.ndarray:
    """Flip then cut ``window`` from an (H, W, ...) array, mirror-padding one line if needed."""
    data = np.asarray(array)
    if window.hflip:
        data = data[:, ::-1]
    if window.vflip:
        data = data[::-1, :]
    height, width = data.shape[:2]
    top, left = window.top, window.left
    pad_t, pad_l = max(0, -top), max(0, -left)
    pad_b = max(0, top + window.height - height)
    pad_r = max(0, left + window.width - width)
    if max(pad_t, pad_l, pad_b, pad_r) > 1:
        raise InputError(f"window {window} does not fit a {height}x{width} image")
    if pad_t or pad_l or pad_b or pad_r:
        widths = [(pad_t, pad_b), (pad_l, pad_r)] + [(0, 0)] * (data.ndim - 2)
        data = np.pad(data, widths, mode="reflect")
        top, left = top + pad_t, left + pad_l
    return np.ascontiguousarray(data[top : top + window.height, left : left + window.width])
