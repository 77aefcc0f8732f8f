"""ONNX -> TFLite through onnx2tf, then only the precision asked for.

onnx2tf's NCHW->NHWC layout check must see realistic data: with its default all-ones
probe a 4-channel image model converts silently wrong (~40 dB instead of >100 dB vs
PyTorch). We always hand it packed RAW crops. INT8 is built from onnx2tf's saved model
with TFLiteConverter and our representative set, not with onnx2tf's -oiqt (which builds
every integer variant, int16 included, and took 15 minutes here).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp._deps import require
from edge_isp.errors import ConversionError

# InstanceNorm lowers to these TFLite ops; keeping them float is the "float island" fix.
NORM_OP_TYPES = ("MEAN", "SQUARED_DIFFERENCE", "RSQRT")


@dataclass
class TfliteBuild:
    path: Path
    precision: str
    io_dtype: str
    quantization: dict[str, Any] = field(default_factory=dict)
    layer_errors: list[dict[str, Any]] = field(default_factory=list)


def _quiet_tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = require("tensorflow", "TFLite conversion")
    tf.get_logger().setLevel("ERROR")
    return tf


# onnx2tf is the slow step (tens of seconds) and gives the same result for the same ONNX
# and probe data: keep its outputs for the life of the process, so converting one model
# to several TFLite targets (or a test session) runs it once. Never shared across runs.
_CACHE_ROOT: Path | None = None
_SAVED_MODELS: dict[str, tuple[Path, Path, Path]] = {}


def _cache_dir(key: str) -> Path:
    global _CACHE_ROOT
    if _CACHE_ROOT is None:
        _CACHE_ROOT = Path(tempfile.mkdtemp(prefix="edge-isp-onnx2tf-"))
        atexit.register(shutil.rmtree, _CACHE_ROOT, True)
    return _CACHE_ROOT / key


def onnx_to_saved_model(onnx_path: Path, work_dir: Path, input_name: str,
                        calib_nchw: np.ndarray) -> tuple[Path, Path, Path]:
    """Run onnx2tf (once per ONNX model and probe); return (saved_model, float32.tflite, float16.tflite).

    ``work_dir`` is unused when the result is cached; outputs live in a process-wide cache.
    """
    digest = hashlib.sha256(Path(onnx_path).read_bytes())
    digest.update(np.ascontiguousarray(calib_nchw).tobytes())
    key = digest.hexdigest()[:24]
    if key not in _SAVED_MODELS or not _SAVED_MODELS[key][1].exists():
        _SAVED_MODELS[key] = _run_onnx2tf(onnx_path, _cache_dir(key), input_name, calib_nchw)
    return _SAVED_MODELS[key]


def _run_onnx2tf(onnx_path: Path, work_dir: Path, input_name: str,
                 calib_nchw: np.ndarray) -> tuple[Path, Path, Path]:
    _quiet_tf()
    onnx2tf = require("onnx2tf", "ONNX -> TFLite conversion")
    work_dir.mkdir(parents=True, exist_ok=True)
    probe = work_dir / "layout_probe_nhwc.npy"
    np.save(probe, np.transpose(calib_nchw, (0, 2, 3, 1)).astype(np.float32))
    channels = calib_nchw.shape[1]
    zeros, ones = np.zeros((1, 1, 1, channels), np.float32), np.ones((1, 1, 1, channels), np.float32)
    out_dir = work_dir / "saved_model"
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):
            onnx2tf.convert(
                input_onnx_file_path=str(onnx_path), output_folder_path=str(out_dir),
                custom_input_op_name_np_data_path=[[input_name, str(probe), zeros, ones]],
                copy_onnx_input_output_names_to_tflite=True, output_signaturedefs=True,
                non_verbose=True, verbosity="error",
            )
    except SystemExit as exc:  # onnx2tf exits on unsupported ops
        raise ConversionError(f"onnx2tf could not convert the model: {_last_error(log.getvalue())}") from exc
    except Exception as exc:
        raise ConversionError(f"onnx2tf failed: {str(exc).splitlines()[0][:300]}") from exc
    stem = onnx_path.stem
    f32, f16 = out_dir / f"{stem}_float32.tflite", out_dir / f"{stem}_float16.tflite"
    if not f32.exists():
        raise ConversionError(f"onnx2tf produced no TFLite model: {_last_error(log.getvalue())}")
    return out_dir, f32, f16


def _last_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "ERROR" in ln or "Error" in ln]
    return (errors or lines or ["no output"])[-1][:300]


_CALIBRATED: dict[tuple[str, str], bytes] = {}


def calibrate(saved_model: Path, calib_nchw: np.ndarray, extra: dict[str, np.ndarray] | None = None,
              input_name: str = "bayer") -> bytes:
    """Run the float model over the calibration set once; returns a model with range stats.

    ``extra`` holds the model's other inputs (N, ...) by name (a two-pass part's statistics).
    Calibrating once (per process) lets every INT8 variant (islands, I/O types, layer
    report) reuse it.
    """
    digest = hashlib.sha256(np.ascontiguousarray(calib_nchw).tobytes())
    for name, value in sorted((extra or {}).items()):
        digest.update(name.encode() + np.ascontiguousarray(value).tobytes())
    key = (str(saved_model), digest.hexdigest())
    if key not in _CALIBRATED:
        _CALIBRATED[key] = _calibrate(saved_model, _representative(calib_nchw, extra, input_name))
    return _CALIBRATED[key]


def _nhwc(x: np.ndarray) -> np.ndarray:
    return np.transpose(x, (0, 2, 3, 1)).astype(np.float32) if x.ndim == 4 else x.astype(np.float32)


def _representative(calib_nchw: np.ndarray, extra: dict[str, np.ndarray] | None, input_name: str,
                    limit: int | None = None) -> Callable[[], Iterator[Any]]:
    """TF's representative dataset: a list for one input, a dict by signature name for several."""
    n = len(calib_nchw) if limit is None else min(limit, len(calib_nchw))
    named = {input_name: _nhwc(calib_nchw[:n]), **{k: _nhwc(v[:n]) for k, v in (extra or {}).items()}}

    def samples() -> Iterator[Any]:
        for i in range(n):
            if len(named) == 1:
                yield [named[input_name][i:i + 1]]
            else:
                yield {k: v[i:i + 1] for k, v in named.items()}

    return samples


def _calibrate(saved_model: Path, representative: Callable[[], Iterator[Any]]) -> bytes:
    tf = _quiet_tf()

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter._experimental_calibrate_only = True  # noqa: SLF001 - TF's own two-step path
    try:
        return converter.convert()
    except Exception as exc:
        raise ConversionError(f"TFLite calibration failed: {str(exc).splitlines()[0][:300]}") from exc


def quantize_int8(calibrated: bytes, out_path: Path, calib_nchw: np.ndarray, io_dtype: str = "int8",
                  per_channel: bool = True, keep_float_ops: tuple[str, ...] = (),
                  keep_float_nodes: tuple[str, ...] = (), layer_report: bool = False,
                  extra: dict[str, np.ndarray] | None = None, names_from: Path | None = None,
                  output_order: Sequence[str] | None = None) -> TfliteBuild:
    """Full-integer INT8 TFLite from a calibrated model (see ``calibrate``); ``names_from``
    (the float model onnx2tf wrote) gives the outputs their names back.

    ``keep_float_ops`` / ``keep_float_nodes`` leave those ops in float (the MLIR
    quantiser's denylist), at the price of CPU fallback on integer-only accelerators.
    The model's input and output stay integer (``io_dtype``) either way.
    """
    tf = _quiet_tf()
    from tensorflow.lite.python import convert as tf_convert

    from tensorflow.lite.python import util as tf_util

    try:
        # As TF's own converter: quantise with float I/O (QUANTIZE / DEQUANTIZE at the
        # edges), then rewrite the I/O tensors to the integer type asked for.
        flat = tf_convert.mlir_quantize(
            calibrated, disable_per_channel=not per_channel, fully_quantize=False,
            denylisted_ops=list(keep_float_ops) or None, denylisted_nodes=list(keep_float_nodes) or None,
        )
        io_type = {"int8": tf.int8, "uint8": tf.uint8}[io_dtype]
        float_io, left_out = flat, _left_out_inputs(flat)
        flat = tf_util.modify_model_io_type(float_io, io_type, io_type)
        output_dtype, broken = io_dtype, _left_out_inputs(flat) > left_out
        if broken:
            # TF's I/O rewrite drops the DEQUANTIZE before an output even when a float op also
            # reads it (a two-pass statistics part with --keep-float norm: a norm's input map is
            # an output too), leaving that op without an input - the interpreter then crashes.
            # Float outputs keep that DEQUANTIZE.
            flat = tf_util.modify_model_io_type(float_io, io_type, tf.float32)
            output_dtype, broken = "float32", _left_out_inputs(flat) > left_out
    except Exception as exc:
        raise ConversionError(f"TFLite INT8 quantisation failed: {str(exc).splitlines()[0][:300]}") from exc
    if broken:
        raise ConversionError("TFLite INT8 quantisation left an op without its input (a converter bug); "
                              "drop --keep-float or convert with another --route")
    if names_from is not None:
        flat = keep_output_names(Path(names_from).read_bytes(), flat, output_order)
    layer_errors = _layer_errors(calibrated, calib_nchw, per_channel, extra) if layer_report else []
    out_path.write_bytes(flat)
    return TfliteBuild(out_path, "int8", io_dtype, quantization={
        "scheme": "full-integer", "weights": "per-channel" if per_channel else "per-tensor",
        "activations": "int8 per-tensor", "io_dtype": io_dtype,
        **({"output_dtype": output_dtype} if output_dtype != io_dtype else {}),
        "float_ops": list(keep_float_ops), "float_nodes": list(keep_float_nodes),
        "calibration_samples": int(calib_nchw.shape[0]),
    }, layer_errors=layer_errors)


def _left_out_inputs(flat: bytes) -> int:
    """How many op inputs of a TFLite flatbuffer are left out (-1): optional inputs, or inputs
    a rewrite removed."""
    from edge_isp.converters.tflite_reader import parse_tflite

    return sum(i < 0 for op in parse_tflite(flat).operators for i in op.inputs)


def keep_output_names(reference: bytes, quantized: bytes, order: Sequence[str] | None = None) -> bytes:
    """Give the quantised model's signature outputs their names back.

    TF's quantiser renames signature outputs to output_0, output_1, ... numbered in the
    graph's output order (``order``: the ONNX output names), while the float signature lists
    its names alphabetically; runners of a model with several outputs (a two-pass
    statistics part) find them by name. Shapes are checked against the float model's.
    """
    from tensorflow.lite.tools import flatbuffer_utils as fu

    ref, q = fu.convert_bytearray_to_object(bytearray(reference)), fu.convert_bytearray_to_object(bytearray(quantized))
    if not ref.signatureDefs or not q.signatureDefs:
        return quantized
    ref_outs, q_outs = ref.signatureDefs[0].outputs, q.signatureDefs[0].outputs
    if len(ref_outs) != len(q_outs):
        raise ConversionError("the INT8 model lost or gained outputs in quantisation; cannot name them")
    if sorted(o.name for o in ref_outs) == sorted(o.name for o in q_outs):
        return quantized
    ref_shapes = {o.name.decode() if isinstance(o.name, bytes) else o.name: list(ref.subgraphs[0].tensors[o.tensorIndex].shape)
                  for o in ref_outs}
    names = list(order) if order is not None else sorted(ref_shapes)
    q_t = q.subgraphs[0].tensors
    for o in q_outs:
        label = o.name.decode() if isinstance(o.name, bytes) else o.name
        k = label.rpartition("_")[2]
        if not label.startswith("output_") or not k.isdigit() or int(k) >= len(names) or names[int(k)] not in ref_shapes:
            raise ConversionError(f"the INT8 model has an output {label!r} edge-isp cannot map to the float outputs")
        name = names[int(k)]
        if ref_shapes[name] != list(q_t[o.tensorIndex].shape):
            raise ConversionError(f"the INT8 model's output {label!r} does not match the float output {name!r} "
                                  f"(shapes differ); cannot name its outputs")
        o.name = name
    return bytes(fu.convert_object_to_bytearray(q))


def _layer_errors(calibrated: bytes, calib_nchw: np.ndarray, per_channel: bool,
                  extra: dict[str, np.ndarray] | None = None, top: int = 12) -> list[dict[str, Any]]:
    """Per-layer quantisation error (the TF quantisation debugger), worst first.

    Ranked by RMSE over the layer's quantisation step: how many steps off it is.
    """
    import csv

    tf = _quiet_tf()
    from tensorflow.lite.python import convert as tf_convert

    debug_model = tf_convert.mlir_quantize(calibrated, disable_per_channel=not per_channel,
                                           enable_numeric_verify=True)
    debugger = tf.lite.experimental.QuantizationDebugger(
        quant_debug_model_content=debug_model, debug_dataset=_representative(calib_nchw, extra, "bayer", limit=4))
    debugger.run()
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    report = []
    for row in csv.DictReader(io.StringIO(buf.getvalue())):
        scale = float(row.get("scale") or 0.0)
        mse = float(row.get("mean_squared_error") or 0.0)
        report.append({
            "op": row.get("op_name", ""), "tensor": row.get("tensor_name", ""),
            "rmse": mse ** 0.5, "rmse_over_scale": (mse ** 0.5 / scale) if scale else 0.0,
            "max_abs_error": float(row.get("max_abs_error") or 0.0),
        })
    report.sort(key=lambda r: r["rmse_over_scale"], reverse=True)
    return report[:top]


def clear_integer_scale_half_pixel(src: Path, dst: Path) -> int:
    """Copy ``src`` to ``dst`` with ``half_pixel_centers`` cleared on every RESIZE_NEAREST_NEIGHBOR
    that scales by whole factors; returns how many.

    Both TFLite routes write nearest-neighbour resizes with half-pixel centres (TF2's
    ``tf.image.resize``, LiteRT-Torch), which NNAPI takes only from API 30. For a whole factor
    s the source row is floor((k + 0.5) / s) = floor(k / s) either way (k / s has a fraction
    <= (s - 1) / s), so the flag changes nothing but the API level. The stored byte is
    flipped in place: nothing else of the file moves (models with buffers after the
    flatbuffer stay valid).
    """
    import flatbuffers
    from tflite.BuiltinOperator import BuiltinOperator
    from tflite.Model import Model
    from tflite.ResizeNearestNeighborOptions import ResizeNearestNeighborOptions

    from edge_isp.converters.tflite_reader import builtin_code

    data = bytearray(Path(src).read_bytes())
    model = Model.GetRootAs(data, 0)
    nearest = {i for i in range(model.OperatorCodesLength())
               if builtin_code(model.OperatorCodes(i)) == BuiltinOperator.RESIZE_NEAREST_NEIGHBOR}
    cleared = 0
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for k in range(graph.OperatorsLength()):
            op = graph.Operators(k)
            table = op.BuiltinOptions() if op.OpcodeIndex() in nearest else None
            if table is None:
                continue
            options = ResizeNearestNeighborOptions()
            options.Init(table.Bytes, table.Pos)
            if not options.HalfPixelCenters():
                continue
            (_, h, w, _) = graph.Tensors(op.Inputs(0)).ShapeAsNumpy()
            (_, oh, ow, _) = graph.Tensors(op.Outputs(0)).ShapeAsNumpy()
            if h and w and oh % h == 0 and ow % w == 0:
                field = options._tab.Offset(6)     # noqa: SLF001 - half_pixel_centers' vtable slot
                data[options._tab.Pos + flatbuffers.number_types.UOffsetTFlags.py_type(field)] = 0  # noqa: SLF001
                cleared += 1
    Path(dst).write_bytes(bytes(data))
    return cleared


# Elementwise ops an InstanceNorm lowers into; an island grows through these only.
def op_names(tflite_path: Path) -> set[str]:
    """The builtin op names (CONV_2D, MEAN, ...) of a TFLite model: what --keep-float names."""
    from edge_isp.converters.tflite_reader import read_tflite

    return set(read_tflite(tflite_path).op_counts())


_NORM_CHAIN_OPS = frozenset({"MEAN", "SQUARED_DIFFERENCE", "RSQRT", "SUB", "MUL", "ADD", "SQRT", "DIV"})


def norm_island_nodes(float_tflite: Path, seed_inputs: Sequence[str] = ()) -> list[str]:
    """Output tensor names of every op in the normalisation subgraphs of a float TFLite model.

    Seeds are spatial MEANs (how onnx2tf lowers InstanceNorm) and the ops that read one of
    ``seed_inputs`` (a two-pass part's injected mean and 1/std: its norms are arithmetic on
    them); the island grows forward through the elementwise ops of the norm (x - mean,
    variance, rsqrt, scale, shift) and stops at the next non-elementwise op (conv, PReLU,
    ...). Keeping exactly these in float removes the INT8 loss of normalisation without
    floating the convolutions.
    """
    from edge_isp.runtimes.litert import _interpreter_class

    interp = _interpreter_class("litert")(model_path=str(float_tflite))
    ops = interp._get_ops_details()  # noqa: SLF001 - the only op-level view the interpreter offers
    names = {t["index"]: t["name"] for t in interp.get_tensor_details()}
    consumers: dict[int, list[dict[str, Any]]] = {}
    for op in ops:
        for idx in op["inputs"]:
            consumers.setdefault(int(idx), []).append(op)
    island: dict[int, dict[str, Any]] = {op["index"]: op for op in ops if op["op_name"] == "MEAN"}
    # Inputs by their graph names: the signature's (onnx2tf writes one; runtimes/litert.py finds
    # inputs the same way), else the tensors'. A statistics part need not read every statistic.
    named = {name: index for sig in interp._get_full_signature_list().values()  # noqa: SLF001
             for name, index in sig["inputs"].items()}
    named = named or {d["name"]: d["index"] for d in interp.get_input_details()}
    for name in seed_inputs:
        if name in named:
            island.update({op["index"]: op for op in consumers.get(int(named[name]), [])})
    frontier = list(island.values())
    while frontier:
        op = frontier.pop()
        for out in op["outputs"]:
            for nxt in consumers.get(int(out), []):
                if nxt["op_name"] in _NORM_CHAIN_OPS and nxt["index"] not in island:
                    island[nxt["index"]] = nxt
                    frontier.append(nxt)
    return sorted({names[int(o)] for op in island.values() for o in op["outputs"]})


# ----------------------------------------------------------------------------- the onnx2tf route

def build(ctx: Any, why: str) -> Any:
    """The ``onnx2tf`` entry of artifact_formats.TFLITE_ROUTES: ``ctx``'s ONNX graph as a TFLite
    file of the target's precision (INT8: calibrated on ``ctx.calib``, fits' float ops kept)."""
    from edge_isp.converters.stages import BuiltArtifact
    from edge_isp.converters.tflite_build import FLOAT_QUANTIZATION

    with ctx.stage("onnx2tf"):
        saved, f32, f16 = onnx_to_saved_model(ctx.onnx_path, ctx.work / "tf", ctx.input_name, ctx.calib.data)
    route = {"route": {"route": "onnx2tf", "why": why}}
    precision = ctx.target.precision
    if precision in FLOAT_QUANTIZATION:
        return BuiltArtifact({"fp32": f32, "fp16": f16}[precision], quantization={**FLOAT_QUANTIZATION[precision], **route})
    graph_ops = op_names(f32)
    ctx.check_keep_float("tflite", graph_ops)
    with ctx.stage("calibrate"):
        calibrated = calibrate(saved, ctx.calib.data, ctx.calib.extra, ctx.input_name)
    keep = tuple(op.upper() for op in ctx.keep_float_ops("tflite")) + ctx.fit_float_ops(graph_ops)
    nodes = tuple(norm_island_nodes(f32, ctx.norm_inputs)) if "norm" in ctx.opts.keep_float else ()
    with ctx.stage("quantize"):
        built = quantize_int8(calibrated, ctx.work / "model_int8.tflite", ctx.calib.data,
                              io_dtype=ctx.opts.io_dtype or ctx.target.io_dtype, per_channel=ctx.opts.per_channel,
                              keep_float_ops=keep, keep_float_nodes=nodes, layer_report=ctx.opts.layer_report,
                              extra=ctx.calib.extra, names_from=f32, output_order=_onnx_output_names(ctx.onnx_path))
    return BuiltArtifact(built.path, quantization={**built.quantization, **route}, layer_errors=built.layer_errors)


def gaps(ctx: Any) -> str:
    """onnx2tf takes every option convert has."""
    return ""


def available() -> bool:
    return True     # a required package: missing, it fails with its own install hint


def _onnx_output_names(onnx_path: Path) -> list[str]:
    onnx = require("onnx", "reading ONNX outputs")
    return [o.name for o in onnx.load(str(onnx_path), load_external_data=False).graph.output]
