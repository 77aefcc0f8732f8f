"""ONNX -> OpenVINO IR (FP32 / FP16 weights) and INT8 through NNCF post-training quantisation."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp._deps import require
from edge_isp.errors import ConversionError

# NNCF presets: MIXED = symmetric weights + asymmetric activations (keeps image quality on
# ISP nets, measured 47 vs 38 dB); PERFORMANCE = symmetric everywhere (faster on some NPUs).
PRESETS = ("mixed", "performance")
# OpenVINO op types that InstanceNorm becomes; "keep norm float" ignores them in NNCF.
NORM_OP_TYPES = ("MVN",)


@dataclass
class OpenVinoBuild:
    xml: Path
    precision: str
    quantization: dict[str, Any] = field(default_factory=dict)


def read_onnx(onnx_path: Path) -> Any:
    """The ONNX graph as OpenVINO reads it (read once per build: every step below takes it)."""
    ov = require("openvino", "OpenVINO conversion")
    return ov.convert_model(str(onnx_path))


def op_types(model: Any) -> set[str]:
    """The OpenVINO op types of a model read by :func:`read_onnx` (what NNCF's scopes name)."""
    return {op.get_type_name() for op in model.get_ops()}


# Elementwise ops a two-pass part's norm arithmetic is made of: (x - mean) * inv_std * w + b.
_NORM_CHAIN_TYPES = frozenset({"Subtract", "Multiply", "Add", "Divide"})


def statistics_nodes(model: Any, inputs: tuple[str, ...]) -> tuple[str, ...]:
    """Names of the nodes of ``model`` (:func:`read_onnx`) that apply a two-pass part's injected
    norm statistics (``inputs``): the ops reading them and the elementwise chain after, up to
    the next convolution."""
    frontier = [p.output(0) for p in model.get_parameters() if p.get_friendly_name() in inputs]
    found: dict[str, None] = {}
    while frontier:
        for target in frontier.pop().get_target_inputs():
            node = target.get_node()
            if node.get_type_name() in _NORM_CHAIN_TYPES and node.get_friendly_name() not in found:
                found[node.get_friendly_name()] = None
                frontier.extend(node.outputs())
    return tuple(found)


def convert_ir(onnx_path: Path, out_xml: Path, precision: str) -> OpenVinoBuild:
    """FP32 or FP16-weight IR from ONNX (the .bin lands beside the .xml)."""
    ov = require("openvino", "OpenVINO conversion")
    try:
        model = ov.convert_model(str(onnx_path))
        ov.save_model(model, str(out_xml), compress_to_fp16=(precision == "fp16"))
    except Exception as exc:
        raise ConversionError(f"OpenVINO conversion failed: {str(exc).splitlines()[0][:300]}") from exc
    return OpenVinoBuild(out_xml, precision, {"weights": "float16" if precision == "fp16" else "float32"})


def quantize_ir(model: Any, out_xml: Path, calib_nchw: np.ndarray, preset: str = "mixed",
                keep_float_types: tuple[str, ...] = (), keep_float_names: tuple[str, ...] = (),
                fast_bias_correction: bool = True, extra: dict[str, np.ndarray] | None = None,
                input_name: str = "bayer") -> OpenVinoBuild:
    """INT8 IR of ``model`` (:func:`read_onnx`) with NNCF post-training quantisation on
    ``calib_nchw`` (and the model's other inputs by name in ``extra``, e.g. a two-pass part's
    statistics)."""
    ov = require("openvino", "OpenVINO conversion")
    nncf = require("nncf", "OpenVINO INT8 quantisation")
    if preset not in PRESETS:
        raise ConversionError(f"unknown NNCF preset {preset!r}; use one of {', '.join(PRESETS)}")
    if extra:
        dataset = nncf.Dataset([{input_name: calib_nchw[i:i + 1].astype(np.float32),
                                 **{n: v[i:i + 1].astype(np.float32) for n, v in extra.items()}}
                                for i in range(len(calib_nchw))])
    else:
        dataset = nncf.Dataset([s[None].astype(np.float32) for s in calib_nchw])
    ignored = None
    if keep_float_types or keep_float_names:
        ignored = nncf.IgnoredScope(types=list(keep_float_types), names=list(keep_float_names),
                                    validate=False)
    try:
        # NNCF draws progress bars on stdout; keep stdout clean for --json output.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            quantized = nncf.quantize(
                model, dataset,
                preset=nncf.QuantizationPreset.MIXED if preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE,
                subset_size=len(calib_nchw), fast_bias_correction=fast_bias_correction,
                ignored_scope=ignored,
            )
        ov.save_model(quantized, str(out_xml), compress_to_fp16=False)
    except Exception as exc:
        raise ConversionError(f"NNCF quantisation failed: {str(exc).splitlines()[0][:300]}") from exc
    return OpenVinoBuild(out_xml, "int8", {
        "scheme": f"nncf-ptq-{preset}", "weights": "int8 per-channel symmetric",
        "activations": "int8 asymmetric" if preset == "mixed" else "int8 symmetric",
        "float_op_types": list(keep_float_types), "float_nodes": list(keep_float_names),
        "calibration_samples": int(calib_nchw.shape[0]),
    })


def build(ctx: Any) -> Any:
    """The ``openvino`` format entry: ``ctx``'s ONNX graph as IR of the target's precision
    (INT8: NNCF post-training quantisation on ``ctx.calib``)."""
    from edge_isp.converters.stages import BuiltArtifact

    xml = ctx.work / "model.xml"
    if ctx.target.quantized:
        model = read_onnx(ctx.onnx_path)
        ctx.check_keep_float("openvino", op_types(model))
        norm_nodes = statistics_nodes(model, ctx.norm_inputs) if "norm" in ctx.opts.keep_float else ()
        built = quantize_ir(model, xml, ctx.calib.data, preset=ctx.opts.nncf_preset,
                            keep_float_types=ctx.keep_float_ops("openvino"), keep_float_names=norm_nodes,
                            extra=ctx.calib.extra, input_name=ctx.input_name)
    else:
        built = convert_ir(ctx.onnx_path, xml, ctx.target.precision)
    # Verify with f32 compute for every precision: FP16 IR means FP16 weights (as TFLite FP16
    # on the host), INT8 ops run integer anyway, and a bf16-capable CPU would otherwise
    # silently compute in bf16. The figure then measures what the conversion changed.
    return BuiltArtifact(xml, extra=[xml.with_suffix(".bin")], quantization=built.quantization,
                         runtime_options={"precision_hint": "f32"})
