"""Numerical check of an artifact against the PyTorch model on held-out RAW crops."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edge_isp.errors import VerificationError

# JSON has no infinity: a bit-identical output is recorded at this ceiling.
PSNR_CEILING_DB = 300.0


@dataclass(frozen=True)
class Verification:
    psnr_db: float              # mean over samples of the RGB image PSNR (outputs clipped to [0,1])
    min_sample_psnr_db: float   # the worst held-out sample: the bar applies to this one
    max_abs_err: float
    min_psnr_db: float          # the threshold applied
    samples: int
    runtime: str
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _psnr_per_sample(ref: np.ndarray, out: np.ndarray) -> np.ndarray:
    mse = np.mean((ref - out) ** 2, axis=(1, 2, 3), dtype=np.float64)
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(1.0 / mse)
    return np.minimum(values, PSNR_CEILING_DB)


def compare_outputs(reference: np.ndarray, output: np.ndarray, min_psnr_db: float, runtime: str) -> Verification:
    """Compare two NCHW RGB batches as pictures (both clipped to [0,1])."""
    if reference.shape != output.shape:
        raise VerificationError(
            f"the artifact outputs shape {output.shape} but PyTorch outputs {reference.shape}; "
            "the conversion changed the graph's output layout"
        )
    ref, out = np.clip(reference, 0, 1), np.clip(output, 0, 1)
    if not np.all(np.isfinite(output)):
        per = np.zeros(len(ref))
    else:
        per = _psnr_per_sample(ref, out)
    mean = float(np.mean(per))
    return Verification(
        psnr_db=round(mean, 3), min_sample_psnr_db=round(float(np.min(per)), 3),
        max_abs_err=float(np.max(np.abs(ref - out))) if np.all(np.isfinite(output)) else math.inf,
        min_psnr_db=float(min_psnr_db), samples=int(len(ref)), runtime=runtime,
        # Every held-out picture must clear the bar: a good mean can hide one broken photo.
        passed=bool(np.min(per) >= min_psnr_db),
    )


def require_passed(v: Verification, what: str, hint: str = "") -> None:
    """Raise unless ``v`` passed; ``hint`` (the likely cause and its fix, for this model and
    target) replaces the generic advice."""
    if not v.passed:
        advice = hint or "lower the bar knowingly with --min-psnr"
        raise VerificationError(
            f"{what} differs from PyTorch: worst held-out sample {v.min_sample_psnr_db:.1f} dB PSNR "
            f"(mean {v.psnr_db:.1f} dB over {v.samples}) < {v.min_psnr_db:.1f} dB required "
            f"(max abs error {v.max_abs_err:.4f}); no artifact was written; {advice}"
        )
