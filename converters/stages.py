"""The types a conversion hands from stage to stage: what the user asked for
(``ConvertOptions``), what a format builder gets (``BuildContext``) and what it gives back
(``BuiltArtifact``).

The pipeline (converters/pipeline.py) and every format module (converters/artifact_formats.py
names them) import these from here, so no format module reaches into the pipeline.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_isp.converters.calibration import DEFAULT_CALIB_SAMPLES, DEFAULT_VERIFY_SAMPLES, InputSet
from edge_isp.converters.onnx_export import INPUT_NAME, OUTPUT_NAME
from edge_isp.converters.targets import Target
from edge_isp.errors import InputError
from edge_isp.stage_clock import StageClock


@dataclass(frozen=True)
class TorchSource:
    """What an ONNX file of the pipeline was exported from: the module, its inputs (name ->
    shape, positional order) and output names, so a route that starts from PyTorch
    (litert-torch) converts the same program and names its signature the same way."""

    module: Any
    inputs: dict[str, tuple[int, ...]]
    outputs: tuple[str, ...]


def source_of(module: Any, input_shape: Sequence[int] | Mapping[str, Sequence[int]],
              output_names: Sequence[str] = (OUTPUT_NAME,)) -> TorchSource:
    named = dict(input_shape) if isinstance(input_shape, Mapping) else {INPUT_NAME: tuple(input_shape)}
    return TorchSource(module, {n: tuple(int(d) for d in s) for n, s in named.items()}, tuple(output_names))



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
    # TFLite targets: a route of artifact_formats.TFLITE_ROUTES, or auto = onnx2tf unless an
    # activation's shape makes its layout ambiguous at this size (or the graph is too big for
    # it) and the litert-torch toolchain is installed.
    route: str = "auto"
    # Working-memory budget of one window (MiB): the largest window that fits is chosen
    # (two-pass models; measured, edge_isp/tile_planner.py). Excludes --input-size.
    max_memory_mb: float | None = None


@dataclass
class BuiltArtifact:
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
class BuildContext:
    """Everything a format builder may read: one ONNX graph (and the PyTorch program it came
    from), the RAW crops to calibrate and verify on, and a folder to work in."""

    opts: ConvertOptions
    target: Target
    onnx_path: Path
    input_name: str
    work: Path
    calib: InputSet
    held_out: InputSet
    accelerator: str | None = None     # resolved --soc / Target.accelerator_config
    source: TorchSource | None = None  # the PyTorch program the ONNX file came from
    fit: Any = None                    # the FitOptions in force (the litert-torch route applies its own forms)
    clock: StageClock | None = None    # records the build's sub-stages (time, peak memory)
    # Inputs of a two-pass part that carry instance-norm statistics: where "--keep-float norm"
    # starts, as the part's norms are arithmetic on them rather than norm ops.
    norm_inputs: tuple[str, ...] = ()

    def stage(self, name: str) -> Any:
        return self.clock.stage(name) if self.clock is not None else contextlib.nullcontext()

    def keep_float_ops(self, fmt: str) -> tuple[str, ...]:
        """--keep-float names as ``fmt``'s op types (aliases such as ``norm`` resolved)."""
        from edge_isp.converters.artifact_formats import get_format

        aliases = get_format(fmt).keep_float_aliases
        ops = [op for name in self.opts.keep_float for op in aliases.get(name, (name,))]
        return tuple(dict.fromkeys(ops))

    def check_keep_float(self, fmt: str, graph_ops: set[str]) -> None:
        """Every op type named in --keep-float must exist in the graph being quantised."""
        from edge_isp.converters.artifact_formats import get_format

        from edge_isp._names import did_you_mean

        aliases = get_format(fmt).keep_float_aliases
        ops = {o.upper() for o in graph_ops}
        for name in self.opts.keep_float:
            if name == "norm":
                continue  # checked on the ONNX graph before the work (the pipeline's export stage)
            for op in aliases.get(name, (name,)):
                if op.upper() not in ops:
                    raise InputError(f"--keep-float {name}: the {fmt} graph of {self.opts.model} has no {op} op"
                                     f"{did_you_mean(op.upper(), sorted(ops))}; its ops are {', '.join(sorted(ops))}")

    def fit_float_ops(self, graph_ops: set[str] | None = None) -> tuple[str, ...]:
        """Ops a fit option leaves out of INT8 quantisation (``rsqrt_in_float``): where the graph
        has them (``graph_ops``), or all it names when the graph is not read (ai-edge-quantizer
        skips op types a model lacks)."""
        wanted = ("RSQRT",) if self.fit is not None and self.fit.rsqrt_in_float else ()
        return tuple(op for op in wanted if graph_ops is None or op in graph_ops)


__all__ = ["BuildContext", "BuiltArtifact", "ConvertOptions", "TorchSource", "source_of"]
