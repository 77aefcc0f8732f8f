"""A small classical ISP used as the reference rendering of RAW files.

``render(raw)`` runs: black/white normalisation -> white balance (as-shot gains when the
file has them, else gray-world) on the mosaic -> highlight clip -> demosaic
(Malvar-He-Cutler 2004 gradient-corrected bilinear, or plain bilinear) -> camera colour
matrix when known -> auto exposure -> sRGB transfer curve -> gentle S tone curve.
It is a baseline to compare learned ISPs with and a way to preview RAW files; it does no
denoising, lens shading or local tone mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal, Union

import numpy as np

from edge_isp.errors import InputError, UnknownNameError
from edge_isp.raw.cfa import cfa_masks, channel_offsets, crop_to_cfa, normalize_cfa, pack_bayer
from edge_isp.raw.image import RawImage

# A filter is a list of taps (dy, dx, weight) applied around a pixel.
Taps = list[tuple[int, int, float]]


def _taps(weights: dict[tuple[int, int], float], scale: float) -> Taps:
    return [(dy, dx, w / scale) for (dy, dx), w in weights.items()]


def _symmetric(center: float, **rings: float) -> dict[tuple[int, int], float]:
    """Weights from named rings: cross1 (4-neighbours), cross2 (distance-2 cross),
    diag (the 4 diagonal neighbours), h1/h2 (row neighbours), v1/v2 (column neighbours)."""
    offsets = {
        "cross1": [(-1, 0), (1, 0), (0, -1), (0, 1)],
        "cross2": [(-2, 0), (2, 0), (0, -2), (0, 2)],
        "diag": [(-1, -1), (-1, 1), (1, -1), (1, 1)],
        "h1": [(0, -1), (0, 1)],
        "h2": [(0, -2), (0, 2)],
        "v1": [(-1, 0), (1, 0)],
        "v2": [(-2, 0), (2, 0)],
    }
    weights: dict[tuple[int, int], float] = {(0, 0): center} if center else {}
    for ring, w in rings.items():
        for off in offsets[ring]:
            weights[off] = weights.get(off, 0.0) + w
    return weights


# Four interpolation filters per method, named by what they estimate:
#   green  - G at an R or B site
#   row    - the colour whose samples are the row neighbours of a G site
#   col    - the colour whose samples are the column neighbours of a G site
#   diag   - R at a B site / B at an R site
_FILTERS: Final[dict[str, dict[str, Taps]]] = {
    "bilinear": {
        "green": _taps(_symmetric(0, cross1=1), 4),
        "row": _taps(_symmetric(0, h1=1), 2),
        "col": _taps(_symmetric(0, v1=1), 2),
        "diag": _taps(_symmetric(0, diag=1), 4),
    },
    # Malvar, He & Cutler, "High-quality linear interpolation for demosaicing of
    # Bayer-patterned color images", ICASSP 2004: bilinear plus a Laplacian correction
    # from the sample's own channel.
    "malvar": {
        "green": _taps(_symmetric(4, cross1=2, cross2=-1), 8),
        "row": _taps(_symmetric(5, h1=4, h2=-1, diag=-1, v2=0.5), 8),
        "col": _taps(_symmetric(5, v1=4, v2=-1, diag=-1, h2=0.5), 8),
        "diag": _taps(_symmetric(6, diag=2, cross2=-1.5), 8),
    },
}

DEMOSAIC_METHODS: Final[tuple[str, ...]] = tuple(_FILTERS)


def _filter_sites(padded: np.ndarray, taps: Taps, dy: int, dx: int, shape: tuple[int, int], pad: int) -> np.ndarray:
    """Apply ``taps`` at the sites (dy + 2i, dx + 2j) of an image padded by ``pad``."""
    n_rows = len(range(dy, shape[0], 2))
    n_cols = len(range(dx, shape[1], 2))
    out = np.zeros((n_rows, n_cols), dtype=np.float32)
    for ky, kx, w in taps:
        r0, c0 = pad + dy + ky, pad + dx + kx
        out += np.float32(w) * padded[r0 : r0 + 2 * n_rows - 1 : 2, c0 : c0 + 2 * n_cols - 1 : 2]
    return out


def demosaic(mosaic: np.ndarray, cfa: str, method: str = "malvar") -> np.ndarray:
    """Interpolate a (H, W) Bayer mosaic to (H, W, 3) float32 RGB in the same units.

    ``method`` is ``"malvar"`` (default) or ``"bilinear"``; edges use mirror padding,
    which keeps the CFA phase.  Malvar can overshoot slightly: the result is clipped at 0.
    """
    key = method.strip().lower()
    if key not in _FILTERS:
        raise UnknownNameError(f"unknown demosaic method {method!r}; use one of {', '.join(DEMOSAIC_METHODS)}")
    name = normalize_cfa(cfa)
    data = np.asarray(mosaic, dtype=np.float32)
    if data.ndim != 2 or min(data.shape) < 3:
        raise InputError(f"demosaic needs a 2-D mosaic of at least 3x3 pixels, got shape {data.shape}")
    filters = _FILTERS[key]
    pad = 2
    padded = np.pad(data, pad, mode="reflect")
    height, width = data.shape
    out = np.empty((height, width, 3), dtype=np.float32)
    r_row = channel_offsets(name)["R"][0]
    index = {"R": 0, "G": 1, "B": 2}
    for dy in (0, 1):
        for dx in (0, 1):
            if dy >= height or dx >= width:
                continue
            colour = name[dy * 2 + dx]
            own = data[dy::2, dx::2]

            def put(c: str, values: np.ndarray, dy: int = dy, dx: int = dx) -> None:
                out[dy::2, dx::2, index[c]] = values

            def est(f: str, dy: int = dy, dx: int = dx) -> np.ndarray:
                return _filter_sites(padded, filters[f], dy, dx, (height, width), pad)

            put(colour, own)
            if colour in "RB":
                other = "B" if colour == "R" else "R"
                put("G", est("green"))
                put(other, est("diag"))
            else:
                row_colour, col_colour = ("R", "B") if dy == r_row else ("B", "R")
                put(row_colour, est("row"))
                put(col_colour, est("col"))
    np.maximum(out, 0.0, out=out)
    return out


# --------------------------------------------------------------------------- colour


def gray_world_gains(
    mosaic: np.ndarray,
    cfa: str,
    *,
    refine: int = 4,
    neutral_fraction: float = 0.2,
    saturation: float = 0.98,
) -> tuple[float, float, float]:
    """White-balance gains (R, G, B), G = 1, estimated from the scene (gray-world).

    ``mosaic`` is normalised to [0, 1]; 2x2 blocks with a clipped sample or in deep
    shadow are ignored.  Plain gray-world (``refine=0``) makes the average colour neutral,
    which fails on scenes dominated by one colour (a red flower turns dull and the
    shadows blue).  With ``refine > 0`` the estimate is repeated on the
    ``neutral_fraction`` of blocks that are most nearly grey under the current gains, so
    it converges on the scene's neutral surfaces.
    """
    packed = pack_bayer(crop_to_cfa(mosaic, cfa, cfa), cfa).astype(np.float64)
    b, gr, r, gb = packed
    g = 0.5 * (gr + gb)
    peak = packed.max(axis=0)
    valid = (peak < saturation) & (peak > 0.01)
    if valid.sum() < 16:
        valid = peak < saturation
    if valid.sum() < 16:
        return (1.0, 1.0, 1.0)
    r, g, b = r[valid], g[valid], b[valid]

    def ratios(select: np.ndarray) -> tuple[float, float] | None:
        mr, mg, mb = float(r[select].mean()), float(g[select].mean()), float(b[select].mean())
        if min(mr, mg, mb) <= 0:
            return None
        return mg / mr, mg / mb

    gains = ratios(np.ones(r.shape, dtype=bool))
    if gains is None:
        return (1.0, 1.0, 1.0)
    eps = 1e-4
    log_g = np.log(g + eps)
    for _ in range(max(0, refine)):
        chroma = np.abs(np.log(r * gains[0] + eps) - log_g) + np.abs(np.log(b * gains[1] + eps) - log_g)
        select = chroma <= np.quantile(chroma, neutral_fraction)
        if select.sum() < 16:
            break
        refined = ratios(select)
        if refined is None:
            break
        gains = refined
    return (gains[0], 1.0, gains[1])


def apply_white_balance(mosaic: np.ndarray, cfa: str, gains: Sequence[float]) -> np.ndarray:
    """Multiply each CFA site by its colour's gain; gains are rescaled so the smallest is 1
    and the result is clipped at 1, which keeps clipped highlights neutral."""
    g = np.asarray(gains, dtype=np.float32)
    g = g / g.min()
    out = np.array(mosaic, dtype=np.float32, copy=True)
    for colour, mask in cfa_masks(cfa, out.shape).items():
        out[mask] *= g["RGB".index(colour)]
    np.clip(out, 0.0, 1.0, out=out)
    return out


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer function (IEC 61966-2-1) on values in [0, 1]."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055).astype(np.float32)


def tone_curve(x: np.ndarray, strength: float = 0.3) -> np.ndarray:
    """A gentle S curve: blend of identity and smoothstep; 0 = identity, 1 = smoothstep."""
    x = np.clip(x, 0.0, 1.0)
    s = x * x * (3.0 - 2.0 * x)
    return (x + np.float32(strength) * (s - x)).astype(np.float32)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def auto_exposure_gain(
    rgb_linear: np.ndarray, percentile: float = 99.0, target: float = 0.92, max_gain: float = 4.0
) -> float:
    """Gain that brings the ``percentile`` luminance to ``target`` (only brightens, <= max_gain)."""
    level = float(np.percentile(_luma(rgb_linear), percentile))
    if level <= 1e-6:
        return max_gain
    return float(np.clip(target / level, 1.0, max_gain))


WhiteBalance = Union[Literal["auto", "as-shot", "gray-world", "none"], Sequence[float]]


def _choose_gains(raw: RawImage, mosaic: np.ndarray, white_balance: WhiteBalance) -> tuple[float, float, float]:
    if not isinstance(white_balance, str):
        gains = tuple(float(g) for g in white_balance)
        if len(gains) != 3 or min(gains) <= 0:
            raise InputError(f"white_balance gains must be three positive numbers (R, G, B), got {white_balance!r}")
        return gains  # type: ignore[return-value]
    mode = white_balance.strip().lower()
    if mode == "none":
        return (1.0, 1.0, 1.0)
    if mode == "as-shot" or (mode == "auto" and raw.wb_gains is not None):
        if raw.wb_gains is None:
            raise InputError(
                f"{raw.source or 'this image'} records no as-shot white balance; use "
                "white_balance='gray-world' or give gains (R, G, B)"
            )
        return raw.wb_gains
    if mode in ("gray-world", "auto"):
        return gray_world_gains(mosaic, raw.cfa)
    raise UnknownNameError(
        f"unknown white_balance {white_balance!r}; use 'auto', 'as-shot', 'gray-world', 'none' or (R, G, B) gains"
    )


def render(
    raw: RawImage,
    *,
    demosaic_method: str = "malvar",
    white_balance: WhiteBalance = "auto",
    color_matrix: bool | np.ndarray = True,
    exposure: Literal["auto"] | float = "auto",
    saturation: float | None = None,
    tone: float = 0.3,
) -> np.ndarray:
    """Render a RawImage to display sRGB: float32 (H, W, 3) in [0, 1].

    Args:
        demosaic_method: ``"malvar"`` or ``"bilinear"``.
        white_balance: ``"auto"`` (as-shot gains if recorded, else gray-world),
            ``"as-shot"``, ``"gray-world"``, ``"none"`` or explicit (R, G, B) gains.
        color_matrix: True to use the file's camera->sRGB matrix when it has one,
            False to skip it, or an explicit 3x3 matrix.
        exposure: ``"auto"`` (brighten so the 99th-percentile luminance is near white,
            at most +2 EV) or a fixed exposure compensation in EV.
        saturation: chroma gain around luminance; by default 1.0 with a colour matrix
            and 1.3 without one (raw camera RGB is desaturated).
        tone: strength of the S tone curve after the sRGB curve (0 = none).
    """
    mosaic = raw.normalized()
    gains = _choose_gains(raw, mosaic, white_balance)
    balanced = apply_white_balance(mosaic, raw.cfa, gains)
    rgb = demosaic(balanced, raw.cfa, demosaic_method)

    matrix: np.ndarray | None
    if isinstance(color_matrix, bool):
        matrix = raw.color_matrix if color_matrix else None
    else:
        matrix = np.asarray(color_matrix, dtype=np.float32)
        if matrix.shape != (3, 3):
            raise InputError(f"color_matrix must be 3x3, got shape {matrix.shape}")
    if matrix is not None:
        rgb = rgb @ matrix.T.astype(np.float32)
        np.clip(rgb, 0.0, None, out=rgb)

    if exposure == "auto":
        gain = auto_exposure_gain(rgb)
    else:
        gain = float(2.0 ** float(exposure))
    if gain != 1.0:
        rgb *= np.float32(gain)

    sat = (1.0 if matrix is not None else 1.3) if saturation is None else float(saturation)
    if sat != 1.0:
        luma = _luma(rgb)[..., None]
        rgb = luma + np.float32(sat) * (rgb - luma)

    out = tone_curve(srgb_encode(rgb), tone)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
