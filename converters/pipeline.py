"""``convert``: registry model -> ONNX -> target artifact, verified, as one bundle folder.

Stages: build model -> export ONNX -> build the target's format (its entry in
converters/artifact_formats.py) -> verify against PyTorch on held-out RAW crops -> check op
support -> write the bundle atomically. A failed verification raises before anything is
written.
"""

from __future__ import annotations

import datetime as _dt
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_isp._atomic import atomic_dir, guard_folder
from edge_isp.converters import bundle as _bundle
from edge_isp.converters import two_pass
from edge_isp.converters.artifact_formats import ArtifactFormat, check_route, get_format
from edge_isp.converters.calibration import InputSet, make_input_sets
from edge_isp.converters.fit import FitOptions, fitted_export, require_supported
from edge_isp.converters.stages import BuildContext, BuiltArtifact, ConvertOptions, source_of
from edge_isp.converters.targets import Target, get_target, resolve_accelerator
from edge_isp.converters.verify import Verification, compare_outputs, require_passed
from edge_isp.errors import InputError, OutputError, UsageError
from edge_isp.models import resolve_input_size
from edge_isp.models.pretrained import DEFAULT_MODEL, PACKAGED_WEIGHTS, weights_kind, with_default_model
from edge_isp.stage_clock import StageClock

# ONNX op types that are normalisation layers: what "--keep-float norm" needs to exist.
NORM_ONNX_OPS = ("InstanceNormalization", "LayerNormalization", "GroupNormalization")


@dataclass
class ConversionResult:
    bundle: _bundle.Bundle
    verification: Verification
    timings_s: dict[str, float]

    @property
    def manifest(self) -> dict[str, Any]:
        return self.bundle.manifest


@dataclass
class _Part:
    """One exported graph and what became of it (the model, or a two-pass part)."""

    exported: Any                       # onnx_export.OnnxExport
    source: Any = None                  # stages.TorchSource: the PyTorch program it came from
    built: BuiltArtifact | None = None
    runner: Any = None
    support: Any = None                 # CheckReport


@dataclass
class _Run:
    """A conversion in progress: what each stage found, for the next ones and the manifest."""

    opts: ConvertOptions
    target: Target
    fmt: ArtifactFormat
    fit: FitOptions
    accelerator: str | None
    mosaic_hw: tuple[int, int]
    clock: StageClock = field(default_factory=StageClock)
    model: Any = None
    tiling: str = "blended"
    split: Any = None                   # two_pass.TwoPassSetup
    calib: InputSet | None = None
    held_out: InputSet | None = None
    reference: Any = None               # PyTorch's output on the held-out crops
    main: _Part | None = None
    stats: _Part | None = None          # two-pass statistics part
    verification: Verification | None = None
    parts_check: Any = None
    photo_checks: list[Any] = field(default_factory=list)

    @property
    def packed_hw(self) -> tuple[int, int]:
        return self.mosaic_hw[0] // 2, self.mosaic_hw[1] // 2

    def context(self, part: _Part, work: Path) -> BuildContext:
        return BuildContext(self.opts, self.target, part.exported.path, part.exported.input_name, work, self.calib,
                            self.held_out, self.accelerator, part.source, self.fit, self.clock,
                            norm_inputs=self.norm_inputs)

    @property
    def norm_inputs(self) -> tuple[str, ...]:
        """A two-pass part's inputs that carry instance-norm statistics (mean, 1/std)."""
        if self.split is None:
            return ()
        return tuple(name for op in self.split.spec.ops if op.kind == "norm" for name in op.inputs)


def _has_norm(run: _Run) -> bool:
    """Whether the model has normalisation layers for ``--keep-float norm`` to keep. A two-pass
    part has none as ONNX ops: its instance norms read injected statistics (Sub, Mul)."""
    if run.split is not None:
        return any(op.kind == "norm" for op in run.split.spec.ops)
    return any(op in run.main.exported.op_types for op in NORM_ONNX_OPS)


def _advice(run: _Run) -> str:
    """What to try when verification fails: only advice that fits this model and target."""
    tips = []
    if run.target.quantized:
        if _has_norm(run) and "norm" not in run.opts.keep_float:
            tips.append("keep the normalisation layers in float with --keep-float norm")
        tips.append("see which layers lose most with --layer-report")
        if run.opts.calib_dir is None:
            tips.append("calibrate on your own RAW files with --calib DIR")
        else:
            tips.append("calibrate on more crops with --calib-samples")
    tips.append("or lower the bar knowingly with --min-psnr")
    return "; ".join(tips)


def default_output(opts: ConvertOptions) -> Path:
    return Path("edge-isp-out") / f"{opts.model}_{opts.target}"


def _work_folder() -> Path:
    try:
        return Path(tempfile.mkdtemp(prefix="edge-isp-convert-"))
    except OSError as exc:
        raise OutputError(f"cannot create a work folder in {tempfile.gettempdir()} ({exc.strerror}); "
                          f"set TMPDIR to a writable folder with a few GB free") from exc


def _plan(opts: ConvertOptions) -> _Run:
    """Everything that can be refused before any work: names, sizes, flags, the output folder."""
    from edge_isp.models import check_options
    from edge_isp.whole_photo import check_conversion_photos

    target = get_target(opts.target)
    opts = with_default_model(opts)
    check_options(opts.model, opts.model_options)
    fit = FitOptions.parse({**target.fit, **opts.fit})
    require_supported(fit, target.format)
    run = _Run(opts, target, get_format(target.format), fit, resolve_accelerator(target, opts.soc),
               resolve_input_size(opts.model, opts.input_size))
    if opts.calib_samples < 1 or opts.verify_samples < 1:
        raise InputError("--calib-samples and --verify-samples must be at least 1")
    check_conversion_photos(opts, target)
    check_route(opts.route)           # before any work (tflite_build.choose_route decides later, per graph)
    if opts.max_memory_mb is not None and opts.input_size is not None:
        raise UsageError("give --input-size or --max-memory, not both: the budget chooses the window size")
    if opts.keep_float and not target.quantized:
        raise InputError(f"--keep-float applies to INT8 targets; {target.name} is {target.precision}: drop the flag")
    return run


def _build_model(run: _Run) -> None:
    """The PyTorch model, its tiling (two-pass parts or one artifact) and the size it converts at."""
    from edge_isp.models import create, model_info
    from edge_isp.models.weights import load_weights

    opts = run.opts
    run.model = create(opts.model, seed=opts.seed, **opts.model_options)
    if opts.weights:
        load_weights(run.model, opts.weights)
    run.tiling = two_pass.choose_tiling(opts.tiling, run.model, run.target)
    if opts.max_memory_mb is not None and run.tiling != "two-pass":
        raise InputError("--max-memory plans the window of two-pass bundles; this conversion makes one artifact "
                         "(blended): choose its size with --input-size")
    if run.tiling == "two-pass":
        # The parts take a fixed window aligned to the global ops' strides (see two_pass.setup).
        run.split = two_pass.setup(run.model, model_info(opts.model).input_multiple, opts.input_size,
                                   opts.max_memory_mb)
        run.mosaic_hw = (2 * run.split.spec.window[0], 2 * run.split.spec.window[1])


def _make_inputs(run: _Run) -> None:
    """Calibration and held-out RAW crops, and PyTorch's answer on the held-out ones."""
    from edge_isp._deps import require

    torch = require("torch", "conversion")
    opts = run.opts
    calib, held_out = make_input_sets(run.packed_hw, opts.calib_dir, opts.calib_samples, opts.verify_samples,
                                      opts.seed, opts.raw_layout)
    if run.split is not None:
        calib = two_pass.with_statistics(run.model, run.split, calib)
        held_out = two_pass.with_statistics(run.model, run.split, held_out)
    run.calib, run.held_out = calib, held_out
    with torch.no_grad():
        run.reference = run.model(torch.from_numpy(held_out.data)).numpy()


def _export(run: _Run, work: Path) -> None:
    """The ONNX graph(s) with the fits applied, each with the PyTorch program it came from."""
    sources: dict[Path, Any] = {}

    def export(module: Any, shape: Any, path: Path, **kwargs: Any) -> Any:
        sources[Path(path)] = source_of(module, shape, **kwargs)
        return fitted_export(run.fit)(module, shape, path, **kwargs)

    if run.split is None:
        exported = export(run.model, (1, 4, *run.packed_hw), work / "model.onnx")
    else:
        stats_exported, exported = two_pass.export_parts(export, run.model, run.split, work)
        run.stats = _Part(stats_exported, sources.get(Path(stats_exported.path)))
    run.main = _Part(exported, sources.get(Path(exported.path)))
    if "norm" in run.opts.keep_float and not _has_norm(run):
        raise InputError(f"--keep-float norm: {run.opts.model} has no normalisation layers (none of "
                         f"{', '.join(NORM_ONNX_OPS)} in its graph); drop the flag")


def _build(run: _Run, work: Path) -> None:
    """Each part through its format's builder."""
    run.main.built = run.fmt.build(run.context(run.main, work))
    if run.stats is not None:
        (work / "stats").mkdir()
        run.stats.built = run.fmt.build(run.context(run.stats, work / "stats"))


def _verify(run: _Run) -> None:
    """The built artifact(s) on the held-out crops against PyTorch; raises below the bar."""
    from edge_isp.converters.layout_guard import layout_hint
    from edge_isp.models import model_info
    from edge_isp.runtimes import open_runner

    target, main = run.target, run.main
    threshold = run.opts.min_psnr_db if run.opts.min_psnr_db is not None else target.min_psnr_db
    built = main.built
    if built.outputs is not None:
        # The host cannot run this format: the vendor's simulator ran the held-out crops.
        main.runner = open_runner("onnxruntime", main.exported.path)  # for the I/O description only
        run.verification = compare_outputs(run.reference, built.outputs, threshold, built.outputs_by or target.runtime)
    elif run.stats is not None:
        # What a user gets: both artifacts, two passes, against the untiled model.
        main.runner = open_runner(target.runtime, built.main, **built.runtime_options)
        run.stats.runner = open_runner(target.runtime, run.stats.built.main, **run.stats.built.runtime_options)
        output, found = two_pass.run_held_out(run.stats.runner, main.runner, run.split.spec, run.held_out)
        run.verification = compare_outputs(run.reference, output, threshold, f"{target.runtime} (two-pass)")
        run.parts_check = two_pass.check_parts(main.runner, run.held_out, run.reference, found)
    else:
        main.runner = open_runner(target.runtime, built.main, **built.runtime_options)
        run.verification = compare_outputs(run.reference, main.runner.run(run.held_out.data), threshold, target.runtime)
    step = 2 * model_info(run.opts.model).input_multiple
    hint = layout_hint(main.exported.path, run.mosaic_hw, step) if run.fmt.tflite_based else ""
    require_passed(run.verification, f"the {target.name} artifact", hint=hint or _advice(run))


def _check_support(run: _Run) -> None:
    """Which ops the target's accelerator takes: a vendor compiler's placement (next to the
    static table's verdict) or the static table's."""
    from edge_isp.converters.check import check_artifact, compare_with_table, require_delegation, static_report
    from edge_isp.converters.support import load_table

    built, name = run.main.built, run.target.name
    if built.support is not None:
        static_file = run.main.exported.path if load_table(run.target.support_table).format == "onnx" else built.main
        run.main.support = compare_with_table(built.support, static_report(static_file, name))
    else:
        run.main.support = check_artifact(built.main, name)
    if run.stats is not None:
        run.stats.support = check_artifact(run.stats.built.main, name)
    if run.opts.require_full_delegation:
        for part in (run.main, run.stats):
            if part is not None:
                require_delegation(part.support, "full")  # raises before anything is written


def convert(opts: ConvertOptions, progress: Callable[[str], None] = lambda stage: None) -> ConversionResult:
    """Convert, verify and bundle; raises an EdgeIspError on any failure, writing nothing."""
    from edge_isp._deps import require
    from edge_isp.whole_photo import verify_conversion_photos

    run = _plan(opts)
    require("torch", "conversion")
    out_dir = Path(run.opts.output) if run.opts.output else default_output(run.opts)
    # Before any work: never replace what is not a bundle; a bundle only with --overwrite.
    guard_folder(out_dir, kind="bundle", is_ours=_bundle.is_bundle_dir, overwrite=run.opts.overwrite)

    def stage(name: str, step: Callable[..., None], *args: Any) -> None:
        progress(name)
        with run.clock.stage(name):
            step(*args)

    stage("model", _build_model, run)
    stage("inputs", _make_inputs, run)
    work = _work_folder()
    try:
        stage("onnx", _export, run, work)
        stage(run.target.format, _build, run, work)
        stage("verify", _verify, run)
        if run.opts.verify_photos:
            stage("verify-photo", lambda: run.photo_checks.extend(verify_conversion_photos(
                run.opts, run.target, run.model, run.main.runner, run.stats.runner if run.stats else None,
                run.split, run.mosaic_hw)))
        stage("check", _check_support, run)
        progress("bundle")
        timings = _write_bundle(run, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ConversionResult(_bundle.load_bundle(out_dir), run.verification, timings)


def _manifest(run: _Run) -> dict[str, Any]:
    """The bundle's manifest without what only the written files tell (hashes, sizes, timings)."""
    from edge_isp.models import count_params, model_info
    from edge_isp.models.weights import weights_sha256

    opts, target, main, built = run.opts, run.target, run.main, run.main.built
    return {
        "schema": _bundle.SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": {
            "name": opts.model, "options": {**model_info(opts.model).default_options, **opts.model_options},
            "params": count_params(run.model),
            "weights": str(opts.weights) if opts.weights else f"init(seed={opts.seed})",
            "weights_kind": weights_kind(opts.weights), "weights_sha256": weights_sha256(run.model),
        },
        "target": {
            "name": target.name, "format": target.format, "precision": target.precision,
            "runtime": target.runtime, "support_table": target.support_table,
            "delegate": target.delegate, "default_api_level": target.default_api_level,
            **({"accelerator_config": run.accelerator} if run.accelerator else {}),
        },
        "artifact": {"file": run.fmt.artifact, "extra_files": [p.name for p in built.extra],
                     "runtime_options": built.runtime_options},
        "input": {**main.runner.input_spec.to_dict(), "mosaic_hw": list(run.mosaic_hw),
                  "packing": "B,G(red row),R,G(blue row) of the mosaic, each (raw-black)/(white-black) in [0,1]"},
        "output": {**main.runner.output_spec.to_dict(), "range": "RGB [0,1] (clip)"},
        "onnx": {"opset": main.exported.opset, "op_types": main.exported.op_types},
        "fit": run.fit.to_dict(),
        "support_check": main.support.to_dict(include_ops=False),
        **({"npu": built.npu} if built.npu is not None else {}),
        "quantization": built.quantization,
        "layer_errors": built.layer_errors,
        "calibration": run.calib.description if target.quantized else None,
        "verification": {**run.verification.to_dict(), "inputs": run.held_out.description,
                         **({"parts": run.parts_check.to_dict()} if run.parts_check is not None else {})},
        "tiling": _tiling_section(run),
        **({"photo_verification": [r.to_dict() for r in run.photo_checks]} if run.photo_checks else {}),
        "tools": _bundle.tool_versions(),
    }


def _tiling_section(run: _Run) -> dict[str, Any]:
    """The manifest's ``tiling``: how runners must tile this bundle's artifact."""
    from edge_isp.models.global_context import global_modules

    if run.split is None:
        n = len(global_modules(run.model))
        why = (f"; with {n} global ops a two-pass bundle runs its statistics part {n} times per window, so it is "
               f"not the default" if n > two_pass.MAX_AUTO_GLOBAL_OPS else "")
        return {"mode": "blended", "exact": not n,
                **({} if not n else {"note": f"the model reads the whole image; blended tiles differ from the untiled "
                                             f"model (convert with --tiling two-pass where supported){why}"})}
    stats_support = run.stats.support
    return {"mode": "two-pass", "exact": True, **run.split.spec.to_dict(), "window_note": run.split.note,
            "stats_artifact": {"files": list(run.fmt.stats_files), "source_onnx": "source_stats.onnx",
                               **({"support_check": stats_support.to_dict(include_ops=False)} if stats_support else {})}}


def _write_bundle(run: _Run, out_dir: Path) -> dict[str, float]:
    """Artifact(s), source ONNX and manifest into ``out_dir`` at once (atomic); returns the timings."""
    done = run.clock.begin("bundle")
    manifest = _manifest(run)
    main, artifact = run.main, run.fmt.artifact
    replace = _bundle.is_bundle_dir if run.opts.overwrite else (lambda path: False)
    with atomic_dir(out_dir, may_replace=replace) as tmp:
        shutil.copy2(main.built.main, tmp / artifact)
        for extra in main.built.extra:
            shutil.copy2(extra, tmp / extra.name)
        source_is_artifact = Path(main.exported.path).resolve() == Path(main.built.main).resolve()
        if not source_is_artifact:
            shutil.copy2(main.exported.path, tmp / "source.onnx")
        files = [artifact, *[p.name for p in main.built.extra]]
        if run.stats is not None:
            for src, name in zip([run.stats.built.main, *run.stats.built.extra], run.fmt.stats_files):
                shutil.copy2(src, tmp / name)
            shutil.copy2(run.stats.exported.path, tmp / "source_stats.onnx")
            files.extend(run.fmt.stats_files)
        manifest["artifact"].update({
            "sha256": _bundle.file_sha256(tmp / artifact),
            "files_sha256": {f: _bundle.file_sha256(tmp / f) for f in files},
            "size_bytes": sum((tmp / f).stat().st_size for f in files),
            "source_onnx": artifact if source_is_artifact else "source.onnx",
        })
        done()
        total_s, peak_mb = run.clock.total()
        timings = {**run.clock.seconds, "total": total_s}
        manifest["conversion"] = {"time_s": total_s, "stages_s": timings, "peak_rss_mb": peak_mb,
                                  "stages_peak_rss_mb": dict(run.clock.peak_mb)}
        _bundle.write_manifest(tmp, manifest)
    return timings


__all__ = ["DEFAULT_MODEL", "NORM_ONNX_OPS", "PACKAGED_WEIGHTS", "ConversionResult", "ConvertOptions", "convert",
           "default_output", "with_default_model"]
