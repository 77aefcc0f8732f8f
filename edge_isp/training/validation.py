"""Validation of a model being trained: PSNR / SSIM against targets of its output's size."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def match_size(target: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """Resize ``target`` to ``output``'s spatial size (PyNET levels: downsample the target)."""
    if target.shape[-2:] == output.shape[-2:]:
        return target
    return F.interpolate(target, size=output.shape[-2:], mode="bilinear", align_corners=False,
                         antialias=True)


@torch.no_grad()
def validate(model: torch.nn.Module, pairs: list[tuple[str, torch.Tensor, torch.Tensor]],
             device: torch.device) -> dict[str, float]:
    """Mean PSNR / SSIM of ``model`` over validation pairs (one image at a time)."""
    from edge_isp.metrics_torch import psnr_torch, ssim_torch

    was_training = model.training
    model.eval()
    ps, ss = [], []
    for _, x, y in pairs:
        out = model(x[None].to(device)).clamp(0, 1)
        tgt = match_size(y[None].to(device), out)
        ps.append(float(psnr_torch(tgt, out, check_finite=False)[0]))
        ss.append(float(ssim_torch(tgt, out, check_finite=False)[0])
                  if min(out.shape[-2:]) >= 11 else float("nan"))
    model.train(was_training)
    n = max(1, len(ps))
    return {"psnr_db": sum(ps) / n, "ssim": sum(ss) / n}
