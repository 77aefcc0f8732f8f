"""Synthetic photos with strong global structure, and comparing a model's output with its
untiled run: shared by the tiling tests."""

from __future__ import annotations

import numpy as np


def sky(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Packed (4, h, w) Bayer planes of a bright gradient sky over darker textured ground."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sky_ = 0.2 + 0.6 * (1 - yy / h)
    ground = yy > 0.65 * h
    tex = 0.08 * np.sin(xx / 5.0) * np.cos(yy / 3.0)
    planes = [np.where(ground, 0.2 + tex, sky_ * f) for f in (1.0, 0.8, 0.55, 0.8)]
    noise = np.random.default_rng(seed).normal(0, 0.01, (4, h, w))
    return np.clip(np.stack(planes) + noise, 0, 1).astype(np.float32)


def untiled(net, packed: np.ndarray) -> np.ndarray:
    """``net`` on the whole packed photo at once: (2h, 2w, 3) in [0, 1]."""
    import torch

    with torch.no_grad():
        return net(torch.from_numpy(packed)[None])[0].clamp(0, 1).permute(1, 2, 0).numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 300.0 if mse == 0 else 10 * np.log10(1 / mse)
