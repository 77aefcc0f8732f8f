"""``convert``: registry model -> ONNX -> target artifact, verified, as one bundle folder.

Stages: build model -> export ONNX -> build the target's format -> verify against
PyTorch on held-out RAW crops -> write the bundle atomically. A failed verification
raises before anything is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from edge_isp.converters.calibration import DEFAULT_CALIB_SAMPLES, DEFAULT_VERIFY_SAMPLES, InputSet, make_input_sets
from edge_isp.converters.fit import FitOptions, fitted_export, require_supported
from edge_isp.converters.targets import Target, get_target
from edge_isp.converters.verify import Verification, compare_outputs, require_passed
from edge_isp.errors import ConversionError, InputError, OutputError
# The default model is defined next to its weights (edge_isp.models.pretrained);
# DEFAULT_MODEL and PACKAGED_WEIGHTS stay importable from here (explicit re-exports).
from edge_isp.models.pretrained import DEFAULT, default_weights_path, packaged_weights_for
from edge_isp.models.pretrained import DEFAULT_MODEL as DEFAULT_MODEL
from edge_isp.models.pretrained import PACKAGED_WEIGHTS as PACKAGED_WEIGHTS
from edge_isp.stage_clock import StageClock

# "--keep-float norm" means the normalisation layers: in OpenVINO the MVN op type; in
# TFLite the InstanceNorm subgraphs, found in the float model (tflite.norm_island_nodes).
KEEP_FLOAT_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "norm": {"tflite": (), "openvino": ("MVN",)},
}
# ONNX op types that are normalisation layers: what "--keep-float norm" needs to exist.
NORM_ONNX_OPS = ("InstanceNormalization", "LayerNormalization", "GroupNormalization")


@dataclass
class ConvertOptions:
    model: str | None = None                        # None: the packaged, trained default model
    target: str = "nnapi-int8"
    model_options: dict[str, Any] = field(default_factory=dict)
    weights: Path | None = None
    input_size: tuple[int, int] | None = None       # RAW mosaic (H, W)
    calib_dir: Path | None = None
    raw_layout: dict[str, Any] = field(default_factory=dict)  # read_raw options for --calib files
    calib_samples: int = DEFAULT_CALIB_SAMPLES
    verify_samples: int = DEFAULT_VERIFY_SAMPLES
    seed: int = 0
    min_psnr_db: float | None = None
    keep_float: tuple[str, ...] = ()                 # op types / aliases left in float (INT8)
    per_channel: bool = True
    io_dtype: str | None = None                      # int8 / uint8 override for INT8 targets
    nncf_preset: str = "mixed"
    layer_report: bool = False
    # Graph rewrites that make the model fit accelerators (converters/fit.py), e.g.
    # {"pixel_shuffle": "dcr", "drop_noop_pads": True}; recorded in the manifest.
    fit: dict[str, Any] = field(default_factory=dict)
    require_full_delegation: bool = False
    # Vendor-compiler targets: the SoC / platform to compile for (RKNN target_platform,
    # LiteRT plugin SoC); None = the target's default (Target.accelerator_config).
    soc: str | None = None
    output: Path | None = None
    overwrite: bool = False                          # replace an existing bundle at `output`
    # auto: exact two-pass parts for models with global ops (where the format runs them),
    # one artifact otherwise; two-pass / blended force it (converters/two_pass.py).
    tiling: str = "auto"
    # Whole photos (RAW files) run tiled through the built artifact(s) and compared with the
    # untiled PyTorch model; below the bars the bundle is refused (edge_isp/whole_photo.py).
    verify_photos: tuple[Path, ...] = ()
    # TFLite targets: onnx2tf (ONNX -> TFLite, guesses layouts from shapes) or litert-torch
    # (PyTorch -> TFLite); auto = onnx2tf unless an activation's shape makes its layout
    # ambiguous at this size and the litert-torch toolchain is installed.
    route: str = "auto"
    # Working-memory budget of one window (MiB): the largest window that fits is chosen
    # (two-pass models; measured, edge_isp/tile_planner.py). Excludes --input-size.
    max_memory_mb: float | None = None


@dataclass
class ConversionResult:
    bundle: _bundle.Bundle
    verification: Verification
    timings_s: dict[str, float]

    @property
    def manifest(self) -> dict[str, Any]:
        return self.bundle.manifest


@dataclass
class _Built:
    """What a format builder hands back: files in the work folder and what it did."""

    main: Path
    extra: list[Path] = field(default_factory=list)
    quantization: dict[str, Any] = field(default_factory=dict)
    layer_errors: list[dict[str, Any]] = field(default_factory=list)
    runtime_options: dict[str, Any] = field(default_factory=dict)
    # Vendor-compiler formats (vela, rknn, litert-aot): the compiler's own placement report
    # and manifest section.
    support: Any = None
    npu: dict[str, Any] | None = None
    # Formats the host runtimes cannot run (rknn): the vendor simulator's output on the
    # held-out inputs (NCHW RGB, like PyTorch's), and what produced it. Verification uses it.
    outputs: Any = None
    outputs_by: str = ""


@dataclass
class _Context:
    opts: ConvertOptions
    target: Target
    onnx_path: Path
    input_name: str
    work: Path
    calib: InputSet
    held_out: InputSet
    accelerator: str | None = None     # resolved --soc / Target.accelerator_config
    source: Any = None                 # litert_torch.TorchSource the ONNX file came from
    fit: Any = None                    # the FitOptions in force (the litert-torch route applies its own forms)
    clock: StageClock | None = None    # records the build's sub-stages (time, peak memory)

    def stage(self, name: str) -> Any:
        return self.clock.stage(name) if self.clock is not None else contextlib.nullcontext()


def _keep_float(ctx: _Context, fmt: str) -> tuple[str, ...]:
    ops: list[str] = []
    for name in ctx.opts.keep_float:
        ops.extend(KEEP_FLOAT_ALIASES.get(name, {}).get(fmt, (name,)))
    return tuple(dict.fromkeys(ops))


def _has_norm(op_types: dict[str, int]) -> bool:
    return any(op in op_types for op in NORM_ONNX_OPS)


def _check_keep_float(ctx: _Context, fmt: str, graph_ops: set[str]) -> None:
    """Every op type named in --keep-float must exist in the graph being quantised."""
    from edge_isp._names import did_you_mean

    ops = {o.upper() for o in graph_ops}
    for name in ctx.opts.keep_float:
        if name == "norm":
            continue  # checked on the ONNX graph before the work (require_keep_float_fits)
        for op in KEEP_FLOAT_ALIASES.get(name, {}).get(fmt, (name,)):
            if op.upper() not in ops:
                raise InputError(f"--keep-float {name}: the {fmt} graph of {ctx.opts.model} has no {op} op"
                                 f"{did_you_mean(op.upper(), sorted(ops))}; its ops are {', '.join(sorted(ops))}")


def _advice(ctx: _Context, op_types: dict[str, int]) -> str:
    """What to try when verification fails: only advice that fits this model and target."""
    tips = []
    if ctx.target.quantized:
        if _has_norm(op_types) and "norm" not in ctx.opts.keep_float:
            tips.append("keep the normalisation layers in float with --keep-float norm")
        tips.append("see which layers lose most with --layer-report")
        if ctx.opts.calib_dir is None:
            tips.append("calibrate on your own RAW files with --calib DIR")
        else:
            tips.append("calibrate on more crops with --calib-samples")
    tips.append("or lower the bar knowingly with --min-psnr")
    return "; ".join(tips)


def _build_onnx(ctx: _Context) -> _Built:
    return _Built(ctx.onnx_path)


# Above this much float32 activation (all 4-D tensors at the converted size), onnx2tf's probe
# run and TF's calibrator cost gigabytes and minutes: PyNET at 448x448 (4.3 GiB) took 12.9 GB and
# 475 s in onnx2tf plus 500 s in TF's calibration here; litert-torch took 2.8 GB and 173 s.
ONNX2TF_ACTIVATION_BUDGET_MIB = 2048


def choose_route(ctx: _Context) -> tuple[str, str]:
    """(route, why) for a TFLite build: the user's --route, or onnx2tf unless its layout guess
    is ambiguous at this size or the graph is too big for it, and litert-torch can take the
    conversion (installed, nothing it lacks)."""
    from edge_isp.converters import litert_torch
    from edge_isp.converters.layout_guard import graph_facts

    route = ctx.opts.route
    litert_torch.check_route(route)
    unsupported = _litert_torch_gaps(ctx)
    if route == "litert-torch" and unsupported:
        raise InputError(f"--route litert-torch cannot take {unsupported}; drop it or use --route onnx2tf")
    if route != "auto":
        return route, "asked (--route)"
    facts = graph_facts(ctx.onnx_path)
    if facts.collisions:
        why = (f"{len(facts.collisions)} activation(s) have as many channels as rows or columns "
               f"(e.g. {facts.collisions[0]})")
    elif facts.activations_mib > ONNX2TF_ACTIVATION_BUDGET_MIB:
        why = (f"{facts.activations_mib / 1024:.1f} GiB of activations at this size: onnx2tf's probe run and "
               f"TF's calibrator hold them all (PyNET at 448x448: 12.9 GB, 16 min)")
    else:
        return "onnx2tf", "no layout ambiguity at this size"
    if unsupported:
        return "onnx2tf", f"{why}; litert-torch cannot take {unsupported}"
    if not litert_torch.available():
        return "onnx2tf", f"{why}; the litert-torch toolchain is not installed ('edge-isp toolchain install litert-torch')"
    return "litert-torch", why


def _litert_torch_gaps(ctx: _Context) -> str:
    """What the litert-torch route does not do (yet) for this conversion; "" = nothing."""
    opts = ctx.opts
    if (opts.io_dtype or ctx.target.io_dtype or "int8") != "int8" and ctx.target.quantized:
        return f"{opts.io_dtype or ctx.target.io_dtype} I/O (its INT8 models take int8)"
    for flag, on in (("--keep-float", bool(opts.keep_float)), ("--layer-report", opts.layer_report)):
        if on:
            return flag
    return ""


# What a float TFLite build stores, on either route.
_FLOAT_QUANTIZATION = {
    "fp32": {"weights": "float32"},
    "fp16": {"weights": "float16", "activations": "float32 (delegates may run fp16)"},
}


def _build_tflite(ctx: _Context) -> _Built:
    from edge_isp.converters import tflite

    route, why = choose_route(ctx) if ctx.target.format == "tflite" else ("onnx2tf", "vendor compilers take it")
    if route == "litert-torch":
        from edge_isp.converters import litert_torch

        if ctx.source is None:
            raise ConversionError("the litert-torch route needs the PyTorch module this graph came from")
        out = ctx.work / "model_litert_torch.tflite"
        precision = ctx.target.precision
        calibration = {ctx.input_name: ctx.calib.data, **(ctx.calib.extra or {})} if ctx.target.quantized else None
        source, fits = litert_torch.apply_fits(ctx.source, ctx.fit)
        float_ops = _fit_float_ops(ctx) if ctx.target.quantized else ()
        with ctx.stage("litert-torch"):
            info = litert_torch.convert(source, out, ctx.work / "litert_torch", precision=precision,
                                        calibration=calibration, per_channel=ctx.opts.per_channel,
                                        float_ops=float_ops)
        info["fit"] = fits
        quantization = _FLOAT_QUANTIZATION.get(precision) or {
            "weights": f"int8 {'per-channel' if ctx.opts.per_channel else 'per-tensor'}",
            "activations": "int8 per-tensor", "io_dtype": "int8", "calibration_samples": int(ctx.calib.data.shape[0]),
            "float_ops": list(float_ops)}
        return _Built(_tflite_fit_pass(ctx, out), quantization={**quantization, "route": {**info, "why": why}},
                      runtime_options={"layout": "NCHW"})   # the program's own interface, not onnx2tf's NHWC
    with ctx.stage("onnx2tf"):
        saved, f32, f16 = tflite.onnx_to_saved_model(ctx.onnx_path, ctx.work / "tf", ctx.input_name, ctx.calib.data)
    onnx2tf = {"route": {"route": "onnx2tf", "why": why}}
    if ctx.target.precision in _FLOAT_QUANTIZATION:
        return _Built(_tflite_fit_pass(ctx, {"fp32": f32, "fp16": f16}[ctx.target.precision]),
                      quantization={**_FLOAT_QUANTIZATION[ctx.target.precision], **onnx2tf})
    io_dtype = ctx.opts.io_dtype or ctx.target.io_dtype
    graph_ops = tflite.op_names(f32)
    _check_keep_float(ctx, "tflite", graph_ops)
    with ctx.stage("calibrate"):
        calibrated = tflite.calibrate(saved, ctx.calib.data, ctx.calib.extra, ctx.input_name)
    keep = tuple(op.upper() for op in _keep_float(ctx, "tflite")) + _fit_float_ops(ctx, graph_ops)
    nodes = tuple(tflite.norm_island_nodes(f32)) if "norm" in ctx.opts.keep_float else ()
    with ctx.stage("quantize"):
        built = tflite.quantize_int8(calibrated, ctx.work / "model_int8.tflite", ctx.calib.data, io_dtype=io_dtype,
                                     per_channel=ctx.opts.per_channel, keep_float_ops=keep, keep_float_nodes=nodes,
                                     layer_report=ctx.opts.layer_report, extra=ctx.calib.extra, names_from=f32,
                                     output_order=_onnx_output_names(ctx.onnx_path))
    return _Built(_tflite_fit_pass(ctx, built.path), quantization={**built.quantization, **onnx2tf},
                  layer_errors=built.layer_errors)


def _tflite_fit_pass(ctx: _Context, path: Path) -> Path:
    """The TFLite-level half of a fit, on either route: resize_as_nearest_conv's nearest
    resizes lose the half-pixel flag both converters set (same numbers, NNAPI API 29). Works on
    a copy: onnx2tf's outputs are cached for other targets."""
    if ctx.fit is None or not ctx.fit.resize_as_nearest_conv:
        return path
    from edge_isp.converters import tflite

    out = ctx.work / f"{path.stem}_fit.tflite"
    tflite.clear_integer_scale_half_pixel(path, out)
    return out


def _fit_float_ops(ctx: _Context, graph_ops: set[str] | None = None) -> tuple[str, ...]:
    """Ops a fit option leaves out of INT8 quantisation (``rsqrt_in_float``): where the graph has
    them (``graph_ops``), or all it names when the graph is not read (ai-edge-quantizer skips
    op types a model lacks)."""
    wanted = ("RSQRT",) if ctx.fit is not None and ctx.fit.rsqrt_in_float else ()
    return tuple(op for op in wanted if graph_ops is None or op in graph_ops)


def _onnx_output_names(onnx_path: Path) -> list[str]:
    from edge_isp._deps import require

    onnx = require("onnx", "reading ONNX outputs")
    return [o.name for o in onnx.load(str(onnx_path), load_external_data=False).graph.output]


def _build_openvino(ctx: _Context) -> _Built:
    from edge_isp.converters import openvino_ir

    xml = ctx.work / "model.xml"
    if ctx.target.quantized:
        _check_keep_float(ctx, "openvino", openvino_ir.op_types(ctx.onnx_path))
        built = openvino_ir.quantize_ir(ctx.onnx_path, xml, ctx.calib.data, preset=ctx.opts.nncf_preset,
                                        keep_float_types=_keep_float(ctx, "openvino"), extra=ctx.calib.extra,
                                        input_name=ctx.input_name)
    else:
        built = openvino_ir.convert_ir(ctx.onnx_path, xml, ctx.target.precision)
    # Verify with f32 compute for every precision: FP16 IR means FP16 weights (as TFLite FP16
    # on the host), INT8 ops run integer anyway, and a bf16-capable CPU would otherwise
    # silently compute in bf16. The figure then measures what the conversion changed.
    return _Built(xml, extra=[xml.with_suffix(".bin")], quantization=built.quantization,
                  runtime_options={"precision_hint": "f32"})


def _build_vela(ctx: _Context) -> _Built:
    """The INT8 TFLite exactly as for cpu-int8 (verified on the host), then compiled by Vela."""
    from edge_isp.converters import vela

    built = _build_tflite(ctx)
    result = vela.compile_vela(built.main, str(ctx.target.accelerator_config), ctx.work / "vela")
    vela_file = ctx.work / "model_vela.tflite"
    shutil.copy2(result.vela_tflite, vela_file)
    result.vela_tflite = vela_file
    report = vela.vela_report(result, ctx.target.name, "model.tflite")
    npu = {**result.to_dict(), "verified_artifact": "model.tflite",
           "placement_summary": report.summary_line()}
    return dataclasses.replace(built, extra=[*built.extra, vela_file], support=report, npu=npu)


def _build_rknn(ctx: _Context) -> _Built:
    """The verified ONNX compiled by rknn-toolkit2 (own env); its simulator output is verified."""
    from edge_isp.converters import rknn

    return rknn.build_for_pipeline(ctx)


def _build_litert_aot(ctx: _Context) -> _Built:
    """The INT8 TFLite (verified on the host), compiled ahead of time by a LiteRT NPU plugin."""
    from edge_isp.converters import litert_aot

    return litert_aot.build_for_pipeline(ctx)


FORMAT_BUILDERS: dict[str, Callable[[_Context], _Built]] = {
    "onnx": _build_onnx,
    "tflite": _build_tflite,
    "openvino": _build_openvino,
    "vela": _build_vela,
    "rknn": _build_rknn,
    "litert-aot": _build_litert_aot,
}
_ARTIFACT_NAMES = {"onnx": "model.onnx", "tflite": "model.tflite", "openvino": "model.xml", "vela": "model.tflite",
                   "rknn": "model.rknn", "litert-aot": "model.tflite"}


def resolve_accelerator(target: Target, soc: str | None) -> str | None:
    """The SoC / platform a vendor-compiler target compiles for (``--soc`` / ``--platform``)."""
    if soc is None:
        return target.accelerator_config
    if not target.accelerator_choices:
        raise InputError(f"--soc/--platform applies to rknn-* and litert-npu-* targets, not {target.name}")
    # Case-insensitive, answered in the target's own spelling (rk3576, SM8750, TENSOR_G4).
    chosen = {c.lower(): c for c in target.accelerator_choices}.get(soc.lower())
    if chosen is None:
        raise InputError(f"{target.name} does not know platform {soc!r}; choose one of "
                         f"{', '.join(target.accelerator_choices)}")
    return chosen


def resolve_input_size(model: str, input_size: tuple[int, int] | None) -> tuple[int, int]:
    """The RAW mosaic (H, W) to convert at, checked against what the model's graph needs."""
    from edge_isp.models import model_info

    info = model_info(model)
    h, w = input_size or info.default_input_size
    step = 2 * info.input_multiple
    if h <= 0 or w <= 0 or h % step or w % step:
        raise InputError(
            f"input size {h}x{w} does not suit {model}: the RAW mosaic's height and width must be "
            f"multiples of {step} (e.g. {max(step, h // step * step)}x{max(step, w // step * step)})"
        )
    if min(h, w) // 2 < info.min_packed_size:
        raise InputError(
            f"input size {h}x{w} is too small for {model}: it needs at least "
            f"{2 * info.min_packed_size} px a side of RAW mosaic"
        )
    return h, w


def _layout_hint(onnx_path: Path, mosaic_hw: tuple[int, int], step: int) -> str:
    """Why onnx2tf may have mistaken the layout at this size, and sizes that avoid it."""
    from edge_isp.converters.layout_guard import find_collisions, suggest_sizes

    collisions = find_collisions(onnx_path)
    if not collisions:
        return ""
    sizes = [f"{h}x{w}" for h, w in suggest_sizes(onnx_path, step)]
    return (
        f"at {mosaic_hw[0]}x{mosaic_hw[1]}, {len(collisions)} activations have as many channels as rows "
        f"or columns (e.g. {collisions[0]}), which can make onnx2tf mistake the layout; "
        f"try --input-size {' or '.join(sizes) if sizes else 'a non-square size'}"
    )


def with_default_model(opts: ConvertOptions) -> ConvertOptions:
    """Fill in the packaged default model (name, options, trained weights) when none is given,
    and resolve ``--weights default`` to the packaged file (its model only)."""
    spec = DEFAULT
    if opts.weights is not None and str(opts.weights) == PACKAGED_WEIGHTS:
        return dataclasses.replace(opts, model=spec.name, model_options={**spec.options, **opts.model_options},
                                   weights=packaged_weights_for(opts.model, spec))
    if opts.model is not None:
        return opts
    return dataclasses.replace(opts, model=spec.name, model_options={**spec.options, **opts.model_options},
                               weights=opts.weights or default_weights_path(spec))


def weights_kind(weights: Path | None) -> str:
    """What a bundle's weights are: 'packaged' (the shipped trained default), 'file', 'random'."""
    if weights is None:
        return "random"
    try:
        packaged = default_weights_path(DEFAULT).resolve()
    except InputError:
        packaged = None
    return "packaged" if packaged is not None and Path(weights).resolve() == packaged else "file"


RANDOM_WEIGHTS_WARNING = ("random weights (no --weights): the PSNR vs PyTorch, size, speed and delegation figures "
                          "hold, the pictures do not; pass --weights PATH (or --weights default for the packaged "
                          "model)")


def photo_bars(target: Target) -> dict[str, float]:
    """Whole-photo bars of ``convert --verify-photo``: verify's defaults for float targets; for
    quantised ones the target's own crop bar (INT8 cannot reach 50 dB vs float PyTorch) and no
    seam bar: the INT8 error is textured by the picture, so its seam score swings with the
    content (0.86-1.57 measured at boundaries shifted off the real ones on the chart)."""
    from edge_isp.whole_photo import default_bars

    bars: dict[str, Any] = dict(default_bars())
    if target.quantized:
        bars.update(min_psnr_db=target.min_psnr_db, min_worst_tile_psnr_db=target.min_psnr_db, max_seam_score=None)
    return bars


def _check_verify_photos(opts: ConvertOptions, target: Target) -> None:
    """Before any work: the photos exist and the target's artifact runs on the host."""
    if not opts.verify_photos:
        return
    if target.format == "rknn":
        raise InputError(f"--verify-photo needs an artifact the host runs; {target.name} runs on the board only")
    for photo in opts.verify_photos:
        if not Path(photo).is_file():
            raise InputError(f"--verify-photo {photo}: no such file; pass a RAW photo (DNG, CR2, NEF, ...)")


def _verify_photos(opts: ConvertOptions, target: Target, model: Any, runner: Any, stats_runner: Any, split: Any,
                   mosaic_hw: tuple[int, int]) -> list[Any]:
    """Each photo through the built artifact(s), tiled as ``process`` would, vs untiled PyTorch."""
    from edge_isp.errors import VerificationError
    from edge_isp.runtimes.bundle_runner import LoadedRunner
    from edge_isp.whole_photo import verify_photo

    subject = LoadedRunner(runner, model=str(opts.model), target=target.name, mosaic_hw=mosaic_hw, threads=None,
                           load_time_s=0.0, precision=target.precision)
    if split is not None:
        subject.split = (stats_runner, split.spec)
    bars = photo_bars(target)
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


def _tiling_section(mode: str, model: Any, split: Any, stats_support: Any, fmt: str) -> dict[str, Any]:
    """The manifest's ``tiling``: how runners must tile this bundle's artifact."""
    from edge_isp.models.global_context import global_modules

    if split is None:
        n = len(global_modules(model))
        why = (f"; with {n} global ops a two-pass bundle runs its statistics part {n} times per window, so it is "
               f"not the default" if n > two_pass.MAX_AUTO_GLOBAL_OPS else "")
        return {"mode": "blended", "exact": not n,
                **({} if not n else {"note": f"the model reads the whole image; blended tiles differ from the untiled "
                                             f"model (convert with --tiling two-pass where supported){why}"})}
    return {"mode": "two-pass", "exact": True, **split.spec.to_dict(), "window_note": split.note,
            "stats_artifact": {"files": list(two_pass.stats_files(fmt)), "source_onnx": "source_stats.onnx",
                               **({"support_check": stats_support.to_dict(include_ops=False)} if stats_support else {})}}


def default_output(opts: ConvertOptions) -> Path:
    return Path("edge-isp-out") / f"{opts.model}_{opts.target}"


def _work_folder() -> Path:
    try:
        return Path(tempfile.mkdtemp(prefix="edge-isp-convert-"))
    except OSError as exc:
        raise OutputError(f"cannot create a work folder in {tempfile.gettempdir()} ({exc.strerror}); "
                          f"set TMPDIR to a writable folder with a few GB free") from exc


def convert(opts: ConvertOptions, progress: Callable[[str], None] = lambda stage: None) -> ConversionResult:
    """Convert, verify and bundle; raises an EdgeIspError on any failure, writing nothing."""
    from edge_isp._deps import require
    from edge_isp.models import check_options, count_params, create, model_info
    from edge_isp.models.weights import load_weights, weights_sha256

    target = get_target(opts.target)
    opts = with_default_model(opts)
    info = model_info(opts.model)
    check_options(opts.model, opts.model_options)
    fit = FitOptions.parse({**target.fit, **opts.fit})
    require_supported(fit, target.format)
    accelerator = resolve_accelerator(target, opts.soc)
    mosaic_hw = resolve_input_size(opts.model, opts.input_size)
    packed_hw = (mosaic_hw[0] // 2, mosaic_hw[1] // 2)
    if opts.calib_samples < 1 or opts.verify_samples < 1:
        raise InputError("--calib-samples and --verify-samples must be at least 1")
    _check_verify_photos(opts, target)
    from edge_isp.converters.litert_torch import check_route

    check_route(opts.route)           # before any work (choose_route decides later, per graph)
    if opts.max_memory_mb is not None and opts.input_size is not None:
        from edge_isp.errors import UsageError

        raise UsageError("give --input-size or --max-memory, not both: the budget chooses the window size")
    if opts.keep_float and not target.quantized:
        raise InputError(f"--keep-float applies to INT8 targets; {target.name} is {target.precision}: drop the flag")
    torch = require("torch", "conversion")
    out_dir = Path(opts.output) if opts.output else default_output(opts)
    # Before any work: never replace what is not a bundle; a bundle only with --overwrite.
    guard_folder(out_dir, kind="bundle", is_ours=_bundle.is_bundle_dir, overwrite=opts.overwrite)
    clock = StageClock()

    def stage(name: str) -> Callable[[], None]:
        progress(name)
        return clock.begin(name)

    done = stage("model")
    model = create(opts.model, seed=opts.seed, **opts.model_options)
    if opts.weights:
        load_weights(model, opts.weights)
    tiling = two_pass.choose_tiling(opts.tiling, model, target)
    if opts.max_memory_mb is not None and tiling != "two-pass":
        raise InputError("--max-memory plans the window of two-pass bundles; this conversion makes one artifact "
                         "(blended): choose its size with --input-size")
    split = None
    if tiling == "two-pass":
        # The parts take a fixed window aligned to the global ops' strides (see two_pass.setup).
        split = two_pass.setup(model, info.input_multiple, opts.input_size, opts.max_memory_mb)
        packed_hw = split.spec.window
        mosaic_hw = (2 * packed_hw[0], 2 * packed_hw[1])
    done()

    done = stage("inputs")
    calib, held_out = make_input_sets(packed_hw, opts.calib_dir, opts.calib_samples, opts.verify_samples,
                                     opts.seed, opts.raw_layout)
    if split is not None:
        calib, held_out = two_pass.with_statistics(model, split, calib), two_pass.with_statistics(model, split, held_out)
    with torch.no_grad():
        reference = model(torch.from_numpy(held_out.data)).numpy()
    done()

    work = _work_folder()
    try:
        done = stage("onnx")
        from edge_isp.converters.litert_torch import source_of

        sources: dict[Path, Any] = {}     # each ONNX file's PyTorch program (the litert-torch route)

        def export(module: Any, shape: Any, path: Path, **kwargs: Any) -> Any:
            sources[Path(path)] = source_of(module, shape, **kwargs)
            return fitted_export(fit)(module, shape, path, **kwargs)

        if split is None:
            exported = export(model, (1, 4, *packed_hw), work / "model.onnx")
        else:
            stats_exported, exported = two_pass.export_parts(export, model, split, work)
        if "norm" in opts.keep_float and not _has_norm(exported.op_types):
            raise InputError(f"--keep-float norm: {opts.model} has no normalisation layers (none of "
                             f"{', '.join(NORM_ONNX_OPS)} in its graph); drop the flag")
        done()

        done = stage(target.format)
        ctx = _Context(opts, target, exported.path, exported.input_name, work, calib, held_out, accelerator,
                       sources.get(Path(exported.path)), fit, clock)
        built = FORMAT_BUILDERS[target.format](ctx)
        if split is not None:
            (work / "stats").mkdir()
            stats_ctx = _Context(opts, target, stats_exported.path, stats_exported.input_name, work / "stats",
                                 calib, held_out, accelerator, sources.get(Path(stats_exported.path)), fit, clock)
            stats_built = FORMAT_BUILDERS[target.format](stats_ctx)
        done()

        done = stage("verify")
        from edge_isp.runtimes import open_runner

        threshold = opts.min_psnr_db if opts.min_psnr_db is not None else target.min_psnr_db
        parts_check = None
        if built.outputs is not None:
            # The host cannot run this format: the vendor's simulator ran the held-out crops.
            runner = open_runner("onnxruntime", exported.path)  # for the I/O description only
            verification = compare_outputs(reference, built.outputs, threshold, built.outputs_by or target.runtime)
        elif split is not None:
            # What a user gets: both artifacts, two passes, against the untiled model.
            runner = open_runner(target.runtime, built.main, **built.runtime_options)
            stats_runner = open_runner(target.runtime, stats_built.main, **stats_built.runtime_options)
            output, found = two_pass.run_held_out(stats_runner, runner, split.spec, held_out)
            verification = compare_outputs(reference, output, threshold, f"{target.runtime} (two-pass)")
            parts_check = two_pass.check_parts(runner, held_out, reference, found)
        else:
            runner = open_runner(target.runtime, built.main, **built.runtime_options)
            output = runner.run(held_out.data)
            verification = compare_outputs(reference, output, threshold, target.runtime)
        done()
        layout = _layout_hint(exported.path, mosaic_hw, 2 * info.input_multiple) if target.format in ("tflite", "vela") else ""
        require_passed(verification, f"the {target.name} artifact", hint=layout or _advice(ctx, exported.op_types))

        photo_checks = []
        if opts.verify_photos:
            done = stage("verify-photo")
            photo_checks = _verify_photos(opts, target, model, runner, stats_runner if split is not None else None,
                                          split, mosaic_hw)
            done()

        done = stage("check")
        from edge_isp.converters.check import check_artifact, require_delegation

        if built.support is not None:
            # A vendor compiler's placement, next to the static table's verdict for the same ops.
            from edge_isp.converters.check import compare_with_table, static_report
            from edge_isp.converters.support import load_table

            support = built.support
            static_file = exported.path if load_table(target.support_table).format == "onnx" else built.main
            compare_with_table(support, static_report(static_file, target.name))
        else:
            support = check_artifact(built.main, target.name)
        stats_support = check_artifact(stats_built.main, target.name) if split is not None else None
        if opts.require_full_delegation:
            require_delegation(support, "full")  # raises before anything is written
            if stats_support is not None:
                require_delegation(stats_support, "full")
        done()

        done = stage("bundle")
        artifact_name = _ARTIFACT_NAMES[target.format]
        manifest = {
            "schema": _bundle.SCHEMA,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "model": {
                "name": opts.model, "options": {**info.default_options, **opts.model_options},
                "params": count_params(model), "weights": str(opts.weights) if opts.weights else f"init(seed={opts.seed})",
                "weights_kind": weights_kind(opts.weights),
                "weights_sha256": weights_sha256(model),
            },
            "target": {
                "name": target.name, "format": target.format, "precision": target.precision,
                "runtime": target.runtime, "support_table": target.support_table,
                "delegate": target.delegate, "default_api_level": target.default_api_level,
                **({"accelerator_config": accelerator} if accelerator else {}),
            },
            "artifact": {"file": artifact_name, "extra_files": [p.name for p in built.extra],
                         "runtime_options": built.runtime_options},
            "input": {**runner.input_spec.to_dict(), "mosaic_hw": list(mosaic_hw),
                      "packing": "B,G(red row),R,G(blue row) of the mosaic, each (raw-black)/(white-black) in [0,1]"},
            "output": {**runner.output_spec.to_dict(), "range": "RGB [0,1] (clip)"},
            "onnx": {"opset": exported.opset, "op_types": exported.op_types},
            "fit": fit.to_dict(),
            "support_check": support.to_dict(include_ops=False),
            **({"npu": built.npu} if built.npu is not None else {}),
            "quantization": built.quantization,
            "layer_errors": built.layer_errors,
            "calibration": calib.description if target.quantized else None,
            "verification": {**verification.to_dict(), "inputs": held_out.description,
                             **({"parts": parts_check.to_dict()} if parts_check is not None else {})},
            "tiling": _tiling_section(tiling, model, split, stats_support, target.format),
            **({"photo_verification": [r.to_dict() for r in photo_checks]} if photo_checks else {}),
            "tools": _bundle.tool_versions(),
        }
        replace = _bundle.is_bundle_dir if opts.overwrite else (lambda path: False)
        with atomic_dir(out_dir, may_replace=replace) as tmp:
            shutil.copy2(built.main, tmp / artifact_name)
            for extra in built.extra:
                shutil.copy2(extra, tmp / extra.name)
            if target.format != "onnx":
                shutil.copy2(exported.path, tmp / "source.onnx")
            files = [artifact_name, *[p.name for p in built.extra]]
            if split is not None:
                stats_names = two_pass.stats_files(target.format)
                for src, name in zip([stats_built.main, *stats_built.extra], stats_names):
                    shutil.copy2(src, tmp / name)
                shutil.copy2(stats_exported.path, tmp / "source_stats.onnx")
                files.extend(stats_names)
            manifest["artifact"].update({
                "sha256": _bundle.file_sha256(tmp / artifact_name),
                "files_sha256": {f: _bundle.file_sha256(tmp / f) for f in files},
                "size_bytes": sum((tmp / f).stat().st_size for f in files),
                "source_onnx": "source.onnx" if target.format != "onnx" else artifact_name,
            })
            done()
            total_s, peak_mb = clock.total()
            timings = {**clock.seconds, "total": total_s}
            manifest["conversion"] = {"time_s": total_s, "stages_s": timings, "peak_rss_mb": peak_mb,
                                      "stages_peak_rss_mb": dict(clock.peak_mb)}
            _bundle.write_manifest(tmp, manifest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ConversionResult(_bundle.load_bundle(out_dir), verification, timings)

