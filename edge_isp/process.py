"""Full-resolution processing: RAW files -> RGB images through any runtime.

    >>> from edge_isp.process import load_runner, process_files
    >>> runner = load_runner(bundle="edge-isp-out/pynet-v2-mobile_cpu-fp32")
    >>> report = process_files(["a.dng", "b.dng"], "out/", runner=runner, ext=".tif", bits=16)
    >>> report.ok, [r.output for r in report.results]

Photos larger than the model's input run in overlapping, blended tiles
(:mod:`edge_isp.runtimes.tiling`), in bounded memory. Each output is written atomically;
a file that cannot be read or processed is reported and the batch goes on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_isp._atomic import atomic_path, ensure_writable_folder
from edge_isp._resources import peak_rss_mb, reset_peak_rss
from edge_isp.errors import EdgeIspError, InputError, UsageError

if TYPE_CHECKING:
    from edge_isp.runtimes.bundle_runner import LoadedRunner

DEFAULT_OUTPUT_DIR = Path("edge-isp-out") / "process"
# PyTorch tiles (the reference runner takes any size): the largest tile, RAW mosaic px.
TORCH_TILE_MOSAIC = (512, 768)
DEFAULT_OVERLAP = 32
# Owned block of exact two-pass tiling, packed px (rounded to the model's alignment).
TWO_PASS_BLOCK = 288  # = models.global_context.DEFAULT_BLOCK (measured there); no torch import here


@dataclass
class FileResult:
    source: Path
    output: Path | None = None
    ok: bool = False
    error: str | None = None
    seconds: float = 0.0
    tiles: int = 0
    mosaic_hw: tuple[int, int] | None = None
    peak_rss_mb: float | None = None
    tiling: str = ""            # "two-pass (exact)" or "blended"
    # A two-pass bundle's seconds per pass: the statistics pass is the price of exactness.
    stats_pass_s: float | None = None
    tile_pass_s: float | None = None
    # Seconds per stage: decode (RAW read + unpack), plan (tiling; the first two-pass photo
    # measures the model), infer (tiles, blending, quantisation), write (encode + atomic write).
    # In a batch they overlap across files (see process_files).
    stages_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["source"], d["output"] = str(self.source), str(self.output) if self.output else None
        return d


@dataclass
class ProcessReport:
    runner: dict[str, Any]
    results: list[FileResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if not r.ok]

    def to_dict(self) -> dict[str, Any]:
        return {"runner": self.runner, "ok": self.ok, "results": [r.to_dict() for r in self.results]}


# ---------------------------------------------------------------------------- runners

def load_runner(bundle: Path | str | None = None, model: str | None = None, *, weights: Path | str | None = None,
                options: dict[str, Any] | None = None, threads: int | None = None,
                runtime: str | None = None) -> LoadedRunner:
    """A bundle's runner, a registry model's PyTorch runner, or (neither) the default model.

    Resolved by :func:`edge_isp.runtimes.subject.open_subject`; PyTorch runs in tiles of
    ``TORCH_TILE_MOSAIC``. ``runner.warning`` is set when the default model runs untrained.
    """
    from edge_isp.runtimes.subject import open_subject

    if bundle is not None and model is not None:
        raise UsageError("give either --bundle or --model, not both")
    # A --bundle is always a path (never read as a model name), hence Path().
    what = Path(bundle) if bundle is not None else model
    return open_subject(what, weights=weights, options=options, input_size=TORCH_TILE_MOSAIC, threads=threads,
                        runtime=runtime)


def _tile_for(runner: Any, mosaic_hw: tuple[int, int]) -> tuple[int, int] | None:
    """PyTorch runs any size: shrink its tile to a small photo (to the model's multiple)."""
    if getattr(runner, "runtime", "") != "torch":
        return None
    from edge_isp.models import model_info

    mult = max(1, model_info(runner.model).input_multiple)
    th, tw = runner.packed_hw
    want = [max(model_info(runner.model).min_packed_size, -(-(v // 2) // mult) * mult) for v in mosaic_hw]
    return min(th, want[0]), min(tw, want[1])


# ------------------------------------------------------------------------------ files

def output_path(source: Path, output_dir: Path, ext: str, taken: set[Path] | None = None) -> Path:
    ext = ext if ext.startswith(".") else "." + ext
    path = Path(output_dir) / (Path(source).stem + ext.lower())
    n = 2
    while taken is not None and path in taken:
        path = Path(output_dir) / f"{Path(source).stem}_{n}{ext.lower()}"
        n += 1
    if taken is not None:
        taken.add(path)
    return path


def plan_outputs(sources: Iterable[Path | str], output_dir: Path | str, ext: str, *,
                 overwrite: bool = False) -> list[tuple[Path, Path]]:
    """(source, output) pairs, checked before any inference: every source exists, the
    folder is writable, and no existing image is replaced unless ``overwrite``."""
    output_dir = Path(output_dir)
    sources = [Path(s) for s in sources]
    missing = [str(s) for s in sources if not s.is_file()]
    if missing:
        raise InputError(f"{len(missing)} photo(s) not found or not a file: {', '.join(missing[:3])}"
                         f"{' ...' if len(missing) > 3 else ''}; check the paths")
    ensure_writable_folder(output_dir, "--output")
    taken: set[Path] = set()
    pairs = [(s, output_path(s, output_dir, ext, taken)) for s in sources]
    existing = [str(o) for _, o in pairs if o.exists() or o.is_symlink()]
    if existing and not overwrite:
        raise InputError(f"{len(existing)} output image(s) exist already ({', '.join(existing[:3])}"
                         f"{' ...' if len(existing) > 3 else ''}); pass --overwrite to replace them or choose "
                         f"another --output folder")
    folders = [o for _, o in pairs if o.is_dir()]
    if folders:
        raise InputError(f"{folders[0]} is a folder where an output image would go; choose another --output folder")
    return pairs


def write_quantised(path: Path, data: np.ndarray, quality: int = 95) -> Path:
    """Write an already quantised (H, W, 3) uint8/uint16 image atomically (no float copy)."""
    from edge_isp.raw import image_io

    ext = path.suffix.lower()
    writers = getattr(image_io, "_WRITERS", {})
    writer = writers.get(ext)
    bits = 16 if data.dtype == np.uint16 else 8
    if writer is None or bits not in writer.bits:
        # Fall back to the public writer (costs a float copy of the image).
        top = float(np.iinfo(data.dtype).max)
        return image_io.write_image(path, data.astype(np.float32) / top, bits=bits, quality=quality)
    with atomic_path(path) as tmp:
        writer.write(tmp, data, quality)
        _umask_mode(tmp)
    return path


def _umask_mode(path: Path) -> None:
    """Temporary files are created 0600; give the output the mode a plain open() would."""
    mask = os.umask(0)
    os.umask(mask)
    try:
        os.chmod(path, 0o666 & ~mask)
    except OSError:
        pass


def check_output_format(ext: str, bits: int) -> str:
    from edge_isp.raw import image_io

    ext = (ext if ext.startswith(".") else "." + ext).lower()
    if ext not in image_io.image_extensions():
        raise InputError(f"cannot write {ext!r} images; use one of {', '.join(image_io.image_extensions())}")
    writer = getattr(image_io, "_WRITERS", {}).get(ext)
    if bits not in (8, 16) or (writer is not None and bits not in writer.bits):
        raise InputError(f"{ext} does not store {bits}-bit images; use .png or .tif for 16-bit output")
    return ext


def global_net(runner: Any) -> Any | None:
    """The PyTorch module behind ``runner`` when it reads the whole image (channel attention,
    instance norm): such a model runs in exact two-pass tiles, not blended tiles."""
    net = getattr(getattr(runner, "runner", None), "model", None)
    if getattr(runner, "runtime", "") != "torch" or net is None:
        return None
    from edge_isp.models.global_context import global_modules

    return net if global_modules(net) else None


def process_image(runner: Any, raw: Any, *, overlap: int = DEFAULT_OVERLAP, out_dtype: Any = np.float32,
                  progress: Callable[[int, int], None] | None = None, two_pass: bool = True,
                  block: int = TWO_PASS_BLOCK) -> np.ndarray:
    """One RawImage -> (H, W, 3) RGB through ``runner`` (tiled when larger than its input).

    A PyTorch model with global ops runs in exact two-pass tiles (statistics of the whole
    photo first, see :mod:`edge_isp.models.global_context`) unless ``two_pass=False``.
    """
    from edge_isp.runtimes.tiling import run_tiled

    even = raw if raw.shape == (raw.height // 2 * 2, raw.width // 2 * 2) else raw.crop(
        0, 0, raw.height // 2 * 2, raw.width // 2 * 2)
    if two_pass and getattr(runner, "split", None) is not None:
        # A two-pass bundle: its statistics part over the photo, then its tile part.
        return runner.run_photo(even.packed(), out_dtype=out_dtype, progress=progress)
    net = global_net(runner) if two_pass else None
    if net is not None:
        from edge_isp.models import model_info
        from edge_isp.models.global_context import run_photo

        rgb, _ = run_photo(net, even.packed(), multiple=model_info(runner.model).input_multiple,
                           out_dtype=out_dtype, progress=progress, block=block)
        return rgb
    tile = _tile_for(runner, raw.shape)
    th, tw = tile or runner.packed_hw
    ov = min(overlap, min(th, tw) // 2)
    return run_tiled(runner, raw, overlap=ov, tile_hw=tile, out_dtype=out_dtype, progress=progress)


def _timed(result: FileResult, stage: str, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    try:
        return fn()
    finally:
        result.stages_s[stage] = round(time.perf_counter() - t0, 3)


def _failed(result: FileResult, source: Path, exc: BaseException) -> None:
    result.ok = False
    result.error = str(exc) if isinstance(exc, EdgeIspError) else f"{source}: {type(exc).__name__}: {exc}"


# What a bad file (or a full disk) raises; anything else is a bug and propagates.
_FILE_ERRORS = (EdgeIspError, OSError, ValueError, RuntimeError, MemoryError)


def _decode(result: FileResult, raw_layout: dict[str, Any] | None) -> Any:
    from edge_isp.raw import read_raw

    raw = _timed(result, "decode", lambda: read_raw(result.source, **(raw_layout or {})))
    result.mosaic_hw = raw.shape
    return raw


def _infer(runner: Any, raw: Any, result: FileResult, *, bits: int, overlap: int, block: int,
           progress: Callable[[int, int], None] | None) -> np.ndarray:
    # The plan: how the photo tiles (the first photo of a two-pass model measures the model once).
    result.tiles, result.tiling = _timed(result, "plan", lambda: tiling_of(runner, raw.shape, overlap, block))
    rgb = _timed(result, "infer", lambda: process_image(
        runner, raw, overlap=overlap, out_dtype=np.uint16 if bits == 16 else np.uint8, progress=progress, block=block))
    split_run = getattr(runner, "last_split_run", None)
    if split_run is not None:
        result.stats_pass_s, result.tile_pass_s = round(split_run.stats_s, 3), round(split_run.tiles_s, 3)
    return rgb


def _write(result: FileResult, output: Path, rgb: np.ndarray, quality: int) -> None:
    result.output = _timed(result, "write", lambda: write_quantised(output, rgb, quality))
    result.ok = True


def process_file(runner: Any, source: Path, output: Path, *, bits: int = 8, overlap: int = DEFAULT_OVERLAP,
                 quality: int = 95, raw_layout: dict[str, Any] | None = None,
                 progress: Callable[[int, int], None] | None = None, block: int = TWO_PASS_BLOCK) -> FileResult:
    """Read, process and write one file; errors are returned in the result, not raised."""
    result = FileResult(Path(source))
    reset_peak_rss()
    t0 = time.perf_counter()
    try:
        raw = _decode(result, raw_layout)
        rgb = _infer(runner, raw, result, bits=bits, overlap=overlap, block=block, progress=progress)
        del raw
        _write(result, Path(output), rgb, quality)
    except _FILE_ERRORS as exc:
        _failed(result, Path(source), exc)
    result.seconds = time.perf_counter() - t0
    result.peak_rss_mb = round(peak_rss_mb(), 1)
    return result


def plan_block(runner: Any, max_memory_mb: float | None) -> tuple[int, str]:
    """The two-pass block for ``runner`` under a memory budget, and why (default: the fixed block)."""
    if max_memory_mb is None:
        return TWO_PASS_BLOCK, ""
    if getattr(runner, "split", None) is not None:
        raise UsageError("a two-pass bundle's window is fixed at conversion: convert it with --max-memory "
                         "instead of passing it to process")
    net = global_net(runner)
    if net is None:
        raise UsageError("--max-memory plans exact two-pass tiles of PyTorch models that read the whole image; "
                         f"{getattr(runner, 'name', 'this runner')} runs fixed tiles")
    from edge_isp.models import model_info
    from edge_isp.tile_planner import two_pass_block

    return two_pass_block(net, model_info(runner.model).input_multiple, max_memory_mb)


def tiling_of(runner: Any, mosaic_hw: tuple[int, int], overlap: int = DEFAULT_OVERLAP,
              block: int = TWO_PASS_BLOCK) -> tuple[int, str]:
    """How ``process_image`` tiles a photo of ``mosaic_hw``: (windows or tiles, mode)."""
    from edge_isp.runtimes.tiling import tiles_for

    packed_hw = (mosaic_hw[0] // 2, mosaic_hw[1] // 2)
    split = getattr(runner, "split", None)
    if split is not None:
        from edge_isp.models.split_parts import tile_windows

        spec = split[1]
        return len(tile_windows(packed_hw, spec)), f"two-pass (exact, {spec.to_dict()['passes']} passes)"
    net = global_net(runner)
    if net is not None:
        from edge_isp.models import model_info
        from edge_isp.models.global_context import pad_to_multiple, plan_blocks, plan_for

        plan = plan_for(net, model_info(runner.model).input_multiple)
        h, w = pad_to_multiple(np.zeros((1, *packed_hw), np.float32), plan.align).shape[1:]
        return len(plan_blocks((h, w), block, 0, plan.align)), f"two-pass (exact, {len(plan.order) + 1} passes)"
    tile = _tile_for(runner, mosaic_hw)
    if tile is None:
        return tiles_for(runner, mosaic_hw, min(overlap, min(runner.packed_hw) // 2)).count, "blended"
    from edge_isp.runtimes.tiling import plan_tiles

    return plan_tiles(packed_hw, tile, min(overlap, min(tile) // 2)).count, "blended"


def process_files(sources: Iterable[Path | str], output_dir: Path | str = DEFAULT_OUTPUT_DIR, *, runner: Any = None,
                  bundle: Path | str | None = None, model: str | None = None, ext: str = ".png", bits: int = 8,
                  overlap: int = DEFAULT_OVERLAP, quality: int = 95, threads: int | None = None,
                  raw_layout: dict[str, Any] | None = None, overwrite: bool = False,
                  on_start: Callable[[Path, int], None] | None = None,
                  on_tile: Callable[[int, int], None] | None = None,
                  on_done: Callable[[FileResult], None] | None = None,
                  max_memory_mb: float | None = None) -> ProcessReport:
    """Process a batch of RAW files into ``output_dir``; one failed file never stops the batch.

    ``on_start(path, index)``, ``on_tile(done, total)`` and ``on_done(result)`` drive a
    progress display.
    """
    ext = check_output_format(ext, bits)
    pairs = plan_outputs(sources, output_dir, ext, overwrite=overwrite)  # before the (slow) model
    if runner is None:
        runner = load_runner(bundle=bundle, model=model, threads=threads)
    info = runner.describe() if hasattr(runner, "describe") else {"runtime": getattr(runner, "runtime", "?")}
    block, plan_note = plan_block(runner, max_memory_mb)
    if plan_note:
        info["tile_plan"] = plan_note
    report = ProcessReport(runner=info)
    for result in _pipelined(runner, pairs, bits=bits, overlap=overlap, quality=quality, raw_layout=raw_layout,
                             block=block, on_start=on_start, on_tile=on_tile):
        report.results.append(result)
        if on_done is not None:
            on_done(result)
    return report


def _pipelined(runner: Any, pairs: list[tuple[Path, Path]], *, bits: int, overlap: int, quality: int,
               raw_layout: dict[str, Any] | None, block: int, on_start: Callable[[Path, int], None] | None,
               on_tile: Callable[[int, int], None] | None) -> Iterable[FileResult]:
    """Files in order, three stages overlapped: the next file decodes and the previous one is
    encoded and written (both in their own thread: LibRaw, zlib and the runtimes release the
    GIL) while this one runs through the model. At most three frames are alive: one decoded
    ahead, one in the model, one being written. Results are the same as one file at a time."""
    from concurrent.futures import Future, ThreadPoolExecutor

    def decode(result: FileResult) -> Any:
        try:
            return _decode(result, raw_layout)
        except _FILE_ERRORS as exc:
            _failed(result, result.source, exc)
            return None

    def write(result: FileResult, output: Path, rgb: np.ndarray, t0: float) -> FileResult:
        try:
            _write(result, output, rgb, quality)
        except _FILE_ERRORS as exc:
            _failed(result, result.source, exc)
        result.seconds = time.perf_counter() - t0
        result.peak_rss_mb = round(peak_rss_mb(), 1)
        return result

    with ThreadPoolExecutor(1, thread_name_prefix="edge-isp-decode") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="edge-isp-write") as writer:
        results = [FileResult(Path(source)) for source, _ in pairs]
        starts = [0.0] * len(pairs)

        def ahead(i: int) -> Future | None:
            if i >= len(pairs):
                return None
            starts[i] = time.perf_counter()
            return reader.submit(decode, results[i])

        pending_write: Future | None = None
        decoding = ahead(0)
        for index, (source, output) in enumerate(pairs):
            result = results[index]
            if on_start is not None:
                on_start(source, index)
            raw = decoding.result() if decoding is not None else None
            decoding = ahead(index + 1)
            rgb = None
            if raw is not None:                       # else it could not be read (reported in result)
                reset_peak_rss()
                try:
                    rgb = _infer(runner, raw, result, bits=bits, overlap=overlap, block=block, progress=on_tile)
                except _FILE_ERRORS as exc:
                    _failed(result, result.source, exc)
            raw = None
            if pending_write is not None:             # one image in the writer at a time
                yield pending_write.result()
            pending_write = None
            if rgb is None:                           # failed: reported, the batch goes on
                result.seconds = time.perf_counter() - starts[index]
                yield result
                continue
            pending_write = writer.submit(write, result, Path(output), rgb, starts[index])
            del rgb
        if pending_write is not None:
            yield pending_write.result()


__all__ = ["DEFAULT_OUTPUT_DIR", "FileResult", "ProcessReport", "load_runner", "output_path", "plan_outputs", "process_file",
           "process_files", "process_image", "write_quantised"]
