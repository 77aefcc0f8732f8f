"""Whole-photo verification: the picture a user ships, against the untiled model.

Conversion verifies artifacts on small crops, crop against crop, which cannot see what
tiling does to a whole photo: a model that reads the whole image (channel attention,
instance norm) computes different statistics in every tile, and the sky breaks into
rectangles. Here the subject (a bundle, or a PyTorch model run tiled) processes each
whole photo at full resolution, the registry model runs *untiled* on the same photo in
float32 as the reference, and the report gives per photo:

- PSNR and SSIM of the whole image, and the worst tile's PSNR;
- a seam score: the mean absolute step across each tile boundary divided by the same
  step one blend width inside the tiles (1.0 = no seam), measured on the signed
  difference from the reference so that edges of the scene do not count as seams;
- a heat-map PNG of the difference.

    >>> report = verify_photos(subject, reference_net, ["IMG_0001.CR2"], out_dir="verify/")
    >>> report.photos[0].psnr_db, report.photos[0].seam_score
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp._resources import peak_rss_mb, reset_peak_rss
from edge_isp.errors import BundleError, InputError
from edge_isp.process import TWO_PASS_BLOCK

# Goals of the full-resolution work (issue #14) for FP32 subjects; `--min-psnr` etc. override.
DEFAULT_MIN_PSNR_DB = 50.0
DEFAULT_MIN_WORST_TILE_PSNR_DB = 45.0
DEFAULT_MAX_SEAM_SCORE = 1.05
# Full-scale value of the diff heat-map (mean absolute RGB difference).
HEATMAP_FULL_SCALE = 0.05


@dataclass
class PhotoVerification:
    source: str
    mosaic_hw: tuple[int, int]
    mode: str                        # "two-pass" | "blended tiles"
    tiles: int
    psnr_db: float
    ssim: float
    worst_tile_psnr_db: float
    worst_tile: tuple[int, int, int, int]     # top, bottom, left, right (output px)
    seam_score: float | None         # None: a single tile, no boundary
    diff_png: str | None
    subject_s: float
    reference_s: float
    peak_rss_mb: float
    passed: bool = True
    failures: list[str] = field(default_factory=list)
    # --untiled-subject: the same artifacts reshaped to the whole photo (one window) vs the
    # reference, and the tiled run vs that untiled run: what tiling alone costs.
    untiled_subject_psnr_db: float | None = None
    tiled_vs_untiled_subject_psnr_db: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VerifyReport:
    subject: dict[str, Any]
    bars: dict[str, float]
    photos: list[PhotoVerification] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(p.passed for p in self.photos)

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "bars": self.bars, "passed": self.passed,
                "photos": [p.to_dict() for p in self.photos]}


# ----------------------------------------------------------------------- references

def reference_net_for_bundle(manifest: dict[str, Any], weights: Path | None = None) -> Any:
    """The PyTorch model a bundle was converted from (registry name, options, weights)."""
    from edge_isp.models import create
    from edge_isp.models.weights import load_weights, weights_sha256

    model = manifest.get("model", {})
    name, options, recorded = model.get("name"), dict(model.get("options") or {}), str(model.get("weights", ""))
    if not name:
        raise BundleError("the bundle's manifest names no model; re-run 'edge-isp convert'")
    if weights is None and recorded.startswith("init(seed="):
        net = create(name, seed=int(recorded[len("init(seed="):-1]), **options)
    else:
        path = Path(weights) if weights is not None else Path(recorded)
        if not path.is_file():
            raise InputError(f"the bundle was converted from weights {recorded}, which are not here; "
                             f"pass them with --weights PATH")
        net = create(name, **options)
        load_weights(net, path)
    want = model.get("weights_sha256")
    if want and weights_sha256(net) != want:
        raise InputError("the weights for the reference do not match the bundle's (weights_sha256 differs); "
                         "pass the checkpoint it was converted from with --weights")
    return net.eval()


# -------------------------------------------------------------------------- geometry

def blended_edges(starts: Sequence[int], tile: int, size: int, scale: int) -> list[int]:
    """Where one blended tile hands over to the next (the middle of each overlap), output px."""
    edges = [0]
    for a, b in zip(starts, starts[1:]):
        edges.append(((b + a + tile) // 2) * scale)
    edges.append(size * scale)
    return edges


def owned_edges(starts: Sequence[int], size: int, scale: int) -> list[int]:
    """Boundaries between owned blocks that start at ``starts`` (packed px) inside the photo, output px."""
    return [v * scale for v in starts if v < size] + [size * scale]


def block_edges(size: int, block: int, align: int, scale: int) -> list[int]:
    block = max(align, block // align * align)
    return [min(v, size) * scale for v in range(0, size, block)] + [size * scale]


def seam_score(image: np.ndarray, row_edges: Sequence[int], col_edges: Sequence[int], width: int) -> float | None:
    """How much brighter or darker the picture steps across tile boundaries than inside tiles.

    Across each inner boundary ``e``: the mean absolute difference between the rows (or
    columns) half a blend width either side, ``|O[e + w/2] - O[e - w/2 - 1]|`` (a blended
    seam is a ramp as wide as the blend, so both sides of it are compared); divided by the
    same measure one blend width inside the tiles on either side. 1.0 = no seam.
    """
    img = image.astype(np.float32)
    half = max(1, width // 2)
    across, inside = [], []
    for axis, edges in ((0, row_edges), (1, col_edges)):
        n = img.shape[axis]

        def span(centre: int) -> float:
            a, b = centre - half - 1, centre + half
            return float(np.abs(np.take(img, b, axis=axis) - np.take(img, a, axis=axis)).mean())

        for e in edges[1:-1]:
            if e - width - half - 1 < 0 or e + width + half >= n:
                continue
            across.append(span(e))
            inside.extend([span(e - width), span(e + width)])
    if not across or not inside:
        return None
    return float(np.mean(across) / max(np.mean(inside), 1e-12))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 300.0 if mse <= 1e-30 else float(min(300.0, 10 * np.log10(1.0 / mse)))


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    import torch

    from edge_isp.metrics_torch import ssim_torch

    ta = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]
    tb = torch.from_numpy(np.ascontiguousarray(b.transpose(2, 0, 1)))[None]
    with torch.no_grad():
        return float(ssim_torch(ta, tb)[0])


def write_heatmap(path: Path, diff: np.ndarray) -> Path:
    """Mean absolute RGB difference as black -> red -> yellow -> white (full at 0.05)."""
    from edge_isp.raw import write_image

    v = np.clip(diff / HEATMAP_FULL_SCALE, 0, 1)
    rgb = np.stack([np.clip(3 * v, 0, 1), np.clip(3 * v - 1, 0, 1), np.clip(3 * v - 2, 0, 1)], axis=-1)
    return write_image(path, rgb, bits=8)


# -------------------------------------------------------------------------- running

def _reference(net: Any, packed: np.ndarray, multiple: int) -> np.ndarray:
    """The untiled model on the whole photo, mirrored up to the model's photo grid."""
    import torch

    from edge_isp.models.global_context import pad_to_multiple, photo_multiple

    h, w = packed.shape[1:]
    x = torch.from_numpy(np.ascontiguousarray(pad_to_multiple(packed, photo_multiple(net, multiple))))[None]
    with torch.no_grad():
        y = net(x)[0].clamp_(0, 1)
    s = y.shape[1] // x.shape[2]
    return y[:, : h * s, : w * s].permute(1, 2, 0).numpy()


def verify_photo(subject: Any, reference_net: Any, source: Path, *, out_dir: Path | None = None,
                 raw_layout: dict[str, Any] | None = None, overlap: int = 32, two_pass: bool = True,
                 bars: dict[str, float] | None = None, block: int = TWO_PASS_BLOCK,
                 progress: Callable[[str], None] | None = None, untiled_subject: bool = False) -> PhotoVerification:
    """One whole photo through ``subject`` (a LoadedRunner) and untiled ``reference_net``."""
    from edge_isp.models import model_info
    from edge_isp.process import global_net, process_image
    from edge_isp.raw import read_raw
    from edge_isp.runtimes.tiling import plan_tiles

    bars = bars or {}
    say = progress or (lambda text: None)
    reset_peak_rss()
    raw = read_raw(source, **(raw_layout or {}))
    even = raw.crop(0, 0, raw.height // 2 * 2, raw.width // 2 * 2)
    info = model_info(subject.model)
    packed_hw = (even.height // 2, even.width // 2)

    say("subject")
    t0 = time.perf_counter()
    rgb = process_image(subject, even, overlap=overlap, two_pass=two_pass, block=block)
    subject_s = time.perf_counter() - t0
    scale = rgb.shape[0] // packed_hw[0]
    net = global_net(subject) if two_pass else None
    split = getattr(subject, "split", None) if two_pass else None
    if split is not None:
        from edge_isp.models.split_parts import tile_windows

        spec = split[1]
        owned = tile_windows(packed_hw, spec)
        rows = owned_edges(sorted({w.own[0] for w in owned}), packed_hw[0], scale)
        cols = owned_edges(sorted({w.own[2] for w in owned}), packed_hw[1], scale)
        mode = f"two-pass bundle ({spec.to_dict()['passes']} passes, windows {2 * spec.window[0]}x{2 * spec.window[1]})"
    elif net is not None:
        from edge_isp.models.global_context import plan_for

        plan = plan_for(net, info.input_multiple)  # the plan process_image measured
        rows = block_edges(packed_hw[0], block, plan.align, scale)
        cols = block_edges(packed_hw[1], block, plan.align, scale)
        mode = f"two-pass ({plan.to_dict()['passes']} passes)"
    else:
        from edge_isp.process import _tile_for

        tile = _tile_for(subject, even.shape) or subject.packed_hw
        tp = plan_tiles(packed_hw, tile, min(overlap, min(tile) // 2))
        rows = blended_edges(tp.rows, tp.tile_hw[0], packed_hw[0], scale)
        cols = blended_edges(tp.cols, tp.tile_hw[1], packed_hw[1], scale)
        mode = "blended tiles"

    say("reference (untiled PyTorch)")
    t0 = time.perf_counter()
    ref = _reference(reference_net, even.packed(), info.input_multiple)
    reference_s = time.perf_counter() - t0
    if ref.shape != rgb.shape:
        raise InputError(f"the subject's output {rgb.shape} and the reference's {ref.shape} differ in size; "
                         f"they are not the same model")

    say("metrics")
    worst, worst_box = 301.0, (0, 0, 0, 0)
    for r0, r1 in zip(rows, rows[1:]):
        for c0, c1 in zip(cols, cols[1:]):
            value = _psnr(rgb[r0:r1, c0:c1], ref[r0:r1, c0:c1])
            if value < worst:
                worst, worst_box = value, (r0, r1, c0, c1)
    diff_png = None
    if out_dir is not None:
        diff = np.abs(rgb - ref).mean(axis=-1)
        diff_png = str(write_heatmap(Path(out_dir) / f"{Path(source).stem}_diff.png", diff))
    result = PhotoVerification(
        source=str(source), mosaic_hw=even.shape, mode=mode, tiles=(len(rows) - 1) * (len(cols) - 1),
        psnr_db=round(_psnr(rgb, ref), 3), ssim=round(_ssim(rgb, ref), 5), worst_tile_psnr_db=round(worst, 3),
        worst_tile=worst_box,
        seam_score=_round(seam_score((rgb - ref).mean(axis=-1, keepdims=True), rows, cols, max(1, overlap * scale))),
        diff_png=diff_png, subject_s=round(subject_s, 2), reference_s=round(reference_s, 2),
        peak_rss_mb=round(peak_rss_mb(), 1))
    if untiled_subject:
        say("the subject untiled (its artifacts reshaped to the whole photo)")
        whole = subject.run_untiled(even.packed())
        result.untiled_subject_psnr_db = round(_psnr(whole, ref), 3)
        result.tiled_vs_untiled_subject_psnr_db = round(_psnr(rgb, whole), 3)
    _judge(result, bars)
    return result


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _judge(result: PhotoVerification, bars: dict[str, float]) -> None:
    checks = [("psnr_db", result.psnr_db, bars.get("min_psnr_db"), ">="),
              ("worst_tile_psnr_db", result.worst_tile_psnr_db, bars.get("min_worst_tile_psnr_db"), ">="),
              ("seam_score", result.seam_score, bars.get("max_seam_score"), "<=")]
    for name, value, bar, op in checks:
        if bar is None or value is None:
            continue
        ok = value >= bar if op == ">=" else value <= bar
        if not ok:
            result.failures.append(f"{name} {value:g} (needs {op} {bar:g})")
    result.passed = not result.failures


def default_bars(min_psnr_db: float | None = None, min_worst_tile_psnr_db: float | None = None,
                 max_seam_score: float | None = None) -> dict[str, float]:
    return {"min_psnr_db": DEFAULT_MIN_PSNR_DB if min_psnr_db is None else min_psnr_db,
            "min_worst_tile_psnr_db": (DEFAULT_MIN_WORST_TILE_PSNR_DB if min_worst_tile_psnr_db is None
                                       else min_worst_tile_psnr_db),
            "max_seam_score": DEFAULT_MAX_SEAM_SCORE if max_seam_score is None else max_seam_score}


def verify_photos(subject: Any, reference_net: Any, photos: Sequence[Path | str], *, out_dir: Path | None = None,
                  raw_layout: dict[str, Any] | None = None, overlap: int = 32, two_pass: bool = True,
                  bars: dict[str, float] | None = None, block: int = TWO_PASS_BLOCK,
                  progress: Callable[[str], None] | None = None, untiled_subject: bool = False) -> VerifyReport:
    """Every photo through the subject and the untiled reference; see :func:`verify_photo`."""
    bars = bars if bars is not None else default_bars()
    report = VerifyReport(subject=subject.describe() if hasattr(subject, "describe") else {}, bars=bars)
    for path in photos:
        report.photos.append(verify_photo(subject, reference_net, Path(path), out_dir=out_dir, raw_layout=raw_layout,
                                          overlap=overlap, two_pass=two_pass, bars=bars, block=block,
                                          progress=progress, untiled_subject=untiled_subject))
    return report


# ----------------------------------------------------------------------------- convert --verify-photo

def bars_for_target(target: Any) -> dict[str, float]:
    """Whole-photo bars of ``convert --verify-photo``: verify's defaults for float targets; for
    quantised ones the target's own crop bar (INT8 cannot reach 50 dB vs float PyTorch) and no
    seam bar: the INT8 error is textured by the picture, so its seam score swings with the
    content (0.86-1.57 measured at boundaries shifted off the real ones on the chart)."""
    bars: dict[str, Any] = dict(default_bars())
    if target.quantized:
        bars.update(min_psnr_db=target.min_psnr_db, min_worst_tile_psnr_db=target.min_psnr_db, max_seam_score=None)
    return bars


def check_conversion_photos(opts: Any, target: Any) -> None:
    """Before any work: the photos exist and the target's artifact runs on the host."""
    if not opts.verify_photos:
        return
    from edge_isp.converters.artifact_formats import get_format

    if not get_format(target.format).host_runs:
        raise InputError(f"--verify-photo needs an artifact the host runs; {target.name} runs on the board only")
    for photo in opts.verify_photos:
        if not Path(photo).is_file():
            raise InputError(f"--verify-photo {photo}: no such file; pass a RAW photo (DNG, CR2, NEF, ...)")


def verify_conversion_photos(opts: Any, target: Any, model: Any, runner: Any, stats_runner: Any, split: Any,
                             mosaic_hw: tuple[int, int]) -> list[Any]:
    """Each photo through the built artifact(s), tiled as ``process`` would, vs untiled PyTorch."""
    from edge_isp.errors import VerificationError
    from edge_isp.runtimes.bundle_runner import LoadedRunner

    subject = LoadedRunner(runner, model=str(opts.model), target=target.name, mosaic_hw=mosaic_hw, threads=None,
                           load_time_s=0.0, precision=target.precision)
    if split is not None:
        subject.split = (stats_runner, split.spec)
    bars = bars_for_target(target)
    results = []
    for photo in opts.verify_photos:
        result = verify_photo(subject, model, Path(photo), raw_layout=opts.raw_layout, bars=bars)
        results.append(result)
        if not result.passed:
            raise VerificationError(
                f"--verify-photo {photo}: {'; '.join(result.failures)} ({result.mode}, {result.tiles} tiles); "
                f"no bundle was written; " + ("convert with --tiling two-pass" if split is None and "two-pass" not in
                                               result.mode else "check the photo with 'edge-isp verify'"))
    return results


__all__ = ["PhotoVerification", "VerifyReport", "bars_for_target", "block_edges", "blended_edges",
           "check_conversion_photos", "default_bars", "reference_net_for_bundle", "seam_score", "verify_conversion_photos",
           "verify_photo", "verify_photos", "write_heatmap"]
