"""Image-quality metrics (PSNR, SSIM, MS-SSIM) as the reference ISP evaluation computes them.

Two front ends share one definition of every metric:

* numpy, for evaluation and conversion verification: ``psnr``, ``ssim``, ``ms_ssim`` and
  ``compare`` take channels-last float arrays, HWC (one image, returns a float) or NHWC
  (a batch, returns one value per image as an ``(N,)`` float64 array); they compute in
  float64.
* torch, for training: ``psnr_torch``, ``ssim_torch``, ``ms_ssim_torch`` take NCHW
  tensors and return one value per image as an ``(N,)`` tensor; ``ssim_loss`` and
  ``ms_ssim_loss`` return the scalar ``1 - mean(...)``. They are differentiable and
  compute in the input's dtype (float16/bfloat16 are computed in float32).

Definitions (constants below are the single source of truth for both front ends):

* PSNR = 10*log10(data_range**2 / MSE), MSE over all pixels and channels of one image;
  ``inf`` for identical images.
* SSIM (Wang et al. 2004): 11-tap Gaussian window with sigma 1.5, applied without padding
  ("valid"), population (co)variances, K1 = 0.01, K2 = 0.03, C = (K * data_range)**2;
  the mean of the SSIM map per channel, then averaged over channels. This equals
  scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, channel_axis=-1)``.
* MS-SSIM (Wang et al. 2003): 5 scales with weights 0.0448, 0.2856, 0.3001, 0.2363,
  0.1333; the mean contrast-structure term at scales 1-4 and the SSIM at scale 5, each
  clamped at 0, combined as the weighted product per channel and averaged over channels;
  2x2 average pooling between scales. A side that is odd at some scale is first padded
  by repeating its last row/column, as tf.image.ssim_multiscale (the reference PyNET
  evaluation) does; pytorch_msssim zero-pads both ends there instead, so the two agree
  exactly only when every scale is even (sides that are multiples of 16). Images need at
  least ``MS_SSIM_MIN_SIDE`` (161) px on each side.

Only numpy is imported at module level; torch loads inside the torch functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_isp._deps import require
from edge_isp.errors import InputError

__all__ = [
    "K1",
    "K2",
    "MS_SSIM_MIN_SIDE",
    "MS_SSIM_WEIGHTS",
    "WINDOW_SIGMA",
    "WINDOW_SIZE",
    "ColourDifference",
    "ImageQuality",
    "colour_difference",
    "compare",
    "gaussian_window",
    "ms_ssim",
    "psnr",
    "ssim",
]

# --------------------------------------------------------------------------- constants

WINDOW_SIZE: int = 11
WINDOW_SIGMA: float = 1.5
K1: float = 0.01
K2: float = 0.03
MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# The coarsest scale (after len-1 halvings) must still hold one full window.
MS_SSIM_MIN_SIDE: int = (WINDOW_SIZE - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1) + 1

FloatArray = npt.NDArray[np.float64]

# Output rows per strip in the numpy SSIM (bounds its working memory; any value is exact).
_STRIP_ROWS = 64


# ------------------------------------------------------------- shared definitions


@lru_cache(maxsize=8)
def _gaussian_window_cached(size: int, sigma: float) -> FloatArray:
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    window = np.exp(-0.5 * (offsets / sigma) ** 2)
    window /= window.sum()
    window.setflags(write=False)
    return window


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA) -> FloatArray:
    """The normalised 1-D Gaussian window (read-only, float64) both front ends filter with."""
    if size < 1 or size % 2 == 0:
        raise InputError(f"window size must be a positive odd number, got {size}")
    if not sigma > 0:
        raise InputError(f"window sigma must be positive, got {sigma}")
    return _gaussian_window_cached(int(size), float(sigma))


def _stability_constants(data_range: float) -> tuple[float, float]:
    return (K1 * data_range) ** 2, (K2 * data_range) ** 2


def _ssim_cs_maps(
    mu_x: Any, mu_y: Any, e_xx: Any, e_yy: Any, e_xy: Any, c1: float, c2: float
) -> tuple[Any, Any]:
    """SSIM and contrast-structure maps from local moments (numpy arrays or tensors alike).

    ``mu_*`` are local means, ``e_**`` local means of products; variances are the
    population ones, E[x^2] - E[x]^2.
    """
    mu_xx = mu_x * mu_x
    mu_yy = mu_y * mu_y
    mu_xy = mu_x * mu_y
    var_x = e_xx - mu_xx
    var_y = e_yy - mu_yy
    cov_xy = e_xy - mu_xy
    cs_map = (2.0 * cov_xy + c2) / (var_x + var_y + c2)
    luminance = (2.0 * mu_xy + c1) / (mu_xx + mu_yy + c1)
    return luminance * cs_map, cs_map


def _psnr_from_mse(mse: FloatArray, data_range: float) -> FloatArray:
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / mse)


def _check_data_range(data_range: float) -> float:
    try:
        value = float(data_range)
    except (TypeError, ValueError):
        raise InputError(f"data_range must be a number, got {data_range!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise InputError(
            f"data_range must be a positive finite number (1.0 for images in [0, 1]), "
            f"got {data_range!r}"
        )
    return value


def _ms_ssim_too_small(height: int, width: int) -> InputError:
    return InputError(
        f"MS-SSIM needs images at least {MS_SSIM_MIN_SIDE}x{MS_SSIM_MIN_SIDE} px "
        f"({len(MS_SSIM_WEIGHTS)} scales with an {WINDOW_SIZE}-px window), got "
        f"{height}x{width}; use ssim() for smaller images"
    )


def _ssim_too_small(height: int, width: int) -> InputError:
    return InputError(
        f"SSIM needs images at least {WINDOW_SIZE}x{WINDOW_SIZE} px (the Gaussian window), "
        f"got {height}x{width}"
    )


# ------------------------------------------------------------------ numpy front end


def _as_nhwc(array: Any, name: str) -> FloatArray:
    """Validate one channels-last float input and return it as an NHWC float64 array."""
    if not isinstance(array, np.ndarray):
        if type(array).__module__.startswith("torch"):
            raise InputError(
                f"{name} is a torch tensor; the numpy metrics take arrays "
                f"(use x.detach().cpu().numpy(), or the *_torch functions)"
            )
        array = np.asarray(array)
    if array.ndim not in (3, 4):
        hint = " (add a channel axis: x[..., None])" if array.ndim == 2 else ""
        raise InputError(
            f"{name} must be an HWC or NHWC array, got shape {tuple(array.shape)}{hint}"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise InputError(
            f"{name} must be a float array, got dtype {array.dtype}; convert it, "
            f"e.g. x.astype(np.float32) / 255 for 8-bit images"
        )
    if array.size == 0:
        raise InputError(f"{name} is empty (shape {tuple(array.shape)})")
    if array.shape[-1] > 4 and array.shape[-3] <= 4:
        raise InputError(
            f"{name} has shape {tuple(array.shape)}, which looks channels-first; the numpy "
            f"metrics take HWC/NHWC (use np.moveaxis(x, -3, -1))"
        )
    bad = array.size - int(np.count_nonzero(np.isfinite(array)))
    if bad:
        raise InputError(
            f"{name} contains NaN or infinite values ({bad} of {array.size}); "
            f"fix or mask them first"
        )
    out = np.asarray(array, dtype=np.float64)
    return out[None] if out.ndim == 3 else out


def _prepare_pair(reference: Any, test: Any) -> tuple[FloatArray, FloatArray, bool]:
    """Both inputs as NHWC float64, and whether the caller passed a single HWC image."""
    ref = _as_nhwc(reference, "reference")
    tst = _as_nhwc(test, "test")
    if ref.shape != tst.shape:
        raise InputError(
            f"reference and test shapes differ: {tuple(np.shape(reference))} vs "
            f"{tuple(np.shape(test))}; crop or resize test to the reference shape"
        )
    return ref, tst, np.ndim(reference) == 3


def _per_image(values: FloatArray, single: bool) -> float | FloatArray:
    return float(values[0]) if single else values


def _filter_valid_np(x: FloatArray, window: FloatArray, axis: int) -> FloatArray:
    """Correlate along ``axis`` with ``window``, keeping only fully covered positions."""
    taps = window.size
    length = x.shape[axis] - taps + 1
    index: list[slice] = [slice(None)] * x.ndim
    index[axis] = slice(0, length)
    out = window[0] * x[tuple(index)]
    term = np.empty_like(out)
    for k in range(1, taps):
        index[axis] = slice(k, k + length)
        np.multiply(x[tuple(index)], window[k], out=term)
        out += term
    return out


def _ssim_cs_np(
    ref: FloatArray, tst: FloatArray, data_range: float
) -> tuple[FloatArray, FloatArray]:
    """Mean SSIM and mean contrast-structure per image and channel, each ``(N, C)``.

    Works through each image plane in strips of rows so the intermediate moment maps stay
    small (cache-sized) even for 12 MP images.
    """
    window = gaussian_window()
    taps = window.size
    c1, c2 = _stability_constants(data_range)
    n_images, height, width, channels = ref.shape
    out_h, out_w = height - taps + 1, width - taps + 1
    ssim_sum = np.zeros((n_images, channels))
    cs_sum = np.zeros((n_images, channels))
    for i in range(n_images):
        for ch in range(channels):
            x = np.ascontiguousarray(ref[i, :, :, ch])
            y = np.ascontiguousarray(tst[i, :, :, ch])
            for top in range(0, out_h, _STRIP_ROWS):
                rows = slice(top, min(top + _STRIP_ROWS, out_h) + taps - 1)
                xs, ys = x[rows], y[rows]
                moments = np.stack([xs, ys, xs * xs, ys * ys, xs * ys])  # (5, rows, W)
                local = _filter_valid_np(_filter_valid_np(moments, window, 1), window, 2)
                ssim_map, cs_map = _ssim_cs_maps(*local, c1, c2)
                ssim_sum[i, ch] += ssim_map.sum()
                cs_sum[i, ch] += cs_map.sum()
    count = out_h * out_w
    return ssim_sum / count, cs_sum / count


def _downsample2_np(x: FloatArray) -> FloatArray:
    """2x2 average pooling of NHWC; an odd side first repeats its last row/column."""
    n, h, w, c = x.shape
    if h % 2 or w % 2:
        x = np.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    h2, w2 = x.shape[1] // 2, x.shape[2] // 2
    return x.reshape(n, h2, 2, w2, 2, c).mean(axis=(2, 4))


def _combine_scales_np(cs_terms: Sequence[FloatArray], last_ssim: FloatArray) -> FloatArray:
    factors = np.maximum(np.stack([*cs_terms, last_ssim]), 0.0)  # (S, N, C)
    weights = np.asarray(MS_SSIM_WEIGHTS, dtype=np.float64)[:, None, None]
    return np.prod(factors**weights, axis=0).mean(axis=1)


def _psnr_np(ref: FloatArray, tst: FloatArray, data_range: float) -> FloatArray:
    mse = np.mean((ref - tst) ** 2, axis=(1, 2, 3))
    return _psnr_from_mse(mse, data_range)


def _ssim_np(ref: FloatArray, tst: FloatArray, data_range: float) -> FloatArray:
    if min(ref.shape[1:3]) < WINDOW_SIZE:
        raise _ssim_too_small(*ref.shape[1:3])
    ssim_nc, _ = _ssim_cs_np(ref, tst, data_range)
    return ssim_nc.mean(axis=1)


def _ms_ssim_np(
    ref: FloatArray, tst: FloatArray, data_range: float
) -> tuple[FloatArray, FloatArray]:
    """MS-SSIM per image, and (free from its first scale) SSIM per image."""
    if min(ref.shape[1:3]) < MS_SSIM_MIN_SIDE:
        raise _ms_ssim_too_small(*ref.shape[1:3])
    cs_terms: list[FloatArray] = []
    full_scale_ssim: FloatArray | None = None
    for _ in range(len(MS_SSIM_WEIGHTS) - 1):
        ssim_nc, cs_nc = _ssim_cs_np(ref, tst, data_range)
        if full_scale_ssim is None:
            full_scale_ssim = ssim_nc.mean(axis=1)
        cs_terms.append(cs_nc)
        ref, tst = _downsample2_np(ref), _downsample2_np(tst)
    ssim_nc, _ = _ssim_cs_np(ref, tst, data_range)
    assert full_scale_ssim is not None
    return _combine_scales_np(cs_terms, ssim_nc), full_scale_ssim


def psnr(reference: Any, test: Any, *, data_range: float = 1.0) -> float | FloatArray:
    """PSNR in dB: a float for HWC input, an ``(N,)`` array (one per image) for NHWC.

    ``inf`` where the images are identical.
    """
    data_range = _check_data_range(data_range)
    ref, tst, single = _prepare_pair(reference, test)
    return _per_image(_psnr_np(ref, tst, data_range), single)


def ssim(reference: Any, test: Any, *, data_range: float = 1.0) -> float | FloatArray:
    """SSIM averaged over channels: a float for HWC input, an ``(N,)`` array for NHWC.

    Needs at least ``WINDOW_SIZE`` (11) px on each side.
    """
    data_range = _check_data_range(data_range)
    ref, tst, single = _prepare_pair(reference, test)
    return _per_image(_ssim_np(ref, tst, data_range), single)


def ms_ssim(reference: Any, test: Any, *, data_range: float = 1.0) -> float | FloatArray:
    """MS-SSIM (5 scales): a float for HWC input, an ``(N,)`` array for NHWC.

    Needs at least ``MS_SSIM_MIN_SIDE`` (161) px on each side.
    """
    data_range = _check_data_range(data_range)
    ref, tst, single = _prepare_pair(reference, test)
    return _per_image(_ms_ssim_np(ref, tst, data_range)[0], single)


@dataclass(frozen=True)
class ImageQuality:
    """How close ``test`` is to ``reference``; for a batch, the means over its images.

    ``ms_ssim`` is None when it was not computed (images smaller than
    ``MS_SSIM_MIN_SIDE`` px, or not asked for). ``psnr_db`` is ``inf`` for identical
    images. ``max_abs_err`` is the largest absolute pixel difference in the batch.
    """

    psnr_db: float
    ssim: float
    ms_ssim: float | None
    max_abs_err: float


def compare(
    reference: Any,
    test: Any,
    *,
    data_range: float = 1.0,
    with_ms_ssim: bool | None = None,
) -> ImageQuality:
    """PSNR, SSIM, MS-SSIM and max abs error of ``test`` against ``reference`` (HWC/NHWC).

    ``with_ms_ssim``: None computes MS-SSIM when the images are large enough and leaves
    it None otherwise; True requires it (InputError if too small); False skips it.
    """
    data_range = _check_data_range(data_range)
    ref, tst, _ = _prepare_pair(reference, test)
    if with_ms_ssim is None:
        with_ms_ssim = min(ref.shape[1:3]) >= MS_SSIM_MIN_SIDE
    ms_value: float | None = None
    if with_ms_ssim:
        ms_values, ssim_values = _ms_ssim_np(ref, tst, data_range)
        ms_value = float(ms_values.mean())
    else:
        ssim_values = _ssim_np(ref, tst, data_range)
    return ImageQuality(
        psnr_db=float(_psnr_np(ref, tst, data_range).mean()),
        ssim=float(ssim_values.mean()),
        ms_ssim=ms_value,
        max_abs_err=float(np.max(np.abs(ref - tst))),
    )


# ------------------------------------------------------------ colour (scikit-image)


@dataclass(frozen=True)
class ColourDifference:
    """How the colours of ``test`` differ from ``reference`` (display sRGB, D65).

    ``delta_e00``: the mean CIEDE2000 difference over the pixels (about 1 is a just
    noticeable difference; scikit-image ``deltaE_ciede2000`` on ``rgb2lab``).
    ``lightness_diff``: mean L* of ``test`` minus mean L* of ``reference`` (L* 0..100);
    above 0 the test is brighter.
    """

    delta_e00: float
    lightness_diff: float


def colour_difference(reference: Any, test: Any) -> ColourDifference:
    """CIEDE2000 and mean lightness difference of two sRGB HWC images in [0, 1]."""
    color = require("skimage.color", "CIEDE2000 colour differences")
    ref, tst, single = _prepare_pair(reference, test)
    if not single or ref.shape[-1] != 3:
        raise InputError(f"colour_difference takes one RGB image (H, W, 3), got {tuple(np.shape(reference))}")
    lab_ref = color.rgb2lab(np.clip(ref[0], 0.0, 1.0))
    lab_tst = color.rgb2lab(np.clip(tst[0], 0.0, 1.0))
    return ColourDifference(
        delta_e00=float(np.mean(color.deltaE_ciede2000(lab_ref, lab_tst))),
        lightness_diff=float(lab_tst[..., 0].mean() - lab_ref[..., 0].mean()),
    )


# The torch front end (differentiable, for training) lives in edge_isp/metrics_torch.py; its
# names stay reachable here without importing it (and torch) up front.
_TORCH_NAMES = ("psnr_torch", "ssim_torch", "ms_ssim_torch", "ssim_loss", "ms_ssim_loss")


def __getattr__(name: str) -> Any:
    if name in _TORCH_NAMES:
        from edge_isp import metrics_torch

        return getattr(metrics_torch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
