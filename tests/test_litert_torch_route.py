"""The litert-torch route: PyTorch -> TFLite without ONNX's layout guess, so sizes where an
activation has as many channels as rows or columns convert exactly (onnx2tf can guess the
wrong axis there), in FP32, FP16 weights and full-integer INT8 (ai-edge-quantizer).
Real conversions in the toolchain's own environment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _photos import psnr, sky  # noqa: E402
from edge_isp.errors import InputError  # noqa: E402


@pytest.fixture(scope="module")
def litert_torch_env(toolchain_env) -> Path:
    return toolchain_env("litert-torch")


def _ctx(tmp_path: Path, target: str, route: str, hw: tuple[int, int]):
    from edge_isp.converters.onnx_export import export_onnx
    from edge_isp.converters.stages import BuildContext, ConvertOptions
    from edge_isp.converters.targets import get_target
    from edge_isp.models import create

    exported = export_onnx(create("pynet-v2-mobile", seed=0).eval(), (1, 4, *hw), tmp_path / "m.onnx")
    return BuildContext(ConvertOptions(model="pynet-v2-mobile", target=target, route=route), get_target(target),
                    exported.path, exported.input_name, tmp_path, None, None)


def test_route_choice_says_why(tmp_path, monkeypatch):
    from edge_isp.converters.tflite_build import choose_route

    monkeypatch.setenv("EDGE_ISP_TOOLCHAINS", str(tmp_path / "none"))       # nothing installed
    ambiguous = _ctx(tmp_path, "cpu-fp32", "auto", (128, 128))               # 64x64 maps with 64 channels
    route, why = choose_route(ambiguous)
    assert route == "onnx2tf" and "as many channels as rows or columns" in why and "toolchain install" in why
    route, why = choose_route(_ctx(tmp_path, "nnapi-uint8", "auto", (128, 128)))
    assert route == "onnx2tf" and "uint8 I/O" in why
    with pytest.raises(InputError, match="uint8 I/O"):
        choose_route(_ctx(tmp_path, "nnapi-uint8", "litert-torch", (128, 128)))
    assert choose_route(_ctx(tmp_path, "nnapi-int8", "onnx2tf", (128, 128)))[0] == "onnx2tf"   # asked
    plain = _ctx(tmp_path, "cpu-fp32", "auto", (160, 224))                   # no collision, small graph
    assert choose_route(plain) == ("onnx2tf", "no layout ambiguity at this size")
    monkeypatch.setattr("edge_isp.converters.tflite_build.ONNX2TF_ACTIVATION_BUDGET_MIB", 1)   # as if it were PyNET
    route, why = choose_route(plain)
    assert route == "onnx2tf" and "GiB of activations at this size" in why and "toolchain install" in why
    with pytest.raises(InputError, match="--route 'tf'"):
        choose_route(_ctx(tmp_path, "cpu-fp32", "tf", (128, 128)))


def test_route_is_checked_before_any_work():
    from typer.testing import CliRunner

    from edge_isp.cli import app

    result = CliRunner().invoke(app, ["convert", "microisp", "--target", "nnapi-int8", "--via", "tf"])
    assert isinstance(result.exception, InputError)          # the CLI's error policy makes it one line, exit 2
    assert "--route 'tf' is not one of auto, onnx2tf, litert-torch" in str(result.exception)


@pytest.mark.slow
def test_a_size_onnx2tf_gets_wrong_converts_exactly(tmp_path, litert_torch_env):
    from edge_isp.converters.layout_guard import find_collisions
    from edge_isp.converters.pipeline import ConvertOptions, convert
    from edge_isp.converters.tflite_build import choose_route
    from edge_isp.runtimes import open_bundle

    assert find_collisions(_ctx(tmp_path, "cpu-fp32", "auto", (128, 128)).onnx_path)   # onnx2tf's trap
    assert choose_route(_ctx(tmp_path, "cpu-fp32", "auto", (128, 128)))[0] == "litert-torch"
    result = convert(ConvertOptions(model="pynet-v2-mobile", target="cpu-fp32", input_size=(256, 256),
                                    tiling="blended", verify_samples=2, output=tmp_path / "b"))
    m = result.manifest
    assert m["quantization"]["route"]["route"] == "litert-torch" and m["artifact"]["runtime_options"]["layout"] == "NCHW"
    assert result.verification.passed and result.verification.min_sample_psnr_db > 90
    runner = open_bundle(result.bundle.path)
    x = np.random.default_rng(1).random((1, 4, 128, 128), dtype=np.float32)
    with torch.no_grad():
        from edge_isp.models import create

        ref = create("pynet-v2-mobile", seed=0).eval()(torch.from_numpy(x)).numpy()
    assert runner.input_spec.layout == "NCHW" and psnr(runner.run(x), ref) > 90


@pytest.mark.slow
def test_two_pass_parts_keep_their_names_through_litert_torch(tmp_path, litert_torch_env):
    from edge_isp.converters.pipeline import ConvertOptions, convert
    from edge_isp.models.pretrained import load_default
    from edge_isp.runtimes import open_bundle
    from edge_isp.whole_photo import _reference

    result = convert(ConvertOptions(target="cpu-fp32", input_size=(432, 432), route="litert-torch",
                                    verify_samples=2, output=tmp_path / "b"))
    m = result.manifest
    assert m["tiling"]["mode"] == "two-pass" and m["quantization"]["route"]["route"] == "litert-torch"
    # The statistics part ends at the last global op: the decoder is dropped from its graph.
    assert (m["tiling"]["stats_artifact"]["support_check"]["counts"]["ops_total"]
            < m["support_check"]["counts"]["ops_total"])
    runner = open_bundle(result.bundle.path)
    assert set(runner.split[0].inputs) == set(runner.runner.inputs) >= {"bayer", "g0_mean", "g1_mean"}
    packed = sky(252, 304)                                       # unaligned: the photo grid
    assert psnr(runner.run_photo(packed), _reference(load_default(), packed, 4)) > 90
    assert json.loads((result.bundle.path / "manifest.json").read_text())["artifact"]["runtime_options"]["layout"] == "NCHW"


# The reference model's INT8 of random InstanceNorm weights sits near 35 dB: its bar is the delegation's.
@pytest.mark.slow
@pytest.mark.parametrize("model_name,target,bar", [("pynet-v2-mobile-nonorm", "nnapi-fp16", 55.0),
                                                   ("pynet-v2-mobile-nonorm", "nnapi-int8", 30.0),
                                                   ("pynet-v2-mobile", "nnapi-int8", 20.0)])
def test_fp16_and_int8_at_a_size_onnx2tf_gets_wrong(tmp_path, litert_torch_env, model_name, target, bar):
    from edge_isp.converters.check import check_bundle
    from edge_isp.converters.pipeline import ConvertOptions, convert
    from edge_isp.converters.tflite import op_names

    result = convert(ConvertOptions(model=model_name, target=target, input_size=(256, 256), min_psnr_db=bar,
                                    tiling="blended", calib_samples=8, verify_samples=2, output=tmp_path / "b"))
    m = result.manifest
    q = m["quantization"]
    assert q["route"]["route"] == "litert-torch" and "as many channels" in q["route"]["why"]
    assert result.verification.passed and result.verification.min_sample_psnr_db >= bar
    from edge_isp.converters.tflite_reader import read_tflite

    model = read_tflite(result.bundle.path / "model.tflite")
    # NNAPI's exact fits have a PyTorch form on this route (reflect pads as slices: no MIRROR_PAD;
    # FP16 at API 29: bilinear 2x as nearest + filter) or the quantiser's (RSQRT left in float).
    ops = op_names(model.path)
    rest = {"nnapi-fp16": ["resize_as_nearest_conv", "resize_align_corners_as_gather"],
            "nnapi-int8": ["rsqrt_in_float"]}[target]
    assert q["route"]["fit"]["applied"] == ["reflect_pad_as_slices", *rest] and "MIRROR_PAD" not in ops
    assert "STRIDED_SLICE" in ops                                    # the op NNAPI's table takes (API 28)
    report = check_bundle(result.bundle.path)                        # at the target's level (29 / 30)
    assert report.verdict == "full", report.summary
    weights = {t.dtype for t in model.tensors if t.constant and t.rank == 4}
    if target == "nnapi-int8":
        assert q["io_dtype"] == "int8" and m["input"]["dtype"] == "int8" and "ai-edge-quantizer" in q["route"]["quantizer"]
        assert weights == {"int8"}
    else:
        assert q["weights"] == "float16" and weights == {"float16"}


@pytest.mark.slow
def test_compare_routes_side_by_side(tmp_path, litert_torch_env):
    from edge_isp.converters.compare_routes import compare_routes
    from edge_isp.converters.pipeline import ConvertOptions
    from edge_isp.errors import UsageError

    opts = ConvertOptions(model="microisp", target="cpu-fp32", input_size=(192, 224), tiling="blended", verify_samples=2)
    rows = {r.route: r for r in compare_routes(opts)}
    assert set(rows) == {"onnx2tf", "litert-torch"}
    for r in rows.values():
        assert r.ok and r.psnr_worst_db > 90 and r.ops > 0 and r.size_mb > 0 and r.host_latency_ms > 0
        assert set(r.delegated) == {"cpu-fp32", "gpu-fp16"}
    with pytest.raises(UsageError, match="TFLite target"):
        compare_routes(ConvertOptions(model="microisp", target="openvino-fp32"))
    with pytest.raises(UsageError, match="writes no bundle"):
        compare_routes(ConvertOptions(model="microisp", target="cpu-fp32", output=tmp_path / "x"))
