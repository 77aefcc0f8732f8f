"""PyTorch -> TFLite through LiteRT-Torch: the route that does not guess layouts.

onnx2tf turns an NCHW ONNX graph into NHWC TFLite by *guessing* from tensor shapes which
axis is the channel axis; when an activation has as many channels as rows or columns it
can guess wrong and silently build another model (``converters.layout_guard``). LiteRT-Torch
lowers the PyTorch program itself (torch.export -> StableHLO -> TFLite) and keeps the
program's own NCHW interface (the bundle records ``layout: NCHW`` for the runner), so any
input size converts as the model computes it.

It runs in its own environment (``edge-isp toolchain install litert-torch``): the program
is exported here with ``torch.export`` and converted there; float16 weights and full-integer
INT8 (calibrated on the pipeline's own RAW crops) are made there by ai-edge-quantizer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_isp import toolchains
from edge_isp._deps import require
# The program a route from PyTorch converts (re-exported: callers build it with source_of).
from edge_isp.converters.stages import TorchSource as TorchSource
from edge_isp.converters.stages import source_of as source_of
from edge_isp.errors import ConversionError

CONVERT_TIMEOUT_S = 1800.0


def _named(source: TorchSource) -> Any:
    """``source.module`` (positional inputs, a tensor or tuple out) as a module taking keyword
    inputs and returning a dict: LiteRT-Torch names the TFLite signature's inputs and outputs
    after them (the names the runners and the two-pass driver look up)."""
    torch = require("torch", "the litert-torch route")

    class Named(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            module = source.module
            self.inner = module.traceable() if hasattr(module, "traceable") else module

        def forward(self, **kw: Any) -> dict[str, Any]:
            y = self.inner(*[kw[n] for n in source.inputs])
            return dict(zip(source.outputs, y if isinstance(y, (tuple, list)) else (y,)))

    return Named().eval()


def apply_fits(source: TorchSource, fit: Any) -> tuple[TorchSource, dict[str, Any]]:
    """The fit options that have a PyTorch-level form, applied to a copy of the program (the
    ONNX rewrites of ``converters.fit`` never see this route). Returns the source and what
    was applied / left out, for the manifest."""
    import copy

    applied: list[str] = []
    module = source.module
    if fit is not None and fit.reflect_pad_as_slices:
        module = copy.deepcopy(module)
        if _reflect_pads_as_slices(module):
            applied.append("reflect_pad_as_slices")
    # F.interpolate forms: one wrapper with every rule (stacked patches would hide each other).
    rules = []
    if fit is not None and fit.resize_as_nearest_conv:
        rules.append((_bilinear_upsampling_2x, lambda args, kw: _bilinear2x_as_nearest_conv(_interpolation(args, kw).x)))
        applied.append("resize_as_nearest_conv")
    if fit is not None and fit.resize_align_corners_as_gather:
        rules.append((_align_corners_bilinear, _bilinear_align_corners_as_gather))
        applied.append("resize_align_corners_as_gather")
    if rules:
        module = _with_interpolate(module, rules)
    wanted = {k for k, v in (fit.to_dict() if fit is not None else {}).items() if v not in (False, "crd")}
    # Fits that are not graph rewrites here: the quantiser takes them (rsqrt_in_float).
    by_quantiser = {"rsqrt_in_float"} & wanted
    return (TorchSource(module, source.inputs, source.outputs),
            {"applied": applied + sorted(by_quantiser),
             "not_on_this_route": sorted(wanted - set(applied) - by_quantiser - {"reflect_pad_as_slices"})})


def _row(x: Any, dim: int, i: int) -> Any:
    """Row/column ``i`` of ``x`` along ``dim``, kept as a dimension. A step of 2 (still one
    element) lowers to STRIDED_SLICE (NNAPI API 28) instead of SLICE (API 29)."""
    index = [slice(None)] * x.dim()
    index[dim] = slice(i, i + 1, 2)
    return x[tuple(index)]


def _bilinear2x_as_nearest_conv(x: Any) -> Any:
    """Half-pixel bilinear 2x as nearest 2x + edge replication + a fixed 3x3 depthwise filter
    (the form of ``converters.fit``'s resize_as_nearest_conv, same numbers)."""
    torch = require("torch", "the litert-torch route")
    f = torch.nn.functional
    up = f.interpolate(x, scale_factor=2.0, mode="nearest")
    for dim in (2, 3):
        up = torch.cat([_row(up, dim, 0), up, _row(up, dim, up.shape[dim] - 1)], dim=dim)
    # The outer product of fit's taps, from factory ops (a torch.tensor literal is not exportable here).
    from edge_isp.converters.fit_nodes import BILINEAR_ON_NEAREST as taps

    c = x.shape[1]
    rows = [torch.cat([torch.full((c, 1, 1, 1), a * b, dtype=x.dtype) for b in taps], dim=3) for a in taps]
    return f.conv2d(up, torch.cat(rows, dim=2), groups=c)


@dataclass(frozen=True)
class _Interpolation:
    """The arguments of one ``F.interpolate`` call, however they were passed."""

    x: Any
    size: Any
    scale: Any
    mode: str
    align_corners: bool | None

    @property
    def image(self) -> bool:
        return getattr(self.x, "dim", lambda: 0)() == 4

    def out_hw(self) -> tuple[int, int]:
        h, w = self.x.shape[2:]
        if self.size is not None:
            return (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)
        sh, sw = (self.scale, self.scale) if isinstance(self.scale, (int, float)) else tuple(self.scale)
        return int(h * sh), int(w * sw)


def _interpolation(args: tuple[Any, ...], kw: dict[str, Any]) -> _Interpolation:
    def bind(input: Any, size: Any = None, scale_factor: Any = None, mode: str = "nearest",  # noqa: A002
             align_corners: bool | None = None, *_: Any, **__: Any) -> _Interpolation:
        return _Interpolation(input, size, scale_factor, mode, align_corners)   # F.interpolate's order

    return bind(*args, **kw)


def _bilinear_upsampling_2x(args: tuple[Any, ...], kw: dict[str, Any]) -> bool:
    call = _interpolation(args, kw)
    if call.mode != "bilinear" or call.align_corners or not call.image or min(call.x.shape[2:]) < 2:
        return False
    if call.size is not None:
        return call.out_hw() == (2 * call.x.shape[2], 2 * call.x.shape[3])
    return call.scale in (2, 2.0, (2, 2), (2.0, 2.0))     # exactly 2: another scale maps coordinates otherwise


def _align_corners_bilinear(args: tuple[Any, ...], kw: dict[str, Any]) -> bool:
    call = _interpolation(args, kw)
    return call.mode == "bilinear" and bool(call.align_corners) and call.image


def _bilinear_align_corners_as_gather(args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
    """Bilinear align_corners=True as, per axis, two lookups of the neighbouring rows weighted by
    constant per-row factors (the numbers of ``converters.fit``'s resize_align_corners_as_gather).
    The lookups are ``F.embedding`` on the axis moved to the front: litert-torch lowers it to
    EMBEDDING_LOOKUP (NNAPI API 27, float32), where index_select becomes GATHER_ND (no NNAPI)."""
    torch = require("torch", "the litert-torch route")
    f = torch.nn.functional
    from edge_isp.converters.fit_nodes import align_corners_taps

    call = _interpolation(args, kw)
    x, out = call.x, call.out_hw()
    for dim, n, m in ((2, x.shape[2], out[0]), (3, x.shape[3], out[1])):
        if n == m:
            continue
        i0, i1, w0, w1 = align_corners_taps(int(n), int(m))
        front = x.movedim(dim, 0)
        rows = front.reshape(int(n), -1)
        g0 = f.embedding(torch.as_tensor(i0.astype("int64")), rows)
        g1 = f.embedding(torch.as_tensor(i1.astype("int64")), rows)
        mixed = g0 * torch.as_tensor(w0).to(x.dtype)[:, None] + g1 * torch.as_tensor(w1).to(x.dtype)[:, None]
        x = mixed.reshape(int(m), *front.shape[1:]).movedim(0, dim)
    return x


def _with_interpolate(inner: Any, rules: list[tuple[Any, Any]]) -> Any:
    """``inner`` wrapped so each of its calls to ``F.interpolate`` runs as the ``replacement(args,
    kwargs)`` of the first rule whose ``matches(args, kwargs)`` is true, while it runs (and so
    while torch.export traces it); other calls run as before."""
    torch = require("torch", "the litert-torch route")
    from unittest import mock

    f = torch.nn.functional
    plain = f.interpolate

    def interpolate(*args: Any, **kw: Any) -> Any:
        for matches, replacement in rules:
            if matches(args, kw):
                return replacement(args, kw)
        return plain(*args, **kw)

    class Wrapped(torch.nn.Module):
        def __init__(self, module: Any) -> None:
            super().__init__()
            self.inner = module

        def forward(self, *args: Any) -> Any:
            with mock.patch.object(f, "interpolate", interpolate):
                return self.inner(*args)

        def traceable(self) -> Any:     # a two-pass statistics part keeps its traceable form
            inner = self.inner.traceable() if hasattr(self.inner, "traceable") else self.inner
            return Wrapped(inner)

    return Wrapped(inner).eval()


def _reflect_pads_as_slices(module: Any) -> int:
    """Every Conv2d with reflect padding becomes one-column/row slices + concatenation around
    an unpadded conv: the same numbers, and no MIRROR_PAD (NNAPI feature level 7)."""
    torch = require("torch", "the litert-torch route")
    nn = torch.nn

    class SlicePadConv(nn.Module):
        def __init__(self, conv: Any) -> None:
            super().__init__()
            self.ph, self.pw = conv.padding
            conv.padding, conv.padding_mode = (0, 0), "zeros"
            conv._reversed_padding_repeated_twice = [0, 0, 0, 0]   # what padding_mode reads
            self.conv = conv

        def forward(self, x: Any) -> Any:
            return self.conv(_mirror(_mirror(x, self.pw, 3), self.ph, 2))

    def _mirror(x: Any, p: int, dim: int) -> Any:
        if not p:
            return x
        n = x.shape[dim]
        before = [_row(x, dim, i) for i in range(p, 0, -1)]
        after = [_row(x, dim, n - 1 - i) for i in range(1, p + 1)]
        return torch.cat([*before, x, *after], dim=dim)

    count = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d) and child.padding_mode == "reflect" and isinstance(child.padding, tuple):
                setattr(parent, name, SlicePadConv(child))
                count += 1
    return count


def convert(source: TorchSource, out_path: Path, work: Path, precision: str = "fp32",
            calibration: Mapping[str, Any] | None = None, per_channel: bool = True,
            float_ops: Sequence[str] = ()) -> dict[str, Any]:
    """``source`` as a TFLite model at ``out_path`` (fp32, fp16 weights, or full-integer INT8
    calibrated on ``calibration``: input name -> (N, ...) NCHW arrays; ``float_ops``: TFLite op
    types INT8 leaves in float); returns what the toolchain said."""
    torch = require("torch", "the litert-torch route")
    work.mkdir(parents=True, exist_ok=True)
    program = work / "program.pt2"
    samples = {n: torch.zeros(*s) for n, s in source.inputs.items()}
    try:
        with torch.no_grad():
            exported = torch.export.export(_named(source), (), samples)
        torch.export.save(exported, str(program))
    except Exception as exc:  # torch.export raises many types for untraceable code
        raise ConversionError(f"torch.export could not trace the model for litert-torch: "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from exc
    request: dict[str, Any] = {"op": "convert", "program": str(program),
                               "inputs": {n: list(s) for n, s in source.inputs.items()},
                               "output": str(out_path), "precision": precision, "per_channel": per_channel,
                               "float_ops": list(float_ops)}
    if precision == "int8":
        np = require("numpy", "the litert-torch route")
        if calibration is None or set(calibration) != set(source.inputs):
            raise ConversionError(f"INT8 through litert-torch needs calibration data for every input "
                                  f"({', '.join(source.inputs)})")
        request["calibration"] = str(work / "calibration.npz")
        np.savez(request["calibration"], **{n: np.asarray(calibration[n], np.float32) for n in source.inputs})
    resp = toolchains.run("litert-torch", request, timeout=CONVERT_TIMEOUT_S)
    if not Path(out_path).is_file():
        raise ConversionError(f"litert-torch reported success but wrote no {out_path}")
    return {"route": "litert-torch", "version": resp.get("version"), "seconds": resp.get("seconds"),
            **({"quantizer": f"ai-edge-quantizer {resp['quantizer_version']}"} if resp.get("quantizer_version") else {})}


def available() -> bool:
    return toolchains.status("litert-torch").installed


# ----------------------------------------------------------------------------- the route entry

def gaps(ctx: Any) -> str:
    """What this route does not do (yet) for ``ctx``'s conversion; "" = nothing."""
    opts = ctx.opts
    if (opts.io_dtype or ctx.target.io_dtype or "int8") != "int8" and ctx.target.quantized:
        return f"{opts.io_dtype or ctx.target.io_dtype} I/O (its INT8 models take int8)"
    for flag, on in (("--keep-float", bool(opts.keep_float)), ("--layer-report", opts.layer_report)):
        if on:
            return flag
    return ""


def build(ctx: Any, why: str) -> Any:
    """The ``litert-torch`` entry of artifact_formats.TFLITE_ROUTES: ``ctx.source`` (the PyTorch
    program the ONNX graph came from) as a TFLite file of the target's precision."""
    from edge_isp.converters.stages import BuiltArtifact
    from edge_isp.converters.tflite_build import FLOAT_QUANTIZATION

    if ctx.source is None:
        raise ConversionError("the litert-torch route needs the PyTorch module this graph came from")
    out = ctx.work / "model_litert_torch.tflite"
    precision = ctx.target.precision
    calibration = {ctx.input_name: ctx.calib.data, **(ctx.calib.extra or {})} if ctx.target.quantized else None
    source, fits = apply_fits(ctx.source, ctx.fit)
    float_ops = ctx.fit_float_ops() if ctx.target.quantized else ()
    with ctx.stage("litert-torch"):
        info = convert(source, out, ctx.work / "litert_torch", precision=precision, calibration=calibration,
                       per_channel=ctx.opts.per_channel, float_ops=float_ops)
    info["fit"] = fits
    quantization = FLOAT_QUANTIZATION.get(precision) or {
        "weights": f"int8 {'per-channel' if ctx.opts.per_channel else 'per-tensor'}",
        "activations": "int8 per-tensor", "io_dtype": "int8", "calibration_samples": int(ctx.calib.data.shape[0]),
        "float_ops": list(float_ops)}
    return BuiltArtifact(out, quantization={**quantization, "route": {**info, "why": why}},
                         runtime_options={"layout": "NCHW"})   # the program's own interface, not onnx2tf's NHWC


__all__ = ["CONVERT_TIMEOUT_S", "TorchSource", "apply_fits", "available", "build", "convert", "gaps", "source_of"]
