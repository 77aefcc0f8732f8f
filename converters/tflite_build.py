"""The ``tflite`` format: pick a route (artifact_formats.TFLITE_ROUTES), build through it,
then apply the TFLite-level half of the fits. Vela and LiteRT AOT build their INT8 TFLite
here too."""

from __future__ import annotations

from pathlib import Path

from edge_isp.converters.artifact_formats import (
    DEFAULT_ROUTE,
    TFLITE_ROUTES,
    check_route,
    fallback_routes,
    route_module,
)
from edge_isp.converters.stages import BuildContext, BuiltArtifact
from edge_isp.errors import InputError

# Above this much float32 activation (all 4-D tensors at the converted size), onnx2tf's probe
# run and TF's calibrator cost gigabytes and minutes: PyNET at 448x448 (4.3 GiB) took 12.9 GB and
# 475 s in onnx2tf plus 500 s in TF's calibration here; litert-torch took 2.8 GB and 173 s.
ONNX2TF_ACTIVATION_BUDGET_MIB = 2048


def choose_route(ctx: BuildContext) -> tuple[str, str]:
    """(route, why) for a TFLite build: the user's --route, or onnx2tf unless its layout guess
    is ambiguous at this size or the graph is too big for it and a fallback route (litert-torch)
    can take the conversion (installed, nothing it lacks)."""
    from edge_isp.converters.layout_guard import graph_facts

    route = ctx.opts.route
    check_route(route)
    if route != "auto":
        gaps = route_module(route).gaps(ctx)
        if gaps:
            raise InputError(f"--route {route} cannot take {gaps}; drop it or use --route {DEFAULT_ROUTE}")
        return route, "asked (--route)"
    facts = graph_facts(ctx.onnx_path)
    if facts.collisions:
        why = (f"{len(facts.collisions)} activation(s) have as many channels as rows or columns "
               f"(e.g. {facts.collisions[0]})")
    elif facts.activations_mib > ONNX2TF_ACTIVATION_BUDGET_MIB:
        why = (f"{facts.activations_mib / 1024:.1f} GiB of activations at this size: onnx2tf's probe run and "
               f"TF's calibrator hold them all (PyNET at 448x448: 12.9 GB, 16 min)")
    else:
        return DEFAULT_ROUTE, "no layout ambiguity at this size"
    refusals = []
    for name in fallback_routes():
        module = route_module(name)
        gaps = module.gaps(ctx)
        if gaps:
            refusals.append(f"{name} cannot take {gaps}")
        elif not module.available():
            refusals.append(f"the {name} toolchain is not installed ('edge-isp toolchain install {name}')")
        else:
            return name, why
    return DEFAULT_ROUTE, "; ".join([why, *refusals])


def build(ctx: BuildContext) -> BuiltArtifact:
    """A TFLite file of ``ctx.target``'s precision, through the chosen route."""
    route, why = choose_route(ctx) if ctx.target.format == "tflite" else (DEFAULT_ROUTE, "vendor compilers take it")
    built = TFLITE_ROUTES[route].load().build(ctx, why)
    built.main = _fit_pass(ctx, built.main)
    return built


def _fit_pass(ctx: BuildContext, path: Path) -> Path:
    """The TFLite-level half of a fit, on either route: resize_as_nearest_conv's nearest
    resizes lose the half-pixel flag both converters set (same numbers, NNAPI API 29). Works on
    a copy: onnx2tf's outputs are cached for other targets."""
    if ctx.fit is None or not ctx.fit.resize_as_nearest_conv:
        return path
    from edge_isp.converters import tflite

    out = ctx.work / f"{path.stem}_fit.tflite"
    tflite.clear_integer_scale_half_pixel(path, out)
    return out


# What a float TFLite build stores, on either route.
FLOAT_QUANTIZATION = {
    "fp32": {"weights": "float32"},
    "fp16": {"weights": "float16", "activations": "float32 (delegates may run fp16)"},
}


__all__ = ["FLOAT_QUANTIZATION", "ONNX2TF_ACTIVATION_BUDGET_MIB", "build", "choose_route"]
