"""Calibration and verification inputs: real RAW files, packed exactly as inference packs them.

Calibration crops and verification crops never overlap: with two or more files the last
ones are held out for verification; with a single file verification uses crops from a
different random stream and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.errors import InputError, RawFormatError

DEFAULT_CALIB_SAMPLES = 16
DEFAULT_VERIFY_SAMPLES = 4


@dataclass
class InputSet:
    """A stack of packed Bayer crops (N,4,h,w) float32 in [0,1] and where they came from."""

    data: np.ndarray
    description: dict[str, Any] = field(default_factory=dict)
    # The model's other inputs per sample (N, ...), by name: a two-pass part's statistics.
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def sample(self, i: int, input_name: str) -> dict[str, np.ndarray]:
        """Sample ``i`` as named batch-1 inputs."""
        return {input_name: self.data[i:i + 1], **{n: v[i:i + 1] for n, v in self.extra.items()}}

    def __len__(self) -> int:
        return int(self.data.shape[0])


def _packed_sources(files: list[Path], layout: dict[str, Any]) -> list[np.ndarray]:
    from edge_isp.raw.readers import read_raw

    packed = []
    for path in files:
        try:
            packed.append(read_raw(path, **layout).packed().astype(np.float32))
        except (RawFormatError, InputError) as exc:
            raise InputError(f"calibration file unreadable: {exc}") from exc
    return packed


def _random_crops(sources: list[np.ndarray], hw: tuple[int, int], n: int, seed: int) -> np.ndarray:
    """``n`` crops of packed size ``hw``; sources smaller than ``hw`` are mirror-extended.

    Crops are taken on the packed grid, so every crop keeps the canonical CFA order.
    """
    rng = np.random.default_rng(seed)
    h, w = hw
    out = np.empty((n, 4, h, w), np.float32)
    for i in range(n):
        src = sources[i % len(sources)]
        ph, pw = max(0, h - src.shape[1]), max(0, w - src.shape[2])
        if ph or pw:
            src = np.pad(src, ((0, 0), (0, ph), (0, pw)), mode="symmetric")
        y = int(rng.integers(0, src.shape[1] - h + 1))
        x = int(rng.integers(0, src.shape[2] - w + 1))
        out[i] = src[:, y:y + h, x:x + w]
    return out


def list_raw_files(folder: Path) -> list[Path]:
    from edge_isp.raw.readers import supported_extensions

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"calibration folder {folder} does not exist; pass a folder of RAW files with --calib")
    exts = set(supported_extensions())
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts)
    if not files:
        raise InputError(
            f"no RAW files in {folder} (looked for {', '.join(sorted(exts))}); "
            "put DNG/RAW/PNG Bayer files there or omit --calib to use the bundled sample"
        )
    return files


def make_input_sets(packed_hw: tuple[int, int], calib_dir: Path | None = None,
                    n_calib: int = DEFAULT_CALIB_SAMPLES, n_verify: int = DEFAULT_VERIFY_SAMPLES,
                    seed: int = 0, layout: dict[str, Any] | None = None) -> tuple[InputSet, InputSet]:
    """Build (calibration, verification) sets at the model's packed input size."""
    from edge_isp.raw.samples import read_sample, sample_path

    if calib_dir is None:
        files, origin = [Path(sample_path())], "bundled sample (halide_bayer_small_grbg.png)"
        sources = [read_sample().packed().astype(np.float32)]
    else:
        files, origin = list_raw_files(calib_dir), str(calib_dir)
        sources = _packed_sources(files, layout or {})
    if len(sources) >= 2:
        n_hold = max(1, len(sources) // 5)
        calib_src, verify_src = sources[:-n_hold], sources[-n_hold:]
        split = f"{len(files) - n_hold} files for calibration, {n_hold} held out for verification"
        held_out = [f.name for f in files[-n_hold:]]
    else:
        calib_src = verify_src = sources
        split = "one file: calibration and verification use different random crops"
        held_out = [f.name for f in files]
    calib = InputSet(_random_crops(calib_src, packed_hw, n_calib, seed), {
        "source": origin, "files": [f.name for f in files[: len(calib_src)]],
        "samples": n_calib, "crop_packed_hw": list(packed_hw), "seed": seed, "split": split,
    })
    verify = InputSet(_random_crops(verify_src, packed_hw, n_verify, seed + 10_007), {
        "source": origin, "files": held_out, "samples": n_verify,
        "crop_packed_hw": list(packed_hw), "seed": seed + 10_007,
    })
    return calib, verify
