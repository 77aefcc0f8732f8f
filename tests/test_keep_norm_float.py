"""`--keep-float norm` on a two-pass part: its instance norms are arithmetic on injected
statistics (x - mean) * inv_std * w + b, so the float island starts at the ops that read
those inputs, in TFLite and in OpenVINO alike."""

from __future__ import annotations

import os

import numpy as np
import pytest


def _norm_on_inputs_onnx(path):
    """conv -> (y - mean) * inv_std * w + b -> conv, mean and inv_std graph inputs."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(2, 2, 3, 3)).astype(np.float32), "k1"),
             numpy_helper.from_array(rng.normal(size=(2, 2, 3, 3)).astype(np.float32), "k2"),
             numpy_helper.from_array(rng.normal(size=(1, 2, 1, 1)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(size=(1, 2, 1, 1)).astype(np.float32), "b")]
    nodes = [helper.make_node("Conv", ["x", "k1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Sub", ["c1", "g0_mean"], ["centred"], name="centre"),
             helper.make_node("Mul", ["centred", "g0_inv_std"], ["scaled"], name="scale"),
             helper.make_node("Mul", ["scaled", "w"], ["weighted"], name="weight"),
             helper.make_node("Add", ["weighted", "b"], ["shifted"], name="shift"),
             helper.make_node("Conv", ["shifted", "k2"], ["y"], name="conv2", pads=[1, 1, 1, 1])]
    graph = helper.make_graph(
        nodes, "norm_on_inputs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8]),
         helper.make_tensor_value_info("g0_mean", TensorProto.FLOAT, [1, 2, 1, 1]),
         helper.make_tensor_value_info("g0_inv_std", TensorProto.FLOAT, [1, 2, 1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_openvino_norm_island_is_the_arithmetic_on_the_statistics(tmp_path):
    pytest.importorskip("openvino")
    from edge_isp.converters.openvino_ir import read_onnx, statistics_nodes

    model = read_onnx(_norm_on_inputs_onnx(tmp_path / "part.onnx"))
    names = statistics_nodes(model, ("g0_mean", "g0_inv_std"))
    types = {op.get_friendly_name(): op.get_type_name() for op in model.get_ops()}
    assert sorted(types[n] for n in names) == ["Add", "Multiply", "Multiply", "Subtract"]
    assert statistics_nodes(model, ()) == ()


def test_tflite_norm_island_starts_at_the_statistics_inputs(tmp_path):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = pytest.importorskip("tensorflow")
    from ai_edge_litert.interpreter import Interpreter

    from edge_isp.converters.tflite import norm_island_nodes

    k1 = tf.constant(np.random.default_rng(0).normal(size=(3, 3, 2, 2)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec((1, 8, 8, 2), tf.float32, name="x"),
                                  tf.TensorSpec((1, 1, 1, 2), tf.float32, name="g0_mean"),
                                  tf.TensorSpec((1, 1, 1, 2), tf.float32, name="g0_inv_std")])
    def part(x, g0_mean, g0_inv_std):
        y = tf.nn.conv2d(x, k1, 1, "SAME")
        y = (y - g0_mean) * g0_inv_std * 1.5 + 0.25
        return tf.nn.conv2d(y, k1, 1, "SAME")

    conv = tf.lite.TFLiteConverter.from_concrete_functions([part.get_concrete_function()], part)
    path = tmp_path / "part.tflite"
    path.write_bytes(conv.convert())
    interp = Interpreter(model_path=str(path))
    made_by = {interp.get_tensor_details()[o]["name"]: op["op_name"]
               for op in interp._get_ops_details() for o in op["outputs"]}  # noqa: SLF001
    island = norm_island_nodes(path, ("g0_mean", "g0_inv_std"))
    assert island and all(made_by[n] in {"SUB", "MUL", "ADD"} for n in island)
    assert "SUB" in {made_by[n] for n in island} and "CONV_2D" in made_by.values()
    assert norm_island_nodes(path) == []     # no MEAN, no statistics named: nothing to keep


def test_an_output_a_float_island_also_reads_keeps_its_dequantize(tmp_path):
    """A two-pass statistics part outputs each norm's input map, which the norm (kept float)
    reads too. TF's integer-I/O rewrite dropped that DEQUANTIZE and left the op without an
    input: the interpreter crashed in allocate_tensors. Outputs stay float in that case."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = pytest.importorskip("tensorflow")
    from edge_isp.converters.tflite import _left_out_inputs, calibrate, norm_island_nodes, quantize_int8

    rng = np.random.default_rng(0)
    k1 = tf.constant(rng.normal(size=(3, 3, 4, 4)).astype(np.float32))

    class Part(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((1, 8, 8, 4), tf.float32, name="bayer"),
                                      tf.TensorSpec((1, 1, 1, 4), tf.float32, name="g0_mean"),
                                      tf.TensorSpec((1, 1, 1, 4), tf.float32, name="g0_inv_std")])
        def __call__(self, bayer, g0_mean, g0_inv_std):
            m0 = tf.nn.conv2d(bayer, k1, 1, "SAME")                   # op 0's input map: an output
            m1 = tf.nn.conv2d((m0 - g0_mean) * g0_inv_std, k1, 1, "SAME")
            return {"g0_map": m0, "g1_map": m1}

    saved = tmp_path / "saved"
    tf.saved_model.save(Part(), str(saved))
    float_tflite = tmp_path / "f32.tflite"
    float_tflite.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert())
    calib = rng.random((4, 4, 8, 8), dtype=np.float32)
    extra = {"g0_mean": rng.random((4, 4, 1, 1), dtype=np.float32),
             "g0_inv_std": rng.random((4, 4, 1, 1), dtype=np.float32) + 0.5}
    calibrated = calibrate(saved, calib, extra, "bayer")
    nodes = tuple(norm_island_nodes(float_tflite, ("g0_mean", "g0_inv_std")))
    assert nodes
    built = quantize_int8(calibrated, tmp_path / "int8.tflite", calib, keep_float_nodes=nodes, extra=extra)
    assert _left_out_inputs(built.path.read_bytes()) == 0
    assert built.quantization["output_dtype"] == "float32" and built.quantization["io_dtype"] == "int8"
    # Loads and runs (in a child: a broken model would take the test process down).
    import subprocess
    import sys

    code = ("from ai_edge_litert.interpreter import Interpreter; import sys; "
            "i = Interpreter(model_path=sys.argv[1]); i.allocate_tensors(); i.invoke(); print('ran')")
    run = subprocess.run([sys.executable, "-c", code, str(built.path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "ran" in run.stdout, run.stderr[-500:]


@pytest.mark.slow
def test_a_two_pass_norm_then_prelu_stays_nhwc_and_native(tmp_path):
    """The tile part's affine norm followed by PReLU (PyNET-V2 Mobile's blocks) must reach
    TFLite as SUB/MUL + PRELU, NHWC throughout: onnx2tf laid "+ bias" out as NCHW (two
    TRANSPOSEs, PReLU as ABS + RELU, ABS refused by NNAPI in INT8)."""
    torch = pytest.importorskip("torch")
    from torch import nn

    from edge_isp.converters.fit import FitOptions, fitted_export
    from edge_isp.converters.tflite import onnx_to_saved_model, op_names
    from edge_isp.converters.two_pass import TwoPassSetup, export_parts
    from edge_isp.models.global_context import GlobalInstanceNorm2d, plan_for
    from edge_isp.models.split_parts import split_spec

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), GlobalInstanceNorm2d(8, affine=True), nn.PReLU(8),
                        nn.Conv2d(8, 3, 3, padding=1)).eval()
    with torch.no_grad():
        net[1].bias.uniform_(-1, 1)
    plan = plan_for(net, 4)
    setup = TwoPassSetup(plan, split_spec(net, plan, (32, 32)), "test")
    _, tile = export_parts(fitted_export(FitOptions()), net, setup, tmp_path)
    _, f32, _ = onnx_to_saved_model(tile.path, tmp_path / "tf", tile.input_name,
                                    np.random.default_rng(0).random((2, 4, 32, 32), dtype=np.float32))
    ops = op_names(f32)
    assert "PRELU" in ops and not ops & {"ABS", "TRANSPOSE"}, sorted(ops)
