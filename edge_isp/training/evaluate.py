"""Image-quality evaluation of a model, a training checkpoint, a converted bundle or the
classical reference ISP on a paired dataset: PSNR, SSIM, MS-SSIM (and LPIPS when its
package and weights are present locally), per image and mean.

    >>> from edge_isp.training.evaluate import evaluate_subject
    >>> report = evaluate_subject("runs/default/best.pt", data="synthetic")
    >>> report.mean["psnr_db"]

Data kinds (:func:`evaluation_data`, a registry: :func:`register_data_kind`): ``synthetic``,
``zurich:PATH``, ``ultraisp:PATH``, ``pairs:PATH`` (packed RAW + target pairs) and
``camera:FOLDER`` (camera RAW files against the JPEG their camera embedded,
:mod:`edge_isp.training.camera`).

Subjects: ``default`` (the shipped default model), ``classical`` (the reference ISP,
:func:`edge_isp.raw.render`), a registry model name (with ``weights``), a training
checkpoint (``.pt`` written by ``edge-isp train``), or a bundle folder written by
``edge-isp convert`` (run through its runtime, tiled to any image size).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from edge_isp.errors import InputError, UnknownNameError

if TYPE_CHECKING:
    from edge_isp.raw import RawImage

Predict = Callable[[np.ndarray], np.ndarray]  # packed (4,h,w) -> RGB (3,H,W) in [0,1]
RenderRaw = Callable[["RawImage"], np.ndarray]  # a whole RawImage -> RGB (H, W, 3) in [0,1]


@dataclass
class ImageScore:
    name: str
    psnr_db: float
    ssim: float
    ms_ssim: float | None
    lpips: float | None = None
    # Colour against a display-referred reference (camera data): mean CIEDE2000, and the
    # mean L* difference (subject minus reference; > 0 brighter) and its magnitude.
    delta_e00: float | None = None
    delta_l: float | None = None
    abs_delta_l: float | None = None
    alignment: dict[str, Any] | None = None  # how the subject's render was mapped onto the reference
    note: str | None = None  # e.g. an uncertain alignment


class ScoredPair(Protocol):
    """One image of an evaluation: scores a subject on itself."""

    name: str

    def score_with(self, subject: Subject, lpips_fn: Any = None) -> ImageScore: ...


@dataclass(frozen=True)
class EvalPair:
    name: str
    raw: np.ndarray  # packed (4, h, w) float32, B Gr R Gb
    target: np.ndarray  # (3, H, W) float32 in [0, 1]

    def score_with(self, subject: Subject, lpips_fn: Any = None) -> ImageScore:
        return score(self.name, self.target, subject.predict(self.raw), lpips_fn)


MEAN_KEYS = ("psnr_db", "ssim", "ms_ssim", "lpips", "delta_e00", "delta_l", "abs_delta_l")


@dataclass
class EvalReport:
    subject: str
    kind: str  # default | model | checkpoint | bundle | classical
    model: str
    target: str
    runtime: str
    dataset: str
    images: list[ImageScore]
    bundle_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mean(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for key in MEAN_KEYS:
            vals = [getattr(s, key) for s in self.images if getattr(s, key) is not None]
            vals = [v for v in vals if not math.isnan(v)]
            if vals:
                out[key] = float(np.mean(vals))
        return out

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["mean"] = self.mean
        return d


# ---------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataOptions:
    """How to build the evaluation data (each kind uses what applies to it)."""

    draws: int = 32  # synthetic: held-out draws
    seed: int = 0
    limit: int | None = None  # at most this many images / files
    max_side: int | None = None  # synthetic: long side of the held-out photos
    preset: str | None = None  # datasets: RAW level preset
    scale: float = 1.0  # camera: comparison size relative to the embedded preview
    binning: int = 1  # camera: render from an N x N binned mosaic (N^2 fewer pixels)


@dataclass
class EvalData:
    """The images to evaluate on, the dataset label stored with the results, and notes
    for the user (e.g. files that were skipped and why)."""

    pairs: list[ScoredPair]
    label: str
    notes: list[str] = field(default_factory=list)


DataSource = Callable[[str, DataOptions], EvalData]  # (the whole --data spec, options)


def _synthetic_data(data: str, opts: DataOptions) -> EvalData:
    from edge_isp.training.synthetic import camera_config, held_out_set

    profile = data.partition(":")[2]
    items = held_out_set(opts.draws, seed=opts.seed, max_side=opts.max_side, config=camera_config(profile))
    pairs: list[ScoredPair] = [EvalPair(it.name, it.raw, it.target) for it in items]
    return EvalData(pairs[: opts.limit] if opts.limit else pairs, _dataset_label(data, opts.draws, opts.seed))


def _dataset_data(data: str, opts: DataOptions) -> EvalData:
    from edge_isp.training.data import make_source

    src = make_source(data, batch_size=1, crop=256, seed=opts.seed, preset=opts.preset)
    val = getattr(src, "val", None)
    if val is None:
        val = getattr(src, "train", None)
    if val is None:
        raise InputError(f"{data} has no pairs to evaluate")
    n = len(val) if opts.limit is None else min(opts.limit, len(val))
    pairs: list[ScoredPair] = []
    for i in range(n):
        x, y = val[i]
        pairs.append(EvalPair(f"{i}", x.numpy(), y.numpy()))
    return EvalData(pairs, data)


# kind (the part of --data before ':') -> source, or "module:function" loaded on first use.
# A spec whose kind is not registered is a dataset path (``pairs``) for make_source.
_DATA_KINDS: dict[str, DataSource | str] = {
    "synthetic": _synthetic_data,
    "zurich": _dataset_data,
    "ultraisp": _dataset_data,
    "pairs": _dataset_data,
    "camera": "edge_isp.training.camera:camera_data",
}


def register_data_kind(kind: str, source: DataSource | str) -> None:
    """Add a ``--data KIND:...`` source: ``source(spec, DataOptions) -> EvalData``."""
    _DATA_KINDS[kind] = source


def data_kinds() -> list[str]:
    return sorted(_DATA_KINDS)


def _data_source(kind: str) -> DataSource:
    source = _DATA_KINDS.get(kind, _dataset_data)
    if isinstance(source, str):
        module, _, name = source.partition(":")
        try:
            source = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:  # pragma: no cover - a broken registration
            raise UnknownNameError(f"data kind {kind!r} is registered as {source!r}, which cannot be loaded") from exc
        _DATA_KINDS[kind] = source
    return source


def evaluation_data(data: str = "synthetic", options: DataOptions | None = None, **kwargs: Any) -> EvalData:
    """The evaluation data for ``data`` (``synthetic[:PROFILE]``, ``zurich:PATH``,
    ``ultraisp:PATH``, ``pairs:PATH``, ``camera:FOLDER``); ``kwargs`` are DataOptions fields."""
    opts = dataclasses.replace(options or DataOptions(), **kwargs)
    return _data_source(data.partition(":")[0])(data, opts)


def evaluation_pairs(data: str = "synthetic", *, draws: int = 32, seed: int = 0,
                     limit: int | None = None, max_side: int | None = None,
                     preset: str | None = None) -> list[ScoredPair]:
    """The pairs to evaluate on.

    ``synthetic``: ``draws`` fixed unprocessed draws of the held-out photos (never used
    in training; seed 0 here, while training validates on seed-1 draws) with the default
    camera ranges; ``synthetic:PROFILE`` with that profile's cameras (e.g. ``colour-wb``: wide
    white-balance gains). ``zurich:PATH``
    / ``ultraisp:PATH``: the dataset's test split. ``pairs:PATH``: a raw/ + rgb/ folder.
    ``camera:FOLDER``: camera RAW files scored against their embedded JPEG (see
    :func:`evaluation_data` for the notes on skipped files).
    """
    return evaluation_data(data, DataOptions(draws=draws, seed=seed, limit=limit, max_side=max_side,
                                             preset=preset)).pairs


# ---------------------------------------------------------------------------------------
# Subjects -> predict functions
# ---------------------------------------------------------------------------------------


def classical_predict(packed: np.ndarray) -> np.ndarray:
    """The classical reference ISP on a packed RAW (RGGB geometry), as (3, H, W)."""
    from edge_isp.raw import render
    from edge_isp.training.synthetic import raw_image_from_packed

    return render(raw_image_from_packed(packed)).transpose(2, 0, 1)


def torch_predict(model: Any, multiple: int = 1) -> Predict:
    import torch

    model.eval()

    def run(packed: np.ndarray) -> np.ndarray:
        h, w = packed.shape[-2:]
        ph, pw = (-h) % multiple, (-w) % multiple
        x = torch.from_numpy(np.ascontiguousarray(packed))[None]
        if ph or pw:
            x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
        with torch.no_grad():
            y = model(x).clamp(0, 1)[0].numpy()
        s = y.shape[-1] // x.shape[-1]
        return y[:, : h * s, : w * s]

    return run


@dataclass
class Subject:
    predict: Predict
    kind: str
    model: str
    target: str
    runtime: str
    bundle_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # A whole camera RAW file -> RGB (H, W, 3): the classical ISP with the file's metadata,
    # a model or bundle tiled through edge_isp.process (any photo size, bounded memory).
    render_raw: RenderRaw | None = None


def classical_render_raw(raw: RawImage) -> np.ndarray:
    """The classical reference ISP on a whole RawImage, with the file's white balance and
    colour matrix (``edge_isp.raw.render`` defaults)."""
    from edge_isp.raw import render

    return render(raw)


def runner_render_raw(runner: Any) -> RenderRaw:
    """Render whole RawImages through ``runner`` (a bundle or PyTorch runner), tiled."""

    def run(raw: RawImage) -> np.ndarray:
        from edge_isp.process import process_image

        return process_image(runner, raw)

    return run


def load_subject(subject: str, *, weights: str | Path | None = None,
                 options: dict[str, Any] | None = None, threads: int | None = None,
                 runtime: str | None = None) -> Subject:
    """Resolve ``subject`` (see the module docstring) into a predict function.

    Everything but ``classical`` is opened by :func:`edge_isp.runtimes.subject.open_subject`;
    ``default`` is the shipped model exactly (its packaged weights, never an untrained
    stand-in: a score recorded as "default" must be the trained model's).
    """
    if subject == "classical":
        return Subject(classical_predict, "classical", "classical-isp", "reference", "numpy",
                       extra={"pipeline": "edge_isp.raw.render defaults (as-shot WB when the file records "
                                          "it, else gray-world; Malvar demosaic, auto exposure, sRGB + "
                                          "tone curve)"},
                       render_raw=classical_render_raw)
    from edge_isp.models.pretrained import DEFAULT, PACKAGED_WEIGHTS
    from edge_isp.process import TORCH_TILE_MOSAIC
    from edge_isp.runtimes.subject import open_subject

    # PyTorch subjects render whole photos in the tiles 'edge-isp process' uses.
    if subject == "default":
        loaded = open_subject(None, weights=PACKAGED_WEIGHTS, input_size=TORCH_TILE_MOSAIC, threads=threads,
                              runtime=runtime)
    else:
        loaded = open_subject(subject, weights=weights, options=options, input_size=TORCH_TILE_MOSAIC,
                              threads=threads, runtime=runtime)
    origin = loaded.origin
    if origin.kind == "bundle":
        return Subject(_bundle_predict(loaded), "bundle", loaded.model, loaded.target, loaded.runtime,
                       bundle_sha256=loaded.bundle_sha256, extra={"bundle": str(Path(subject))},
                       render_raw=runner_render_raw(loaded))
    if origin.kind == "checkpoint":
        extra = {"checkpoint": str(origin.path), "step": origin.step, "options": origin.options}
    elif origin.kind == "default":
        extra = {"weights": DEFAULT.weights, "options": origin.options}
    else:
        extra = {"weights": origin.weights, "options": options or {}}
    from edge_isp.models import model_info

    predict = torch_predict(loaded.net, model_info(loaded.model).input_multiple)
    return Subject(predict, origin.kind, loaded.model, loaded.target, loaded.runtime, extra=extra,
                   render_raw=runner_render_raw(loaded))


def _bundle_predict(runner: Any) -> Predict:
    """A bundle on any image size: blended tiles of its fixed input."""
    from edge_isp.runtimes.tiling import DEFAULT_OVERLAP, run_tiled

    # Tiles blend over ``overlap`` packed px; small fixed-size bundles get a smaller one.
    overlap = min(DEFAULT_OVERLAP, min(runner.packed_hw) // 4)

    def run(packed: np.ndarray) -> np.ndarray:
        rgb = run_tiled(runner, np.ascontiguousarray(packed, dtype=np.float32), overlap=overlap)
        return rgb.transpose(2, 0, 1)

    return run


# ---------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------


def lpips_available() -> bool:
    """True when the ``lpips`` package and its AlexNet backbone weights are on this machine."""
    if importlib.util.find_spec("lpips") is None:
        return False
    try:
        import torch

        ckpt = Path(torch.hub.get_dir()) / "checkpoints"
        return any(ckpt.glob("alexnet-*.pth"))
    except Exception:  # pragma: no cover - env dependent
        return False


class _Lpips:
    def __init__(self) -> None:
        import lpips  # type: ignore[import-not-found]

        self.net = lpips.LPIPS(net="alex", verbose=False)

    def __call__(self, ref: np.ndarray, out: np.ndarray) -> float:
        import torch

        a = torch.from_numpy(ref)[None] * 2 - 1
        b = torch.from_numpy(out)[None] * 2 - 1
        with torch.no_grad():
            return float(self.net(a, b).mean())


def _match(target: np.ndarray, out: np.ndarray) -> np.ndarray:
    if target.shape == out.shape:
        return target
    import torch

    from edge_isp.training.validation import match_size

    t = match_size(torch.from_numpy(np.ascontiguousarray(target))[None], torch.from_numpy(out)[None])
    return t[0].numpy()


def score(name: str, target: np.ndarray, out: np.ndarray, lpips_fn: Any = None) -> ImageScore:
    """PSNR / SSIM / MS-SSIM (None if the image is too small) of one (3, H, W) pair."""
    from edge_isp.metrics import MS_SSIM_MIN_SIDE, ms_ssim, psnr, ssim

    out = np.clip(np.asarray(out, np.float32), 0, 1)
    target = _match(np.asarray(target, np.float32), out)
    ref_hwc, out_hwc = target.transpose(1, 2, 0), out.transpose(1, 2, 0)
    ms = float(ms_ssim(ref_hwc, out_hwc)) if min(ref_hwc.shape[:2]) >= MS_SSIM_MIN_SIDE else None
    return ImageScore(name, float(psnr(ref_hwc, out_hwc)), float(ssim(ref_hwc, out_hwc)), ms,
                      lpips_fn(target, out) if lpips_fn else None)


def evaluate(subject: Subject, pairs: Sequence[ScoredPair], *, name: str, dataset: str,
             use_lpips: bool | None = None, progress: Callable[[int, int], None] | None = None) -> EvalReport:
    """Score ``subject`` on every pair; ``use_lpips=None`` means 'when available'."""
    if use_lpips is None:
        use_lpips = lpips_available()
    elif use_lpips and not lpips_available():
        raise InputError("LPIPS needs the 'lpips' package and its AlexNet weights in torch's hub cache "
                         "(no downloads at run time); drop --lpips")
    lp = _Lpips() if use_lpips else None
    images = []
    for i, pair in enumerate(pairs):
        images.append(pair.score_with(subject, lp))
        if progress:
            progress(i + 1, len(pairs))
    return EvalReport(subject=name, kind=subject.kind, model=subject.model, target=subject.target,
                      runtime=subject.runtime, dataset=dataset, images=images,
                      bundle_sha256=subject.bundle_sha256, extra=dict(subject.extra))


def evaluate_subject(subject: str, *, data: str = "synthetic", draws: int = 32, seed: int = 0,
                     limit: int | None = None, weights: str | Path | None = None,
                     options: dict[str, Any] | None = None, **kwargs: Any) -> EvalReport:
    ev = evaluation_data(data, draws=draws, seed=seed, limit=limit)
    sub = load_subject(subject, weights=weights, options=options)
    return evaluate(sub, ev.pairs, name=subject, dataset=ev.label, **kwargs)


def _dataset_label(data: str, draws: int, seed: int) -> str:
    kind, _, profile = data.partition(":")
    if kind == "synthetic":
        return f"synthetic-heldout(draws={draws},seed={seed}" + (f",profile={profile})" if profile else ")")
    return data


def record(report: EvalReport, store: str | Path | None = None, *, device: str = "local") -> int | None:
    """Add the report's mean metrics to the results store (kind ``eval``); returns the row id."""
    try:
        from edge_isp.results import Measurement, ResultsStore, detect_commit
    except ImportError:  # pragma: no cover - results store not installed yet
        return None
    metrics = {k: v for k, v in report.mean.items()}
    metrics["images"] = float(len(report.images))
    m = Measurement(
        model=report.model, target=report.target, runtime=report.runtime, device=device, kind="eval",
        metrics=metrics, bundle_sha256=report.bundle_sha256, commit=detect_commit(),
        extra={"subject": report.subject, "subject_kind": report.kind, "dataset": report.dataset,
               **{k: v for k, v in report.extra.items() if v is not None}},
    )
    return ResultsStore(store).add(m)
