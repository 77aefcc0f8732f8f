"""PyTorch datasets of packed RAW inputs (and paired RGB targets).

- :class:`ZurichRawToRgb`: the Zurich RAW-to-RGB (PyNET) layout,
  ``<root>/{train,test}/huawei_raw/<i>.png`` + ``<root>/{train,test}/canon/<i>.jpg``;
  also the same-shaped MAI / UltraISP layouts through ``raw_dir`` / ``target_dir``.
- :class:`ZurichFullResolution`: the full-resolution test photos (inputs only).
- :class:`RawFolder`: a plain folder of RAW files of any format ``read_raw`` takes.

Every item's RAW input is float32 (4, h/2, w/2) in B, Gr, R, Gb order, normalised by
the preset or the file's own levels.  Random crops and flips keep the CFA phase: the
mosaic is flipped, then the crop origin is chosen with the parity that restores the
original pattern, and the paired target gets the identical flip and window (see
:mod:`edge_isp.raw.augment`), so flipped and unflipped samples have the same sub-pixel
geometry.  Randomness comes from torch's RNG (seeded per DataLoader worker), or from
``generator`` when given.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from edge_isp._deps import require
from edge_isp.errors import InputError, RawFormatError
from edge_isp.raw.augment import Window, apply_window, plan_window
from edge_isp.raw.image import RawImage
from edge_isp.raw.readers import read_raw, supported_extensions

CropSize = int | tuple[int, int] | None


def _crop_size(crop: CropSize, multiple: int = 2) -> tuple[int, int] | None:
    if crop is None:
        return None
    size = (int(crop), int(crop)) if isinstance(crop, (int, np.integer)) else (int(crop[0]), int(crop[1]))
    for side in size:
        if side <= 0 or side % multiple:
            why = (
                "positive and even (whole 2x2 Bayer tiles)"
                if multiple == 2
                else f"positive multiples of {multiple} (even for whole Bayer tiles, and divisible "
                "by 2**level so the resized target crop is whole)"
            )
            raise InputError(f"crop {size[0]}x{size[1]} (mosaic pixels) must be {why}")
    return size


class _Augmenter:
    """Draws flips and crop origins from torch's RNG (or a given generator)."""

    def __init__(self, crop: tuple[int, int] | None, flips: bool, generator: torch.Generator | None) -> None:
        self.crop = crop
        self.flips = flips
        self.generator = generator

    def rand(self, n: int) -> int:
        return int(torch.randint(n, (1,), generator=self.generator).item())

    def plan(self, shape: tuple[int, int], cfa: str, target_cfa: str | None) -> Window:
        hflip = vflip = False
        if self.flips:
            hflip, vflip = bool(self.rand(2)), bool(self.rand(2))
        return plan_window(
            shape,
            cfa,
            self.crop,
            target_cfa=target_cfa,
            hflip=hflip,
            vflip=vflip,
            rand=self.rand if self.crop is not None else None,
        )


def _packed_tensor(raw: RawImage, window: Window, pattern: str) -> torch.Tensor:
    """Cut ``window`` from ``raw`` (which then shows ``pattern``) and pack it to a tensor."""
    cut = dataclasses.replace(raw, mosaic=apply_window(raw.mosaic, window), cfa=pattern)
    return torch.from_numpy(np.ascontiguousarray(cut.packed()))


def _numeric_stems(folder: Path, suffix: str) -> dict[int, Path]:
    found: dict[int, Path] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() == suffix and stem.isdigit() and entry.is_file():
                found[int(stem)] = Path(entry.path)
    return found


def _load_rgb(path: Path) -> np.ndarray:
    pil = require("PIL.Image", "reading target images")
    try:
        with pil.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:
        raise RawFormatError(f"{path}: not a readable RGB image ({type(exc).__name__}: {exc})") from exc


def _resize_rgb(rgb: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    if rgb.shape[:2] == size_hw:
        return rgb
    pil = require("PIL.Image", "resizing target images")
    img = pil.fromarray(rgb).resize((size_hw[1], size_hw[0]), resample=pil.Resampling.BICUBIC)
    return np.asarray(img)


class ZurichRawToRgb(Dataset):
    """Pairs of (packed RAW, RGB target) in the Zurich RAW-to-RGB layout.

    Args:
        root: the dataset folder holding ``train/`` and ``test/`` (or its parent holding
            ``raw_images/``).
        split: ``"train"`` or ``"test"``.
        level: PyNET level; targets are resized by 2**-level (448 -> 448, 224, ... 14).
        crop: None (whole patch) or a crop size in mosaic pixels (int or (h, w)); must
            be even and a multiple of 2**level so the target crop is whole.
        flips: random left-right / up-down flips (CFA-consistent, see module doc).
        preset: normalisation preset for the inputs (``zurich`` = RGGB, / 1020).
        raw_dir, target_dir, target_ext: sub-folder names, for same-shaped data sets
            (e.g. MAI/UltraISP: ``mediatek_raw`` + ``fujifilm``).
        generator: optional torch.Generator for reproducible augmentation.

    Each item is ``(raw, target)``: float32 (4, h/2, w/2) and float32 (3, h/2**level,
    w/2**level) in [0, 1].
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        level: int = 0,
        crop: CropSize = None,
        flips: bool = True,
        preset: str = "zurich",
        *,
        raw_dir: str = "huawei_raw",
        target_dir: str = "canon",
        target_ext: str = ".jpg",
        generator: torch.Generator | None = None,
    ) -> None:
        if split not in ("train", "test"):
            raise InputError(f"split must be 'train' or 'test', got {split!r}")
        if not (isinstance(level, int) and 0 <= level <= 8):
            raise InputError(f"level must be an integer 0..8 (PyNET uses 0..5), got {level!r}")
        self.root = self._locate(Path(root), split, raw_dir, target_dir, target_ext)
        self.split, self.level, self.preset = split, level, preset
        self.scale = 2**level
        self.crop = _crop_size(crop, multiple=max(2, self.scale))
        self.target_ext = target_ext if target_ext.startswith(".") else "." + target_ext
        raws = _numeric_stems(self.root / split / raw_dir, ".png")
        targets = _numeric_stems(self.root / split / target_dir, self.target_ext.lower())
        if not raws:
            raise InputError(
                f"{self.root / split / raw_dir} holds no <i>.png RAW patches; expected the Zurich layout "
                f"{split}/{raw_dir}/0.png, 1.png, ... with targets {split}/{target_dir}/0{self.target_ext}, ..."
            )
        missing = sorted(set(raws) - set(targets))
        if missing:
            shown = ", ".join(f"{i}{self.target_ext}" for i in missing[:5])
            raise InputError(
                f"{self.root / split / target_dir} lacks the targets of {len(missing)} RAW patch(es) "
                f"({shown}{', ...' if len(missing) > 5 else ''}); every {raw_dir}/<i>.png needs "
                f"{target_dir}/<i>{self.target_ext}"
            )
        self.indices = sorted(raws)
        self.raw_paths = [raws[i] for i in self.indices]
        self.target_paths = [targets[i] for i in self.indices]
        self._aug = _Augmenter(self.crop, flips, generator)

    @staticmethod
    def _locate(root: Path, split: str, raw_dir: str, target_dir: str, target_ext: str) -> Path:
        for candidate in (root, root / "raw_images"):
            if (candidate / split / raw_dir).is_dir() and (candidate / split / target_dir).is_dir():
                return candidate
        raise InputError(
            f"{root} does not look like the Zurich RAW-to-RGB dataset: expected "
            f"{root}/{split}/{raw_dir}/<i>.png and {root}/{split}/{target_dir}/<i>{target_ext} "
            f"(i = 0, 1, 2, ...), or the same under {root}/raw_images/"
        )

    def __len__(self) -> int:
        return len(self.raw_paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        raw = read_raw(self.raw_paths[index], preset=self.preset)
        target = _load_rgb(self.target_paths[index])
        if target.shape[:2] != raw.shape:
            raise RawFormatError(
                f"{self.target_paths[index]}: target is {target.shape[1]}x{target.shape[0]} but its RAW patch "
                f"{self.raw_paths[index].name} is {raw.width}x{raw.height}; Zurich targets match the mosaic size"
            )
        window = self._aug.plan(raw.shape, raw.cfa, raw.cfa)
        packed = _packed_tensor(raw, window, raw.cfa)
        cut = apply_window(target, window)
        cut = _resize_rgb(cut, (window.height // self.scale, window.width // self.scale))
        target_t = torch.from_numpy(np.ascontiguousarray(cut.transpose(2, 0, 1))).float().div_(255.0)
        return packed, target_t


class RawFolder(Dataset):
    """A folder of RAW files (any format :func:`edge_isp.raw.read_raw` takes) as packed tensors.

    Args:
        root: the folder.
        crop: None (whole image, even sides) or a crop size in mosaic pixels.
        flips: random CFA-consistent flips (off by default).
        layout: keyword arguments for ``read_raw`` shared by all files, e.g.
            ``{"width": 1920, "height": 1080, "cfa": "RGGB", "white_level": 1023}`` for
            headerless files or ``{"preset": "zurich"}``.
        cfa: the pattern every item starts on (default RGGB, the Zurich geometry), or
            None to keep each file's own phase.
        extensions: file extensions to take (default: every extension a reader claims).
        recursive: also look in sub-folders.
        generator: optional torch.Generator for reproducible augmentation.

    The first file is read when the dataset is built so a wrong layout fails early.
    """

    def __init__(
        self,
        root: str | Path,
        crop: CropSize = None,
        flips: bool = False,
        layout: dict[str, Any] | None = None,
        *,
        cfa: str | None = "RGGB",
        extensions: Iterable[str] | None = None,
        recursive: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"{self.root} is not a folder; RawFolder expects a folder of RAW files")
        wanted = extensions or supported_extensions()
        exts = sorted({e.lower() if e.startswith(".") else "." + e.lower() for e in wanted})
        pattern = "**/*" if recursive else "*"
        self.paths: list[Path] = sorted(
            p
            for p in self.root.glob(pattern)
            if p.is_file() and p.suffix.lower() in exts and not p.name.startswith(".")
        )
        if not self.paths:
            raise InputError(
                f"{self.root} holds no RAW files; expected files with extensions {', '.join(exts)} "
                f"{'in it or its sub-folders' if recursive else 'directly in it (recursive=True for sub-folders)'}"
            )
        self.layout = dict(layout or {})
        self.cfa = cfa
        self.crop = _crop_size(crop)
        self._aug = _Augmenter(self.crop, flips, generator)
        first = self.read(0)
        if self.crop is not None and (self.crop[0] > first.height or self.crop[1] > first.width):
            raise InputError(
                f"crop {self.crop[0]}x{self.crop[1]} is larger than {self.paths[0]} "
                f"({first.height}x{first.width})"
            )

    def read(self, index: int) -> RawImage:
        """The RawImage of item ``index``, unaugmented."""
        return read_raw(self.paths[index], **self.layout)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        raw = self.read(index)
        pattern = self.cfa or raw.cfa
        window = self._aug.plan(raw.shape, raw.cfa, pattern)
        return _packed_tensor(raw, window, pattern)


class ZurichFullResolution(RawFolder):
    """The Zurich full-resolution test photos (inputs only, no targets).

    ``root`` is the dataset folder (with ``test/huawei_full_resolution/`` or
    ``full_resolution/``), its parent holding ``raw_images/``, or the photo folder
    itself.  Items are whole images packed in the RGGB geometry with the preset.
    """

    FOLDERS: Sequence[str] = ("test/huawei_full_resolution", "full_resolution", "huawei_full_resolution")

    def __init__(self, root: str | Path, preset: str = "zurich", *, crop: CropSize = None) -> None:
        base = Path(root)
        candidates = [base / sub for sub in self.FOLDERS] + [base / "raw_images" / sub for sub in self.FOLDERS]
        folder = next((c for c in candidates if c.is_dir()), None)
        if folder is None:
            if base.is_dir() and any(p.suffix.lower() == ".png" for p in base.iterdir()):
                folder = base
            else:
                raise InputError(
                    f"{base} has no full-resolution photos: expected PNG mosaics in "
                    f"{' or '.join(str(base / s) for s in self.FOLDERS)}"
                )
        super().__init__(folder, crop=crop, flips=False, layout={"preset": preset}, extensions=[".png"])
