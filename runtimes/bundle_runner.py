"""Open a bundle (or a registry model) as a ready-to-run runner.

The bundle's manifest says which runtime runs the artifact, with which options (e.g.
OpenVINO's inference precision), and what the input is (packed Bayer, mosaic size,
layout, dtype, quantisation); callers only hand over packed NCHW float32 and get RGB
NCHW float32 back.

    >>> runner = open_bundle("edge-isp-out/pynet-v2-mobile_cpu-fp32", threads=2)
    >>> runner.warmup()
    >>> rgb = runner.run(raw.crop(0, 0, *runner.mosaic_hw).packed()[None])
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.errors import BundleError, InputError, UsageError
from edge_isp.runtimes.base import Runner, TensorSpec, open_runner

@dataclass(frozen=True)
class Origin:
    """What a LoadedRunner was opened from, for reports (eval records it with its scores)."""

    kind: str                       # "bundle" | "checkpoint" | "model" | "default"
    path: Path | None = None        # the bundle folder or checkpoint file
    weights: str | None = None      # a weights file, "packaged" (the shipped trained ones), None: seeded init
    options: dict[str, Any] = field(default_factory=dict)  # registry model options
    step: int | None = None         # a training checkpoint's step


class LoadedRunner:
    """A runner plus what it was loaded from: the object every host step works with.

    Attributes: ``runtime``, ``input_spec``, ``output_spec`` (as any runner), ``model``
    (registry name), ``target``, ``bundle`` (the Bundle or None), ``mosaic_hw`` (RAW
    input size), ``threads`` (as requested; None = the runtime's default),
    ``load_time_s`` (artifact load + compile, measured), ``bundle_sha256``, ``origin``
    (what it was opened from), ``warning`` (something the user should hear, e.g. the
    default model ran untrained; None when all is well).
    """

    def __init__(self, runner: Runner, *, model: str, target: str, mosaic_hw: tuple[int, int],
                 threads: int | None, load_time_s: float, bundle: Any = None,
                 bundle_sha256: str | None = None, precision: str | None = None,
                 origin: Origin | None = None) -> None:
        self.runner = runner
        self.model = model
        self.target = target
        self.mosaic_hw = mosaic_hw
        self.threads = threads
        self.load_time_s = load_time_s
        self.bundle = bundle
        self.bundle_sha256 = bundle_sha256
        self.precision = precision
        self.origin = origin or Origin("bundle" if bundle is not None else "model")
        self.warning: str | None = None
        self.warmed_up = False
        # A two-pass bundle: (statistics-part runner, SplitSpec); None for one artifact.
        self.split: tuple[Any, Any] | None = None
        self.last_split_run: Any = None

    @property
    def runtime(self) -> str:
        return self.runner.runtime

    @property
    def input_spec(self) -> TensorSpec:
        return self.runner.input_spec

    @property
    def output_spec(self) -> TensorSpec:
        return self.runner.output_spec

    @property
    def net(self) -> Any:
        """The ``torch.nn.Module`` of a PyTorch runner (the reference to compare with); None for artifacts."""
        return getattr(self.runner, "model", None) if self.runtime == "torch" else None

    @property
    def batch(self) -> int:
        return int(self.input_spec.nchw_shape[0])

    @property
    def packed_hw(self) -> tuple[int, int]:
        shape = self.input_spec.nchw_shape
        return int(shape[2]), int(shape[3])

    @property
    def output_scale(self) -> int:
        """Output pixels per packed input pixel (2 for a full-resolution RGB ISP)."""
        return int(round(self.output_spec.nchw_shape[2] / self.input_spec.nchw_shape[2]))

    @property
    def threads_used(self) -> int:
        return int(self.threads) if self.threads else (os.cpu_count() or 1)

    @property
    def name(self) -> str:
        return f"{self.model}/{self.target}"

    def example_input(self, seed: int = 0) -> np.ndarray:
        """A random packed input of the model's shape in [0, 1] (float32 NCHW)."""
        rng = np.random.default_rng(seed)
        return rng.random(self.input_spec.nchw_shape, dtype=np.float32)

    def run(self, packed: np.ndarray) -> np.ndarray:
        if self.split is None:
            return self.runner.run(packed)
        # Each window is a whole picture: its own statistics pass, then the tile pass.
        from edge_isp.models.split_parts import run_split

        stats_runner, spec = self.split
        outs = [run_split(stats_runner.run_named, self.runner.run_named, spec, x) for x in packed]
        return np.ascontiguousarray(np.stack(outs).transpose(0, 3, 1, 2), dtype=np.float32)

    def run_photo(self, packed: np.ndarray, **kwargs: Any) -> np.ndarray:
        """A whole packed photo (4, h, w) through a two-pass bundle, exactly: (h*s, w*s, 3)."""
        from edge_isp.models.split_parts import run_split

        if self.split is None:
            raise InputError(f"{self.name} is not a two-pass bundle; process photos with edge_isp.process")
        from edge_isp.models.split_parts import SplitRun

        stats_runner, spec = self.split
        self.last_split_run = SplitRun()   # windows and seconds per pass, for reports
        return run_split(stats_runner.run_named, self.runner.run_named, spec, packed, run=self.last_split_run, **kwargs)

    def run_untiled(self, packed: np.ndarray) -> np.ndarray:
        """A whole packed photo (4, h, w) through this two-pass bundle's own artifacts reshaped
        to the whole (grid-padded) frame: one window, no tiles. The same weights and INT8
        quantisation as the tiled run, so comparing the two isolates what tiling costs.
        Only OpenVINO IR can be reshaped after conversion."""
        from dataclasses import replace

        from edge_isp.converters.bundle import stats_files
        from edge_isp.models.split_parts import pad_frame, run_split

        if self.split is None or self.bundle is None:
            raise InputError(f"{self.name} is not a two-pass bundle: it has no untiled run to compare with")
        if self.runtime != "openvino":
            raise UsageError(f"{self.name}: only OpenVINO IR can be reshaped to a whole photo after conversion; "
                             "convert for an openvino-* target to compare tiled and untiled runs of one artifact")
        _, spec = self.split
        hw = tuple(int(v) for v in pad_frame(np.zeros((1, *packed.shape[1:]), np.float32), spec).shape[1:])
        options = {**self.bundle.manifest["artifact"].get("runtime_options", {}), "input_hw": hw}
        if self.threads:
            options["threads"] = int(self.threads)
        stats = open_runner("openvino", self.bundle.path / stats_files(self.bundle.manifest)[0], **options)
        tiles = open_runner("openvino", self.bundle.model_file, **options)
        whole = replace(spec, window=hw, reach=0)                 # one window: the frame itself
        return run_split(stats.run_named, tiles.run_named, whole, packed)

    def warmup(self, runs: int = 2) -> float:
        """Run ``runs`` inferences on a random input (first-call allocation, JIT, caches).

        Returns the seconds it took.
        """
        x = self.example_input()
        t0 = time.perf_counter()
        for _ in range(max(0, runs)):
            self.runner.run(x)
        self.warmed_up = True
        return time.perf_counter() - t0

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model, "target": self.target, "runtime": self.runtime, "precision": self.precision,
            "mosaic_hw": list(self.mosaic_hw), "threads": self.threads,
            "input": self.input_spec.to_dict(), "output": self.output_spec.to_dict(),
            "bundle": str(self.bundle.path) if self.bundle is not None else None,
            "bundle_sha256": self.bundle_sha256, "load_time_s": round(self.load_time_s, 4),
            **({"tiling": {"mode": "two-pass", "passes": self.split[1].to_dict()["passes"],
                           "window_packed": list(self.split[1].window), "block_packed": list(self.split[1].block),
                           "note": "one run = the statistics part once per global op, then the tile part"}}
               if self.split is not None else {}),
        }

    def __repr__(self) -> str:
        return f"LoadedRunner({self.name} on {self.runtime}, mosaic {self.mosaic_hw[0]}x{self.mosaic_hw[1]})"


def _nchw(shape: list[int], layout: str) -> tuple[int, ...]:
    if layout == "NHWC" and len(shape) == 4:
        n, h, w, c = shape
        return (n, c, h, w)
    return tuple(shape)


def open_bundle(bundle_path: Path | str, threads: int | None = None, runtime: str | None = None,
                warmup: int = 0, **options: Any) -> LoadedRunner:
    """Load a bundle folder made by ``edge-isp convert`` with the runtime its manifest names.

    Args:
        bundle_path: the bundle folder (or its manifest.json).
        threads: CPU threads for the runtime (XNNPACK, OpenVINO, ONNX Runtime); None lets
            the runtime choose.
        runtime: another runtime able to run the same format (``tflite-runtime`` for a
            TFLite bundle); by default the manifest's.
        warmup: inferences to run right after loading.
        **options: runtime options overriding the manifest's (e.g. ``performance_hint``).

    Raises:
        BundleError: missing/broken bundle, or a runtime that cannot run its format, or an
            artifact whose tensors disagree with the manifest.
    """
    from edge_isp.converters.bundle import load_bundle, verify_bundle_files

    bundle = load_bundle(Path(bundle_path))
    verify_bundle_files(bundle)  # what runs (bench, process) is what was verified at conversion
    m = bundle.manifest
    fmt = _bundle_format(bundle)
    if not fmt.host_runs:
        # E.g. .rknn: a vendor simulator verified it at conversion, in its toolchain env.
        raise BundleError(f"{bundle.path}: {fmt.board_only}; on the host use the bundle's source.onnx "
                          f"({bundle.path / 'source.onnx'}) with ONNX Runtime, or convert for a host target "
                          "(e.g. --target onnx-fp32)")
    chosen = runtime or bundle.runtime
    if chosen not in fmt.runtimes:
        raise BundleError(f"runtime {chosen!r} cannot run a {fmt.name} bundle ({bundle.path}); use one of "
                          f"{', '.join(fmt.runtimes)}")
    runtime_options = {**m["artifact"].get("runtime_options", {}), **options}
    if threads:
        runtime_options["threads"] = int(threads)
    t0 = time.perf_counter()
    runner = open_runner(chosen, bundle.model_file, **runtime_options)
    load_s = time.perf_counter() - t0

    want = m.get("input", {})
    if want.get("shape"):
        expected = _nchw(want["shape"], want.get("layout", "NCHW"))
        if tuple(int(d) for d in expected) != tuple(int(d) for d in runner.input_spec.nchw_shape):
            raise BundleError(
                f"{bundle.model_file} takes input {tuple(runner.input_spec.nchw_shape)} but the manifest says "
                f"{expected}; the bundle was edited or mixed up, re-run 'edge-isp convert'"
            )
        if want.get("dtype") and want["dtype"] != runner.input_spec.dtype and runner.runtime != "openvino":
            raise BundleError(
                f"{bundle.model_file} takes {runner.input_spec.dtype} input but the manifest says {want['dtype']}; "
                "re-run 'edge-isp convert'"
            )
    packed = runner.input_spec.nchw_shape
    mosaic_hw = tuple(want.get("mosaic_hw") or (2 * int(packed[2]), 2 * int(packed[3])))
    loaded = LoadedRunner(
        runner, model=str(m.get("model", {}).get("name", "?")), target=bundle.target, mosaic_hw=mosaic_hw,
        threads=threads, load_time_s=load_s, bundle=bundle, bundle_sha256=m["artifact"].get("sha256"),
        precision=m["target"].get("precision"), origin=Origin("bundle", path=bundle.path),
    )
    tiling = m.get("tiling") or {}
    if tiling.get("mode") == "two-pass":
        loaded.split = _open_stats_part(bundle, tiling, chosen, runtime_options, runner)
    if warmup:
        loaded.warmup(warmup)
    return loaded


def _open_stats_part(bundle: Any, tiling: dict[str, Any], runtime: str, options: dict[str, Any],
                     tile_runner: Runner) -> tuple[Any, Any]:
    """The statistics part of a two-pass bundle and the spec both parts are driven by."""
    from edge_isp.converters.bundle import stats_files
    from edge_isp.models.split_parts import SplitSpec

    spec = SplitSpec.from_dict(tiling)
    files = stats_files(bundle.manifest)  # plain names, present and hashed (load_bundle, verify_bundle_files)
    stats_runner = open_runner(runtime, bundle.path / files[0], **options)
    for part, runner_ in (("statistics", stats_runner), ("tile", tile_runner)):
        names = set(getattr(runner_, "inputs", {}))
        if names != set(spec.input_names):
            raise BundleError(f"{bundle.path}: the {part} part takes {', '.join(sorted(names))} but the manifest says "
                              f"{', '.join(spec.input_names)}; re-run 'edge-isp convert'")
    return stats_runner, spec


def open_model(model: str, input_size: tuple[int, int] | None = None, *,
               weights: Path | None = None, options: dict[str, Any] | None = None,
               threads: int | None = None, net: Any = None, warmup: int = 0) -> LoadedRunner:
    """The PyTorch reference of a registry model as a runner at a fixed RAW mosaic size.

    ``net`` passes an already built ``nn.Module`` (e.g. a trained one); otherwise the
    registry model is created (seed 0) and ``weights`` (a state dict path) loaded.
    To resolve a bundle, checkpoint, name or the default model, use
    :func:`edge_isp.runtimes.subject.open_subject`.
    """
    from edge_isp.models import resolve_input_size
    from edge_isp.models import create
    from edge_isp.runtimes.torch_rt import TorchRunner

    mosaic_hw = resolve_input_size(model, input_size)
    t0 = time.perf_counter()
    if net is None:
        net = create(model, **(options or {}))
        if weights is not None:
            from edge_isp.models.weights import load_weights

            load_weights(net, Path(weights))
    runner = TorchRunner(net, (1, 4, mosaic_hw[0] // 2, mosaic_hw[1] // 2), threads=threads)
    load_s = time.perf_counter() - t0
    origin = Origin("model", weights=str(weights) if weights is not None else None, options=dict(options or {}))
    loaded = LoadedRunner(runner, model=model, target="torch-fp32", mosaic_hw=mosaic_hw, threads=threads,
                          load_time_s=load_s, precision="fp32", origin=origin)
    if warmup:
        loaded.warmup(warmup)
    return loaded


def _bundle_format(bundle: Any) -> Any:
    """The bundle's format entry; a manifest naming no known format is a broken bundle."""
    from edge_isp.converters.artifact_formats import FORMATS

    name = str(bundle.manifest["target"].get("format", ""))
    if name not in FORMATS:
        raise BundleError(f"{bundle.path}: the manifest names artifact format {name!r}, which edge-isp does not know "
                          f"({', '.join(FORMATS)}); re-run 'edge-isp convert'")
    return FORMATS[name]


__all__ = ["LoadedRunner", "Origin", "open_bundle", "open_model"]
