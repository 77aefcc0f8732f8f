"""Image-quality metrics on torch tensors (NCHW): the same PSNR / SSIM / MS-SSIM as
edge_isp/metrics.py (shared window and constants), differentiable, for training losses and
quick evaluation on batches. torch is imported when a function runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge_isp._deps import require
from edge_isp.errors import InputError
from edge_isp.metrics import (
    MS_SSIM_MIN_SIDE,
    MS_SSIM_WEIGHTS,
    WINDOW_SIZE,
    _check_data_range,
    gaussian_window,
    _ms_ssim_too_small,
    _ssim_cs_maps,
    _ssim_too_small,
    _stability_constants,
)

if TYPE_CHECKING:
    import torch


def _torch() -> Any:
    return require("torch", "the torch image-quality metrics")


def _prepare_pair_torch(
    reference: torch.Tensor, test: torch.Tensor, check_finite: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate two NCHW tensors; return them in one float dtype (at least float32)."""
    torch = _torch()
    for name, x in (("reference", reference), ("test", test)):
        if not isinstance(x, torch.Tensor):
            raise InputError(
                f"{name} must be a torch tensor, got {type(x).__name__}; the numpy "
                f"metrics are psnr/ssim/ms_ssim"
            )
        if x.ndim != 4:
            hint = " (add a batch axis: x.unsqueeze(0))" if x.ndim == 3 else ""
            raise InputError(
                f"{name} must be an NCHW tensor, got shape {tuple(x.shape)}{hint}"
            )
        if not x.is_floating_point():
            raise InputError(
                f"{name} must be a float tensor, got {x.dtype}; convert it, "
                f"e.g. x.float() / 255 for 8-bit images"
            )
        if x.numel() == 0:
            raise InputError(f"{name} is empty (shape {tuple(x.shape)})")
        if x.shape[1] > 4 and x.shape[-1] <= 4:
            raise InputError(
                f"{name} has shape {tuple(x.shape)}, which looks channels-last; the torch "
                f"metrics take NCHW (use x.permute(0, 3, 1, 2))"
            )
    if reference.shape != test.shape:
        raise InputError(
            f"reference and test shapes differ: {tuple(reference.shape)} vs "
            f"{tuple(test.shape)}; crop or resize test to the reference shape"
        )
    if reference.device != test.device:
        raise InputError(
            f"reference is on {reference.device} but test is on {test.device}; "
            f"move both to one device"
        )
    if check_finite:
        for name, x in (("reference", reference), ("test", test)):
            bad = x.numel() - int(torch.isfinite(x).sum())
            if bad:
                raise InputError(
                    f"{name} contains NaN or infinite values ({bad} of {x.numel()}); "
                    f"fix or mask them first"
                )
    dtype = torch.promote_types(reference.dtype, test.dtype)
    if dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32
    return reference.to(dtype), test.to(dtype)


def _filter_valid_torch(x: torch.Tensor) -> torch.Tensor:
    """Separable valid Gaussian filter of every channel of an NCHW tensor.

    A depthwise (grouped) convolution: on CPU it is several times faster than folding
    the channels into the batch axis.
    """
    torch = _torch()
    channels = x.shape[1]
    window = torch.tensor(gaussian_window().tolist(), dtype=x.dtype, device=x.device)
    vertical = window.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    horizontal = window.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    x = torch.nn.functional.conv2d(x, vertical, groups=channels)
    return torch.nn.functional.conv2d(x, horizontal, groups=channels)


def _ssim_cs_torch(
    ref: torch.Tensor, tst: torch.Tensor, data_range: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure per image and channel, each ``(N, C)``."""
    torch = _torch()
    channels = ref.shape[1]
    moments = torch.cat([ref, tst, ref * ref, tst * tst, ref * tst], dim=1)
    local = _filter_valid_torch(moments).split(channels, dim=1)
    c1, c2 = _stability_constants(data_range)
    ssim_map, cs_map = _ssim_cs_maps(*local, c1, c2)
    return ssim_map.mean(dim=(2, 3)), cs_map.mean(dim=(2, 3))


def _downsample2_torch(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling of NCHW; an odd side first repeats its last row/column."""
    functional = _torch().nn.functional
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = functional.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    return functional.avg_pool2d(x, kernel_size=2)


def psnr_torch(
    reference: torch.Tensor,
    test: torch.Tensor,
    *,
    data_range: float = 1.0,
    check_finite: bool = True,
) -> torch.Tensor:
    """PSNR in dB per image of NCHW tensors, shape ``(N,)``; ``inf`` for identical images."""
    data_range = _check_data_range(data_range)
    ref, tst = _prepare_pair_torch(reference, test, check_finite)
    mse = (ref - tst).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * _torch().log10(data_range**2 / mse)


def ssim_torch(
    reference: torch.Tensor,
    test: torch.Tensor,
    *,
    data_range: float = 1.0,
    check_finite: bool = True,
) -> torch.Tensor:
    """SSIM per image of NCHW tensors (averaged over channels), shape ``(N,)``."""
    data_range = _check_data_range(data_range)
    ref, tst = _prepare_pair_torch(reference, test, check_finite)
    if min(ref.shape[-2:]) < WINDOW_SIZE:
        raise _ssim_too_small(*ref.shape[-2:])
    ssim_nc, _ = _ssim_cs_torch(ref, tst, data_range)
    return ssim_nc.mean(dim=1)


def ms_ssim_torch(
    reference: torch.Tensor,
    test: torch.Tensor,
    *,
    data_range: float = 1.0,
    check_finite: bool = True,
) -> torch.Tensor:
    """MS-SSIM (5 scales) per image of NCHW tensors, shape ``(N,)``.

    Needs at least ``MS_SSIM_MIN_SIDE`` px on each side.
    """
    torch = _torch()
    data_range = _check_data_range(data_range)
    ref, tst = _prepare_pair_torch(reference, test, check_finite)
    if min(ref.shape[-2:]) < MS_SSIM_MIN_SIDE:
        raise _ms_ssim_too_small(*ref.shape[-2:])
    cs_terms: list[torch.Tensor] = []
    for _ in range(len(MS_SSIM_WEIGHTS) - 1):
        _, cs_nc = _ssim_cs_torch(ref, tst, data_range)
        cs_terms.append(cs_nc)
        ref, tst = _downsample2_torch(ref), _downsample2_torch(tst)
    ssim_nc, _ = _ssim_cs_torch(ref, tst, data_range)
    factors = torch.stack([*cs_terms, ssim_nc]).clamp(min=0.0)  # (S, N, C)
    weights = torch.as_tensor(MS_SSIM_WEIGHTS, dtype=ref.dtype, device=ref.device)
    return factors.pow(weights.view(-1, 1, 1)).prod(dim=0).mean(dim=1)


def _loss(
    metric: Callable[..., torch.Tensor],
    output: torch.Tensor,
    target: torch.Tensor,
    data_range: float,
    check_finite: bool,
) -> torch.Tensor:
    return 1.0 - metric(target, output, data_range=data_range, check_finite=check_finite).mean()


def ssim_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 1.0,
    check_finite: bool = True,
) -> torch.Tensor:
    """``1 - SSIM`` averaged over the batch: a differentiable scalar for training."""
    return _loss(ssim_torch, output, target, data_range, check_finite)


def ms_ssim_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 1.0,
    check_finite: bool = True,
) -> torch.Tensor:
    """``1 - MS-SSIM`` averaged over the batch: a differentiable scalar for training."""
    return _loss(ms_ssim_torch, output, target, data_range, check_finite)


__all__ = ["ms_ssim_loss", "ms_ssim_torch", "psnr_torch", "ssim_loss", "ssim_torch"]
