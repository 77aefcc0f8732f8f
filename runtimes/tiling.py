"""Tiled full-resolution inference: any photo size through a fixed-input model.

Tiles are cut in *packed* space (one packed pixel = one 2x2 Bayer cell), so every tile
starts on an even mosaic offset and keeps the CFA phase of the photo. Neighbouring tiles
overlap; inside an overlap each tile's output is weighted by a linear ramp that falls to
almost zero at the tile's inner edge (where padding artefacts live), and the weighted sum
is normalised, so no seams show.

Memory stays bounded: a RAW photo is packed one tile at a time (the float image of the
whole mosaic is never built), and the blend accumulators cover one band of tile rows,
not the whole photo; finished rows go straight into the output array (which can be
uint8/uint16 so it is no larger than the file to be written).

    >>> rgb = run_tiled(runner, raw)                      # (H, W, 3) float32 in [0, 1]
    >>> rgb16 = run_tiled(runner, raw, out_dtype="uint16", overlap=32)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_isp.errors import InputError

DEFAULT_OVERLAP = 32  # packed pixels (64 mosaic pixels) each side of an inner tile edge


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles go, in packed pixels of the (padded) input."""

    image_hw: tuple[int, int]        # packed size of the photo
    padded_hw: tuple[int, int]       # packed size after padding up to one tile (small photos)
    tile_hw: tuple[int, int]         # packed size of one tile (the model's input)
    overlap: int                     # requested overlap, packed pixels
    rows: tuple[int, ...]            # tile tops
    cols: tuple[int, ...]            # tile lefts

    @property
    def count(self) -> int:
        return len(self.rows) * len(self.cols)

    @property
    def mosaic_offsets(self) -> list[tuple[int, int]]:
        """Tile origins in mosaic pixels (always even)."""
        return [(2 * r, 2 * c) for r in self.rows for c in self.cols]


def _starts(size: int, tile: int, overlap: int) -> tuple[int, ...]:
    """Evenly spaced tile starts covering [0, size) with at least ``overlap`` shared."""
    if size <= tile:
        return (0,)
    n = math.ceil((size - overlap) / (tile - overlap))
    n = max(n, 2)
    span = size - tile
    return tuple(sorted({round(i * span / (n - 1)) for i in range(n)}))


def plan_tiles(image_hw: tuple[int, int], tile_hw: tuple[int, int], overlap: int = DEFAULT_OVERLAP) -> TilePlan:
    """Plan tiles of ``tile_hw`` (packed) over an image of ``image_hw`` (packed)."""
    th, tw = (int(v) for v in tile_hw)
    h, w = (int(v) for v in image_hw)
    if h <= 0 or w <= 0:
        raise InputError(f"cannot tile an empty image ({h}x{w} packed)")
    if overlap < 0 or overlap * 2 > min(th, tw):
        raise InputError(f"overlap {overlap} (packed px) must be between 0 and half the tile ({th}x{tw})")
    ph, pw = max(h, th), max(w, tw)
    return TilePlan((h, w), (ph, pw), (th, tw), int(overlap), _starts(ph, th, overlap), _starts(pw, tw, overlap))


def _ramp(length: int, ramp: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D blend weights: 1 inside, a linear ramp over ``ramp`` px at inner edges."""
    w = np.ones(length, dtype=np.float32)
    if ramp <= 0:
        return w
    r = np.minimum((np.arange(length, dtype=np.float32) + 0.5) / ramp, 1.0)
    if not at_start:
        w = np.minimum(w, r)
    if not at_end:
        w = np.minimum(w, r[::-1])
    return w


# ------------------------------------------------------------------------- sources

class _PackedSource:
    """Reads packed (4, h, w) float32 windows of a photo without packing all of it."""

    def __init__(self, source: Any) -> None:
        from edge_isp.raw.image import RawImage

        self.raw: RawImage | None = None
        self.packed: np.ndarray | None = None
        if isinstance(source, RawImage):
            even = (source.height // 2 * 2, source.width // 2 * 2)
            self.raw = source if even == source.shape else source.crop(0, 0, *even)
            self.hw = (even[0] // 2, even[1] // 2)
        else:
            arr = np.asarray(source)
            if arr.ndim == 4 and arr.shape[0] == 1:
                arr = arr[0]
            if arr.ndim != 3 or arr.shape[0] != 4:
                raise InputError(
                    f"tiled inference takes a RawImage or packed Bayer (4, h, w); got shape {tuple(arr.shape)}"
                )
            self.packed = arr
            self.hw = (int(arr.shape[1]), int(arr.shape[2]))

    def read(self, top: int, left: int, h: int, w: int) -> np.ndarray:
        if self.raw is not None:
            return self.raw.crop(2 * top, 2 * left, 2 * h, 2 * w).packed()
        return np.ascontiguousarray(self.packed[:, top:top + h, left:left + w], dtype=np.float32)

    def padded(self, ph: int, pw: int) -> _PackedSource:
        """A photo smaller than one tile: pack it whole and mirror-pad it up to the tile."""
        full = self.read(0, 0, *self.hw)
        h, w = self.hw
        pad = ((0, 0), (0, ph - h), (0, pw - w))
        mode = "reflect" if ph - h < h and pw - w < w else "symmetric" if ph - h <= h and pw - w <= w else "edge"
        return _PackedSource(np.pad(full, pad, mode=mode))


# ------------------------------------------------------------------------ inference

def _output_scale(runner: Any) -> int:
    i, o = runner.input_spec.nchw_shape, runner.output_spec.nchw_shape
    sh, sw = o[2] / i[2], o[3] / i[3]
    if sh != sw or sh < 1 or sh != int(sh):
        raise InputError(f"cannot tile a model whose output {tuple(o)} is not an integer multiple of its input {tuple(i)}")
    return int(sh)


def _finalize(acc: np.ndarray, wsum: np.ndarray, dst: np.ndarray) -> None:
    """dst = clip(acc / wsum) in dst's dtype (uint8/uint16 rounded like write_image)."""
    vals = acc / np.maximum(wsum, 1e-12)[..., None]
    np.clip(vals, 0.0, 1.0, out=vals)
    if np.issubdtype(dst.dtype, np.integer):
        top = np.iinfo(dst.dtype).max
        vals *= top
        np.rint(vals, out=vals)
    dst[...] = vals


def run_tiled(runner: Any, source: Any, *, overlap: int | None = None, tile_hw: tuple[int, int] | None = None,
              out: np.ndarray | None = None, out_dtype: Any = np.float32,
              progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Run ``runner`` over a photo of any size in overlapping tiles; returns (H, W, 3).

    Args:
        runner: anything with ``input_spec``, ``output_spec`` and ``run(packed NCHW)``
            (a runner from ``open_runner`` / ``open_bundle`` / ``open_model``).
        source: a :class:`~edge_isp.raw.RawImage` (packed tile by tile) or packed
            Bayer (4, h, w) / (1, 4, h, w) float32.
        overlap: packed pixels shared by neighbouring tiles (the blend ramp's length);
            default ``DEFAULT_OVERLAP`` (at most half the tile).
        tile_hw: packed tile size; default the model's fixed input size.
        out: an (H, W, 3) array to write into (float32, uint8 or uint16).
        out_dtype: dtype of the returned array when ``out`` is not given. Integer
            dtypes are scaled to their full range (``rint(clip(x) * max)``).
        progress: called as ``progress(tiles_done, tiles_total)``.

    Output pixels are clipped to [0, 1]; H, W = the photo's size times the model's
    output scale (2 for RGB at full mosaic resolution).
    """
    src = _PackedSource(source)
    spec = runner.input_spec.nchw_shape
    if tile_hw is None:
        tile_hw = (int(spec[2]), int(spec[3]))
    batch = max(1, int(spec[0]))
    scale = _output_scale(runner)
    if overlap is None:
        overlap = min(DEFAULT_OVERLAP, min(int(v) for v in tile_hw) // 2)
    plan = plan_tiles(src.hw, tile_hw, overlap)
    if plan.padded_hw != plan.image_hw:
        src = src.padded(*plan.padded_hw)
    th, tw = plan.tile_hw
    H, W = plan.image_hw[0] * scale, plan.image_hw[1] * scale      # output size (unpadded)
    PH, PW = plan.padded_hw[0] * scale, plan.padded_hw[1] * scale
    TH, TW = th * scale, tw * scale
    ramp = plan.overlap * scale
    if out is None:
        out = np.empty((H, W, 3), dtype=np.dtype(out_dtype))
    elif out.shape != (H, W, 3):
        raise InputError(f"out has shape {out.shape}, expected {(H, W, 3)}")

    col_w = [_ramp(TW, ramp, c == 0, c + tw >= plan.padded_hw[1]) for c in plan.cols]
    acc = np.zeros((TH, PW, 3), dtype=np.float32)      # one band of tile rows
    wsum = np.zeros((TH, PW), dtype=np.float32)
    band_top = 0                                        # output row of acc[0]
    done, total = 0, plan.count

    def flush(upto: int) -> None:
        """Rows [band_top, upto) are final: write them out and slide the band down."""
        nonlocal band_top
        n = upto - band_top
        if n <= 0:
            return
        lo, hi = band_top, min(upto, H)
        if hi > lo:
            _finalize(acc[: hi - lo, :W], wsum[: hi - lo, :W], out[lo:hi])
        acc[:-n] = acc[n:].copy() if n < TH else 0
        acc[max(0, TH - n):] = 0
        wsum[:-n] = wsum[n:].copy() if n < TH else 0
        wsum[max(0, TH - n):] = 0
        band_top = upto

    for ri, r in enumerate(plan.rows):
        flush(r * scale)
        row_w = _ramp(TH, ramp, ri == 0, r + th >= plan.padded_hw[0])
        y0 = r * scale - band_top
        for start in range(0, len(plan.cols), batch):
            group = list(range(start, min(start + batch, len(plan.cols))))
            tiles = [src.read(r, plan.cols[ci], th, tw) for ci in group]
            while len(tiles) < batch:                    # fixed-batch models: pad the group
                tiles.append(tiles[-1])
            rgb = runner.run(np.stack(tiles)[:, :4])
            if rgb.shape[1:] != (3, TH, TW):
                raise InputError(f"the model returned {tuple(rgb.shape)} for a {th}x{tw} packed tile; expected (N, 3, {TH}, {TW})")
            for k, ci in enumerate(group):
                x0 = plan.cols[ci] * scale
                wt = row_w[:, None] * col_w[ci][None, :]
                acc[y0:y0 + TH, x0:x0 + TW] += np.transpose(rgb[k], (1, 2, 0)) * wt[..., None]
                wsum[y0:y0 + TH, x0:x0 + TW] += wt
                done += 1
                if progress is not None:
                    progress(done, total)
    flush(PH)
    return out


def tiles_for(runner: Any, image_hw_mosaic: tuple[int, int], overlap: int = DEFAULT_OVERLAP) -> TilePlan:
    """The plan :func:`run_tiled` would use for a mosaic of ``image_hw_mosaic`` pixels."""
    spec = runner.input_spec.nchw_shape
    return plan_tiles((image_hw_mosaic[0] // 2, image_hw_mosaic[1] // 2), (int(spec[2]), int(spec[3])), overlap)


__all__ = ["DEFAULT_OVERLAP", "TilePlan", "plan_tiles", "run_tiled", "tiles_for"]
