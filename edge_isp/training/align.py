"""Align a full-resolution render to a smaller reference of the same scene (a camera preview).

A camera's embedded JPEG shows the sensor at another size, often slightly cropped (the
camera's own margins), sometimes letterboxed (a 4:3 thumbnail of a 3:2 photo) and
sometimes rotated to the photo's orientation. :func:`align` finds the orientation, the
scale and the offset that map the reference onto the render, and returns the render
resampled onto the reference's pixels over the area both show:

    >>> pair = align(render, preview.image, flips=(0, preview.flip))
    >>> pair.render.shape == pair.reference.shape, pair.alignment.score

The search is coarse to fine on the detail of luma (luma minus its blur, so the tone and
colour of the two renderings may differ): every orientation and a range of scales at a
low resolution (normalised cross-correlation, ``skimage.feature.match_template``), then a
finer scale step and a sub-pixel translation at up to ``refine_side`` px, then a local
search on (scale, offset) at up to ``polish_side`` px that maximises the correlation of the
resampled render with the reference. The model is a uniform scale plus a translation (square pixels), which is how
cameras make their previews; on a render that matches the preview it lands within about a
tenth of a preview pixel.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from edge_isp._deps import require
from edge_isp.errors import InputError
from edge_isp.raw.preview import orient

# Scales searched, as a share of the "fit" scale (the reference as large as fits into the
# render): the reference may show a crop of the sensor down to ~86% of it on a side, or a
# few percent more than the render (when the render crops the sensor more than the camera).
COARSE_SCALES: tuple[float, ...] = tuple(round(0.86 + 0.02 * i, 2) for i in range(10))  # 0.86 .. 1.04
SEARCH_SIDE = 256  # long side of the coarse search, px
REFINE_SIDE = 512  # long side of the fine template search, px (the reference's own size when smaller)
POLISH_SIDE = 1024  # long side of the final local search, px
MARGIN = 0.04  # share of the reference left out of the template on each side
LETTERBOX_LEVEL = 0.02  # a border row/column darker than this everywhere is a letterbox bar
LOW_SCORE = 0.5  # an alignment scoring below this is reported as uncertain


@dataclass(frozen=True)
class Alignment:
    """Where the reference lies in the render.

    Attributes:
        flip: orientation applied to the render before comparing (LibRaw code, 0 = none).
        scale: render px per reference px.
        top, left: the reference's top-left corner in the oriented render, render px.
        trim: letterbox rows/columns left out of the reference (top, bottom, left, right).
        box: the reference area compared (top, left, height, width) in reference px.
        score: normalised cross-correlation of luma over ``box`` after alignment (-1..1).
    """

    flip: int
    scale: float
    top: float
    left: float
    trim: tuple[int, int, int, int]
    box: tuple[int, int, int, int]
    score: float

    @property
    def uncertain(self) -> bool:
        return self.score < LOW_SCORE

    def to_dict(self) -> dict[str, object]:
        return {"flip": self.flip, "scale": round(self.scale, 5), "top": round(self.top, 2),
                "left": round(self.left, 2), "trim": list(self.trim), "box": list(self.box),
                "score": round(self.score, 4)}


@dataclass
class AlignedPair:
    """The render resampled onto the reference's pixels, and the reference, same shape (h, w, 3)."""

    render: np.ndarray
    reference: np.ndarray
    alignment: Alignment


# ------------------------------------------------------------------------- helpers

def luma(image: np.ndarray) -> np.ndarray:
    """Rec. 709 luma of an (H, W, 3) display-RGB image, float32."""
    img = np.asarray(image, dtype=np.float32)
    return img[..., 0] * np.float32(0.2126) + img[..., 1] * np.float32(0.7152) + img[..., 2] * np.float32(0.0722)


def resize(plane: np.ndarray, size: tuple[int, int], box: Sequence[float] | None = None) -> np.ndarray:
    """Resample a float (H, W) plane to ``size`` = (h, w), antialiased (Pillow's bilinear
    filter widens with the reduction); ``box`` = (left, top, right, bottom) in source px."""
    from PIL import Image

    h, w = max(1, int(size[0])), max(1, int(size[1]))
    img = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
    out = img.resize((w, h), Image.Resampling.BILINEAR, box=tuple(box) if box is not None else None)
    return np.asarray(out, dtype=np.float32)


def resize_rgb(image: np.ndarray, size: tuple[int, int], box: Sequence[float] | None = None) -> np.ndarray:
    """:func:`resize` of every channel of an (H, W, C) image."""
    return np.stack([resize(image[..., c], size, box) for c in range(image.shape[2])], axis=2)


def trim_letterbox(reference: np.ndarray, level: float = LETTERBOX_LEVEL,
                   max_share: float = 0.2) -> tuple[int, int, int, int]:
    """Rows/columns of black bars around a picture (top, bottom, left, right), each at
    most ``max_share`` of the side; a bar is uniformly darker than ``level``."""
    peak = np.asarray(reference, dtype=np.float32).max(axis=2)
    rows, cols = peak.max(axis=1) < level, peak.max(axis=0) < level

    def run(flags: np.ndarray) -> int:
        limit = int(len(flags) * max_share)
        n = 0
        while n < limit and flags[n]:
            n += 1
        return n if n < limit else 0

    return run(rows), run(rows[::-1]), run(cols), run(cols[::-1])


def _peak_offset(before: float, at: float, after: float) -> float:
    """Sub-pixel offset of a peak from three samples (a parabola through them), in [-0.5, 0.5]."""
    curvature = before - 2.0 * at + after
    if curvature >= 0:
        return 0.0
    return float(np.clip(0.5 * (before - after) / curvature, -0.5, 0.5))


def _match(image: np.ndarray, template: np.ndarray) -> tuple[float, float, float]:
    """Best normalised cross-correlation of ``template`` inside ``image``: (score, y, x),
    the position to a fraction of a pixel."""
    feature = require("skimage.feature", "aligning a render to the camera's preview")
    if template.shape[0] > image.shape[0] or template.shape[1] > image.shape[1] or min(template.shape) < 8:
        return -math.inf, 0.0, 0.0
    if float(template.std()) < 1e-6:  # a flat template correlates with nothing
        return -math.inf, 0.0, 0.0
    result = feature.match_template(image, template)
    y, x = (int(v) for v in np.unravel_index(int(np.argmax(result)), result.shape))
    fy = _peak_offset(result[y - 1, x], result[y, x], result[y + 1, x]) if 0 < y < result.shape[0] - 1 else 0.0
    fx = _peak_offset(result[y, x - 1], result[y, x], result[y, x + 1]) if 0 < x < result.shape[1] - 1 else 0.0
    return float(result[y, x]), y + fy, x + fx


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two same-shape planes (-1..1; 0 if either is flat)."""
    a = np.asarray(a, np.float64) - float(np.mean(a))
    b = np.asarray(b, np.float64) - float(np.mean(b))
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


def _detail(plane: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """Luma minus its Gaussian blur: edges and texture, without the tone curve's offsets
    (a sharper correlation peak than luma itself, in position and in scale)."""
    filters = require("skimage.filters", "aligning a render to the camera's preview")
    return (plane - filters.gaussian(plane, sigma=sigma, preserve_range=True)).astype(np.float32)


def _scaled(template: np.ndarray, sy: float, sx: float) -> tuple[np.ndarray, float, float]:
    """``template`` resampled by exactly (sy, sx): a whole number of output px from a source
    extent of (ny / sy, nx / sx) px at its top-left; returns (image, source centre y, x)."""
    ny, nx = int(template.shape[0] * sy), int(template.shape[1] * sx)
    out = resize(template, (ny, nx), box=(0.0, 0.0, nx / sx, ny / sy))
    return out, ny / sy / 2, nx / sx / 2


@dataclass(frozen=True)
class _Fit:
    """A candidate in "fit units" u = render px / k0 of the oriented render: reference
    px (y, x) <-> u = (oy + sigma * y, ox + sigma * x)."""

    score: float
    flip: int
    k0: float
    sigma: float
    oy: float
    ox: float


def _coarse(plane: np.ndarray, ref_luma: np.ndarray, flip: int, scales: Iterable[float],
            search_side: int) -> _Fit:
    """The best scale and offset of the reference in ``plane`` (the render's luma, turned by ``flip``)."""
    H, W = plane.shape
    h, w = ref_luma.shape
    k0 = min(H / h, W / w)
    f = min(1.0, search_side / max(h, w))
    ref_low = _detail(resize(ref_luma, (round(h * f), round(w * f))))
    fy, fx = ref_low.shape[0] / h, ref_low.shape[1] / w  # low px per reference px
    ren_low = _detail(resize(plane, (round(H * fy / k0), round(W * fx / k0))))
    uy, ux = ren_low.shape[0] / (H / k0), ren_low.shape[1] / (W / k0)  # low px per fit unit
    my, mx = round(MARGIN * ref_low.shape[0]), round(MARGIN * ref_low.shape[1])
    template = ref_low[my: ref_low.shape[0] - my, mx: ref_low.shape[1] - mx]
    best = _Fit(-math.inf, flip, k0, 1.0, 0.0, 0.0)
    for sigma in scales:
        t, cy, cx = _scaled(template, sigma * uy / fy, sigma * ux / fx)
        score, py, px = _match(ren_low, t)
        if score > best.score:  # centre to centre
            best = _Fit(score, flip, k0, float(sigma), (py + t.shape[0] / 2) / uy - sigma * (my + cy) / fy,
                        (px + t.shape[1] / 2) / ux - sigma * (mx + cx) / fx)
    return best


def _refine(plane: np.ndarray, ref_luma: np.ndarray, fit: _Fit, refine_side: int, search_side: int) -> _Fit:
    """The coarse fit at up to ``refine_side`` px: scales +-0.012 around it, positions within
    two coarse pixels, and the scale between grid steps where the scores peak."""
    H, W = plane.shape
    h, w = ref_luma.shape
    g = min(1.0, refine_side / max(h, w))
    ref_r = _detail(resize(ref_luma, (round(h * g), round(w * g))) if g < 1 else ref_luma)
    gy, gx = ref_r.shape[0] / h, ref_r.shape[1] / w
    ren_r = _detail(resize(plane, (round(H * gy / fit.k0), round(W * gx / fit.k0))))
    uy, ux = ren_r.shape[0] / (H / fit.k0), ren_r.shape[1] / (W / fit.k0)
    my, mx = round(MARGIN * ref_r.shape[0]), round(MARGIN * ref_r.shape[1])
    template = ref_r[my: ref_r.shape[0] - my, mx: ref_r.shape[1] - mx]
    coarse_px = max(1.0, max(h, w) * g / search_side)  # one coarse pixel, in refine px
    reach = math.ceil(2 * coarse_px) + 3

    def at(sigma: float) -> _Fit:
        t, cy, cx = _scaled(template, sigma * uy / gy, sigma * ux / gx)
        cy, cx = my + cy, mx + cx  # the template's source centre, refine px
        py0 = (fit.oy + sigma * cy / gy) * uy - t.shape[0] / 2  # where the template should start
        px0 = (fit.ox + sigma * cx / gx) * ux - t.shape[1] / 2
        y0, x0 = max(0, math.floor(py0) - reach), max(0, math.floor(px0) - reach)
        y1 = min(ren_r.shape[0], math.ceil(py0) + t.shape[0] + reach)
        x1 = min(ren_r.shape[1], math.ceil(px0) + t.shape[1] + reach)
        score, py, px = _match(ren_r[y0:y1, x0:x1], t)
        return _Fit(score, fit.flip, fit.k0, sigma, (y0 + py + t.shape[0] / 2) / uy - sigma * cy / gy,
                    (x0 + px + t.shape[1] / 2) / ux - sigma * cx / gx)

    step = 0.003  # +-0.012: covers half the coarse step (0.02) either side
    tried = [at(fit.sigma + step * i) for i in range(-4, 5)]
    i = max(range(len(tried)), key=lambda j: tried[j].score)
    best = tried[i]
    if best.score == -math.inf:
        return fit
    if 0 < i < len(tried) - 1:  # between the grid's scales: the peak of a parabola through three
        offset = _peak_offset(tried[i - 1].score, best.score, tried[i + 1].score)
        if offset:
            between = at(best.sigma + step * offset)
            best = between if between.score > best.score else best
    return best


def _overlap(k: float, top: float, left: float, render_hw: tuple[int, int],
             ref_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """Reference rows/columns [y0, y1) x [x0, x1) whose footprint lies inside the render."""
    H, W = render_hw
    h, w = ref_hw
    y0, x0 = max(0, math.ceil(-top / k - 1e-6)), max(0, math.ceil(-left / k - 1e-6))
    y1, x1 = min(h, math.floor((H - top) / k + 1e-6)), min(w, math.floor((W - left) / k + 1e-6))
    return y0, y1, x0, x1


def _footprint(k: float, top: float, left: float, box: tuple[int, int, int, int],
               render_hw: tuple[int, int]) -> tuple[float, float, float, float]:
    y0, y1, x0, x1 = box
    return (left + k * x0, top + k * y0, min(render_hw[1], left + k * x1), min(render_hw[0], top + k * y1))


def _polish(plane: np.ndarray, ref_luma: np.ndarray, k: float, top: float, left: float,
            side: int) -> tuple[float, float, float]:
    """Local search on (scale, top, left) for the best correlation of the resampled render
    with the reference (at up to ``side`` px): the template search leaves a fraction of a
    pixel in position and ~0.1% in scale, which costs dB on a close match."""
    h, w = ref_luma.shape
    g = min(1.0, side / max(h, w))
    y0, y1, x0, x1 = _overlap(k, top, left, plane.shape, ref_luma.shape)
    # A fixed inner region, two reference px in from the overlap, so every candidate sees it.
    box = (y0 + 2, y1 - 2, x0 + 2, x1 - 2)
    if box[1] - box[0] < 16 or box[3] - box[2] < 16:
        return k, top, left
    size = (max(8, round((box[1] - box[0]) * g)), max(8, round((box[3] - box[2]) * g)))
    target = _detail(resize(ref_luma, size, box=(box[2], box[0], box[3], box[1])))

    def quality(p: tuple[float, float, float]) -> float:
        fk, ft, fl = p
        y0_, y1_, x0_, x1_ = _overlap(fk, ft, fl, plane.shape, ref_luma.shape)
        if y0_ > box[0] or y1_ < box[1] or x0_ > box[2] or x1_ < box[3]:
            return -math.inf
        return ncc(_detail(resize(plane, size, box=_footprint(fk, ft, fl, box, plane.shape))), target)

    best = (k, top, left)
    best_q = quality(best)
    steps = [k * 0.001, k * 0.25, k * 0.25]  # scale, then a quarter reference px
    for _ in range(40):
        moved = False
        for i in range(3):
            for sign in (1.0, -1.0):
                trial = list(best)
                trial[i] += sign * steps[i]
                q = quality((trial[0], trial[1], trial[2]))
                if q > best_q:
                    best, best_q, moved = (trial[0], trial[1], trial[2]), q, True
                    break
        if not moved:
            steps = [v / 2 for v in steps]
            if steps[1] < k * 0.02:
                break
    return best


# --------------------------------------------------------------------------- align

def align(render: np.ndarray, reference: np.ndarray, *, flips: Iterable[int] = (0,),
          scales: Sequence[float] = COARSE_SCALES, search_side: int = SEARCH_SIDE,
          refine_side: int = REFINE_SIDE, polish_side: int = POLISH_SIDE) -> AlignedPair:
    """Map ``reference`` (h, w, 3) onto ``render`` (H, W, 3) and resample the render there.

    ``flips``: orientations of the render to try (LibRaw codes; e.g. ``(0, preview.flip)``).
    Raises InputError when the images have nothing to align (a flat reference, or a render
    smaller than the template).
    """
    render = np.asarray(render, dtype=np.float32)
    reference = np.asarray(reference, dtype=np.float32)
    if render.ndim != 3 or reference.ndim != 3 or render.shape[2] != 3 or reference.shape[2] != 3:
        raise InputError(f"align takes two RGB images (H, W, 3), got {render.shape} and {reference.shape}")
    t, b, l, r = trim_letterbox(reference)
    ref = reference[t: reference.shape[0] - b, l: reference.shape[1] - r]
    ref_luma = luma(ref)
    # The search runs on the render's luma, turned, then shrunk by exactly q to about twice
    # the finest resolution it needs (a 24 MP render would make every step slow); the
    # shrink may drop a fraction of a pixel at the far sides only, so results scale back by q.
    render_luma = luma(render)
    q = 2 * min(polish_side, max(ref.shape[:2])) / max(render.shape[:2])
    q = q if q < 0.75 else 1.0  # shrinking by less gains little and blurs

    def plane(flip: int) -> np.ndarray:
        turned = orient(render_luma, flip)
        return _scaled(turned, q, q)[0] if q < 1 else turned

    planes = {flip: plane(flip) for flip in dict.fromkeys(flips)}
    fit = max((_coarse(p, ref_luma, flip, scales, search_side) for flip, p in planes.items()),
              key=lambda c: c.score)
    if fit.score == -math.inf:
        raise InputError(
            f"cannot align a {render.shape[1]}x{render.shape[0]} render to a {ref.shape[1]}x{ref.shape[0]} "
            "reference: the reference is flat or the render too small")
    fit = _refine(planes[fit.flip], ref_luma, fit, refine_side, search_side)
    k, top, left = _polish(planes[fit.flip], ref_luma, fit.k0 * fit.sigma, fit.k0 * fit.oy, fit.k0 * fit.ox,
                           polish_side)
    k, top, left = k / q, top / q, left / q

    oriented = orient(render, fit.flip)
    y0, y1, x0, x1 = _overlap(k, top, left, oriented.shape[:2], ref.shape[:2])
    if y1 - y0 < 8 or x1 - x0 < 8:
        raise InputError("the render and the reference do not overlap after alignment")
    aligned = resize_rgb(oriented, (y1 - y0, x1 - x0), _footprint(k, top, left, (y0, y1, x0, x1), oriented.shape[:2]))
    ref_part = np.ascontiguousarray(ref[y0:y1, x0:x1])
    score = ncc(luma(aligned), luma(ref_part))
    alignment = Alignment(flip=fit.flip, scale=k, top=top, left=left, trim=(t, b, l, r),
                          box=(y0 + t, x0 + l, y1 - y0, x1 - x0), score=score)
    return AlignedPair(render=aligned.clip(0.0, 1.0), reference=ref_part, alignment=alignment)


__all__ = ["COARSE_SCALES", "AlignedPair", "Alignment", "align", "luma", "ncc", "resize", "resize_rgb",
           "trim_letterbox"]
