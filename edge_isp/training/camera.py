"""``--data camera:FOLDER``: real camera RAW files scored against the camera's own JPEG.

Most camera RAW files embed the JPEG the camera rendered from the same exposure
(:mod:`edge_isp.raw.preview`). For each such file in FOLDER a subject renders the whole
RAW file (the classical ISP with the file's metadata; a model or bundle tiled as
``edge-isp process`` does), the render is aligned and resampled onto the preview
(:mod:`edge_isp.training.align`: orientation, crop, scale) and scored there: PSNR, SSIM,
MS-SSIM, mean CIEDE2000 and the mean L* difference.

    >>> from edge_isp.training.evaluate import evaluate, evaluation_data, load_subject
    >>> data = evaluation_data("camera:photos/")
    >>> data.notes                       # files skipped, and why (e.g. no embedded JPEG)
    >>> report = evaluate(load_subject("classical"), data.pairs, name="classical", dataset=data.label)

The camera's JPEG is a rendering, not ground truth: it has the maker's tone curve,
colour rendering, sharpening and noise reduction. The scores say how close a subject
comes to what the camera made, so they compare subjects with each other on real photos.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.errors import InputError, RawFormatError
from edge_isp.raw import RawImage
from edge_isp.training.evaluate import DataOptions, EvalData, ImageScore, ScoredPair, Subject, score

KIND = "camera"


def bin_mosaic(raw: RawImage, factor: int) -> RawImage:
    """An ``factor`` x ``factor`` binned copy of a Bayer mosaic: every colour site is the
    mean of ``factor`` x ``factor`` sites of its colour, so the mosaic keeps its pattern,
    levels and colour metadata with ``factor``^2 fewer pixels (a render runs that much
    faster; it sees less noise and less detail than the full-resolution one)."""
    if factor == 1:
        return raw
    if factor < 1:
        raise InputError(f"--bin must be 1 or more, got {factor}")
    step = 2 * factor
    height, width = raw.height // step * step, raw.width // step * step
    if height == 0 or width == 0:
        raise InputError(f"{raw.source or 'the mosaic'}: {raw.width}x{raw.height} is too small to bin by {factor}")
    mosaic = raw.mosaic[:height, :width]
    out = np.empty((height // factor, width // factor), dtype=raw.mosaic.dtype)
    for dy in (0, 1):
        for dx in (0, 1):
            site = mosaic[dy::2, dx::2].astype(np.float32)
            site = site.reshape(height // step, factor, width // step, factor).mean(axis=(1, 3))
            out[dy::2, dx::2] = np.rint(site).astype(raw.mosaic.dtype)
    return dataclasses.replace(raw, mosaic=out, metadata={**raw.metadata, "binned": factor})


@dataclass(frozen=True)
class CameraPair:
    """One camera RAW file and its embedded preview (read again when scored)."""

    name: str
    path: Path
    preview_hw: tuple[int, int]
    preview_format: str
    scale: float = 1.0
    binning: int = 1

    def score_with(self, subject: Subject, lpips_fn: Any = None) -> ImageScore:
        from edge_isp.metrics import colour_difference
        from edge_isp.raw import read_raw
        from edge_isp.raw.preview import read_preview
        from edge_isp.training.align import align, resize_rgb

        if subject.render_raw is None:
            raise InputError(f"this subject ({subject.kind} {subject.model}) cannot render whole camera RAW files")
        preview = read_preview(self.path)
        raw = bin_mosaic(read_raw(self.path), self.binning)
        rendered = subject.render_raw(raw)
        del raw
        pair = align(rendered, preview.image, flips=(0, preview.flip))
        del rendered
        out, ref = pair.render, pair.reference
        if self.scale != 1.0:
            size = (max(16, round(ref.shape[0] * self.scale)), max(16, round(ref.shape[1] * self.scale)))
            out, ref = resize_rgb(out, size).clip(0.0, 1.0), resize_rgb(ref, size).clip(0.0, 1.0)
        result = score(self.name, ref.transpose(2, 0, 1), out.transpose(2, 0, 1), lpips_fn)
        colour = colour_difference(ref, out)
        result.delta_e00 = colour.delta_e00
        result.delta_l = colour.lightness_diff
        result.abs_delta_l = abs(colour.lightness_diff)
        result.alignment = pair.alignment.to_dict()
        if pair.alignment.uncertain:
            result.note = (f"{self.name}: the render aligns poorly with the embedded JPEG (correlation "
                           f"{pair.alignment.score:.2f}); its scores may mean little")
        return result


def camera_files(folder: Path) -> list[Path]:
    """The camera RAW files directly in ``folder`` (by extension), sorted by name."""
    from edge_isp.raw._camera import CAMERA_EXTENSIONS

    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in CAMERA_EXTENSIONS)


def camera_data(data: str, opts: DataOptions) -> EvalData:
    """``camera:FOLDER``: one pair per RAW file in FOLDER that embeds a usable preview;
    the others are listed in ``notes``. InputError when none does."""
    spec = data.partition(":")[2]
    if not spec:
        raise InputError("--data camera: needs a folder, e.g. --data camera:photos/")
    if not opts.scale > 0 or opts.scale > 1:
        raise InputError(f"--scale must be in (0, 1] (a share of the embedded JPEG's size), got {opts.scale}")
    if opts.binning < 1:
        raise InputError(f"--bin must be 1 or more, got {opts.binning}")
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder; --data camera:FOLDER takes a folder of camera RAW files")
    files = camera_files(folder)
    if not files:
        raise InputError(f"{folder}: no camera RAW files in it (.dng, .cr2, .nef, .arw, ...)")
    from edge_isp.raw.preview import read_preview

    pairs: list[ScoredPair] = []
    notes: list[str] = []
    for path in files:
        if opts.limit is not None and len(pairs) >= opts.limit:
            break
        try:
            preview = read_preview(path)
        except RawFormatError as exc:  # NoPreviewError among them
            notes.append(f"{exc}; skipped")
            continue
        if not preview.bayer:
            notes.append(f"{path}: the sensor is not a 2x2 Bayer mosaic (e.g. X-Trans or Foveon); skipped")
            continue
        pairs.append(CameraPair(path.name, path, preview.size, preview.format, opts.scale, opts.binning))
    if not pairs:
        raise InputError(
            f"{folder}: none of the {len(files)} camera RAW file(s) embeds a JPEG preview to compare with "
            f"({notes[0]}{' ...' if len(notes) > 1 else ''})")
    return EvalData(pairs, f"{KIND}:{spec}", notes)


__all__ = ["CameraPair", "bin_mosaic", "camera_data", "camera_files"]
