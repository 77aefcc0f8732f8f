"""Training data sources: one interface over synthetic pairs and paired RAW/RGB folders.

A source gives ``batch(step) -> (raw, target)`` tensors, a pure function of the source's
seed and ``step`` (so a resumed run sees the same batches as an uninterrupted one), and
``validation() -> [(name, raw, target), ...]`` for held-out evaluation.

Specs (CLI ``--data``):

- ``synthetic`` (or ``synthetic:PROFILE``: ``colour-wb-mix`` = default, ``colour-wb``,
  ``colour-hl``, ``colour``, ``v1``; see ``SYNTHETIC_PROFILES``): unprocessed
  packaged photos (:mod:`edge_isp.training.synthetic`).
- ``zurich:PATH``: the Zurich RAW-to-RGB layout (``train/huawei_raw``, ``train/canon``).
- ``ultraisp:PATH``: the MAI 2021 / UltraISP layout (``train/mediatek_raw``, ``train/fujifilm``).
- ``pairs:PATH`` (or just ``PATH``): a user folder ``raw/<name>.<raw ext>`` + ``rgb/<name>.png|jpg``,
  RAW read by :func:`edge_isp.raw.read_raw` (optionally with ``preset``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from edge_isp.errors import InputError

Pair = tuple[str, torch.Tensor, torch.Tensor]
_RGB_EXT = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


class BatchSource(Protocol):
    description: str

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]: ...

    def validation(self) -> list[Pair]: ...


@dataclass
class SyntheticSource:
    """Synthetic unprocessed pairs; validation = fixed draws of the held-out photos."""

    batch_size: int = 16
    crop: int = 128
    seed: int = 0
    val_draws: int = 16
    val_seed: int = 1
    val_max_side: int | None = None
    multiple: int = 16
    photos: Sequence[str] | None = None
    profile: str = "colour"
    description: str = field(init=False)

    def __post_init__(self) -> None:
        from edge_isp.training.synthetic import HELD_OUT, synthetic_pairs

        extra = {"photos": tuple(self.photos)} if self.photos else {}
        self._pairs = synthetic_pairs(self.profile, crop=self.crop, batch_size=self.batch_size,
                                      seed=self.seed, **extra)
        self.description = (
            f"synthetic unprocessed pairs ({self.profile} profile) from {len(self._pairs.photos)} "
            f"packaged photos (held out: {', '.join(HELD_OUT)})"
        )

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self._pairs.batch(step)
        return torch.from_numpy(x), torch.from_numpy(y)

    def validation(self) -> list[Pair]:
        from edge_isp.training.synthetic import held_out_set

        items = held_out_set(self.val_draws, seed=self.val_seed, multiple=self.multiple,
                             max_side=self.val_max_side)
        return [(it.name, torch.from_numpy(it.raw), torch.from_numpy(it.target)) for it in items]


class PairFolder(torch.utils.data.Dataset):
    """A user folder of pairs: ``raw/<name>.<ext>`` and ``rgb/<name>.png`` (or .jpg/.tif).

    The RGB target must have the RAW mosaic's size (or the model's output size for it).
    RAW files whose format does not record the pattern or levels (Bayer PNG, headerless)
    take :func:`edge_isp.raw.read_raw` layout options from ``<root>/layout.json``, e.g.
    ``{"cfa": "RGGB", "white_level": 1023}``, or from ``layout`` / ``preset``.
    """

    def __init__(self, root: str | Path, *, preset: str | None = None, **layout: Any) -> None:
        from edge_isp.raw import supported_extensions

        self.root = Path(root)
        raw_dir, rgb_dir = self.root / "raw", self.root / "rgb"
        if not raw_dir.is_dir() or not rgb_dir.is_dir():
            raise InputError(
                f"{self.root} does not match the pairs layout: expected {raw_dir}/<name>.<raw ext> "
                f"and {rgb_dir}/<name>.png (or .jpg/.tif) with matching names; for the Zurich "
                "layout use --data zurich:PATH, for UltraISP --data ultraisp:PATH"
            )
        exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in supported_extensions()}
        raws = {p.stem: p for p in sorted(raw_dir.iterdir()) if p.suffix.lower() in exts}
        rgbs = {p.stem: p for p in sorted(rgb_dir.iterdir()) if p.suffix.lower() in _RGB_EXT}
        if not raws:
            raise InputError(f"{raw_dir} holds no RAW files ({', '.join(sorted(exts))})")
        missing = sorted(set(raws) - set(rgbs))
        if missing:
            raise InputError(
                f"{len(missing)} RAW file(s) in {raw_dir} have no target in {rgb_dir} "
                f"(e.g. {missing[0]}): every raw/<name>.* needs rgb/<name>.png"
            )
        self.names = sorted(raws)
        self.raws, self.rgbs = raws, rgbs
        layout_file = self.root / "layout.json"
        if layout_file.is_file():
            import json

            try:
                layout = {**json.loads(layout_file.read_text()), **layout}
            except json.JSONDecodeError as exc:
                raise InputError(f"{layout_file} is not valid JSON: {exc}") from exc
        self.preset, self.layout = preset, layout

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from edge_isp.data.datasets import _load_rgb
        from edge_isp.raw import read_raw

        name = self.names[index]
        raw = read_raw(self.raws[name], preset=self.preset, **self.layout)
        rgb = _load_rgb(self.rgbs[name])
        packed = torch.from_numpy(np.ascontiguousarray(raw.packed()))
        target = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float() / 255.0
        return packed, target


def _random_crop(x: torch.Tensor, y: torch.Tensor, crop: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop a packed RAW (4,h,w) and its target (3,sh,sw) at the same place (packed units)."""
    ph = crop // 2
    h, w = x.shape[-2:]
    scale = y.shape[-1] // w
    if h < ph or w < ph:
        raise InputError(f"a pair of packed size {h}x{w} is smaller than the crop {crop} (mosaic px)")
    top, left = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - ph + 1))
    return (x[:, top:top + ph, left:left + ph],
            y[:, top * scale:(top + ph) * scale, left * scale:(left + ph) * scale])


@dataclass
class DatasetSource:
    """Batches from a map-style dataset of (packed RAW, target) pairs, seeded per step."""

    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset | None
    batch_size: int = 16
    crop: int | None = None
    seed: int = 0
    val_limit: int = 32
    description: str = "dataset"

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.train)  # type: ignore[arg-type]
        per_epoch = max(1, n // self.batch_size)
        epoch, k = divmod(step, per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(n)
        idx = [int(order[(k * self.batch_size + j) % n]) for j in range(self.batch_size)]
        rng = np.random.default_rng([self.seed, 1, step])
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        xs, ys = [], []
        for i in idx:
            aug = getattr(self.train, "_aug", None)
            if aug is not None:
                aug.generator = gen
            x, y = self.train[i]
            if self.crop is not None and getattr(self.train, "crop", None) is None:
                x, y = _random_crop(x, y, self.crop, rng)
            xs.append(x)
            ys.append(y)
        return torch.stack(xs), torch.stack(ys)

    def validation(self) -> list[Pair]:
        if self.val is None:
            return []
        n = min(len(self.val), self.val_limit)  # type: ignore[arg-type]
        out: list[Pair] = []
        for i in range(n):
            x, y = self.val[i]
            out.append((f"val#{i}", x, y))
        return out


def make_source(spec: str, *, batch_size: int, crop: int, seed: int, level: int = 0,
                val_draws: int = 16, multiple: int = 16, preset: str | None = None,
                val_size: int | None = None) -> BatchSource:
    """Build the data source named by ``spec`` (see the module docstring)."""
    kind, _, path = spec.partition(":")
    if kind == "synthetic":
        # 'synthetic' = the default profile; 'synthetic:v1', 'synthetic:colour-wb' ... name one.
        from edge_isp.training.synthetic import DEFAULT_PROFILE

        return SyntheticSource(batch_size=batch_size, crop=crop, seed=seed, val_draws=val_draws,
                               multiple=multiple, val_max_side=val_size, profile=path or DEFAULT_PROFILE)
    if not path:
        kind, path = "pairs", spec
    if kind in ("zurich", "ultraisp"):
        from edge_isp.data.datasets import ZurichRawToRgb

        dirs = ({} if kind == "zurich" else
                {"raw_dir": "mediatek_raw", "target_dir": "fujifilm", "target_ext": ".png"})
        kw = {"preset": preset} if preset else {}
        train = ZurichRawToRgb(path, "train", level=level, crop=crop, **dirs, **kw)
        try:
            val = ZurichRawToRgb(path, "test", level=level, crop=None, flips=False, **dirs, **kw)
        except InputError:
            val = None
        return DatasetSource(train, val, batch_size=batch_size, seed=seed,
                             description=f"{kind} dataset at {path} ({len(train)} training pairs)")
    if kind == "pairs":
        root = Path(path)
        if (root / "train").is_dir():
            train = PairFolder(root / "train", preset=preset)
            val = PairFolder(root / "val", preset=preset) if (root / "val").is_dir() else None
        else:
            train, val = PairFolder(root, preset=preset), None
        return DatasetSource(train, val, batch_size=batch_size, crop=crop, seed=seed,
                             description=f"pairs folder {path} ({len(train)} pairs)")
    raise InputError(
        f"unknown data spec {spec!r}; use 'synthetic', 'zurich:PATH', 'ultraisp:PATH' or 'pairs:PATH'"
    )
