"""Real conversions through every target, verified against PyTorch (slow: onnx2tf, NNCF).

One session-wide cache of bundles keeps each (model, target) conversion to a single run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_isp.converters import get_target, list_targets
from edge_isp.converters.bundle import load_bundle
from edge_isp.converters import pipeline
from edge_isp.converters.pipeline import ConvertOptions
from edge_isp.errors import BundleError, InputError, UnknownNameError, VerificationError

torch = pytest.importorskip("torch")

from _bundles import CALIB_SAMPLES, MODEL, SIZE, convert_once  # noqa: E402


class _Bundles:
    """The session's shared conversions (tests/_bundles.py) under this module's old name."""

    @staticmethod
    def get(model: str, target: str, **options):
        size = options.pop("input_size", SIZE)
        return convert_once(target, model, size, **options)


@pytest.fixture(scope="session")
def bundles() -> _Bundles:
    return _Bundles()


def _reference(model: str, x: np.ndarray, **options) -> np.ndarray:
    from edge_isp.models import create

    with torch.no_grad():
        return create(model, seed=0, **options)(torch.from_numpy(x)).numpy()


# pynet-v2-mobile's InstanceNorm does not survive plain INT8 (see the test below): its
# INT8 targets are converted with the normalisation kept in float.
INT8_FIT = {"keep_float": ("norm",)}


def _fit(target: str) -> dict:
    return INT8_FIT if get_target(target).quantized else {}


# Every target whose artifact the host runtimes run; the vendor-compiler formats (rknn:
# simulator-verified, litert-aot: needs the vendor's compiler) have their own test files.
HOST_FORMATS = ("onnx", "tflite", "openvino", "vela")


@pytest.mark.slow
@pytest.mark.parametrize("target", [t.name for t in list_targets() if t.format in HOST_FORMATS])
def test_every_target_converts_and_matches_pytorch(bundles, target):
    result = bundles.get(MODEL, target, **_fit(target))
    m = result.manifest
    t = get_target(target)
    assert m["target"]["name"] == target and m["target"]["precision"] == t.precision
    assert m["verification"]["passed"] and m["verification"]["psnr_db"] >= t.min_psnr_db
    assert m["input"]["mosaic_hw"] == list(SIZE)
    assert result.bundle.model_file.stat().st_size == m["artifact"]["size_bytes"] - sum(
        (result.bundle.path / f).stat().st_size for f in m["artifact"]["extra_files"])
    # Independent re-check: fresh inputs through the runtime named in the manifest.
    from edge_isp.runtimes import open_runner

    runner = open_runner(result.bundle.runtime, result.bundle.model_file, **m["artifact"]["runtime_options"])
    x = np.random.default_rng(7).random((2, 4, SIZE[0] // 2, SIZE[1] // 2), dtype=np.float32) * 0.6
    ref, got = _reference(MODEL, x), runner.run(x)
    assert got.shape == ref.shape == (2, 3, *SIZE)
    mse = np.mean((np.clip(ref, 0, 1) - np.clip(got, 0, 1)) ** 2)
    assert 10 * np.log10(1 / max(mse, 1e-30)) >= t.min_psnr_db - 6  # random data is harder than RAW crops


@pytest.mark.slow
def test_goals_per_precision(bundles):
    """The issue's goals: FP32 >= 100 dB, FP16 >= 60 dB vs PyTorch."""
    for target in ("onnx-fp32", "cpu-fp32", "openvino-fp32"):
        assert bundles.get(MODEL, target).manifest["verification"]["psnr_db"] >= 100, target
    for target in ("gpu-fp16", "openvino-fp16"):
        assert bundles.get(MODEL, target).manifest["verification"]["psnr_db"] >= 60, target


@pytest.mark.slow
def test_int8_tflite_is_integer_with_integer_io(bundles):
    from ai_edge_litert.interpreter import Interpreter

    result = bundles.get(MODEL, "nnapi-int8", **INT8_FIT)
    m = result.manifest
    interp = Interpreter(model_path=str(result.bundle.model_file))
    assert np.dtype(interp.get_input_details()[0]["dtype"]) == np.int8
    assert np.dtype(interp.get_output_details()[0]["dtype"]) == np.int8
    assert m["calibration"]["samples"] == CALIB_SAMPLES and m["calibration"]["seed"] == 0
    assert m["quantization"]["weights"] == "per-channel"


@pytest.mark.slow
def test_uint8_io_target(bundles):
    from ai_edge_litert.interpreter import Interpreter

    b = bundles.get(MODEL, "nnapi-uint8", **INT8_FIT).bundle
    assert np.dtype(Interpreter(model_path=str(b.model_file)).get_input_details()[0]["dtype"]) == np.uint8


@pytest.mark.slow
def test_plain_int8_of_instance_norm_is_refused_with_advice(tmp_path):
    """INT8 wrecks InstanceNorm: the pipeline must refuse to ship it, and say what to do."""
    with pytest.raises(VerificationError, match="keep-float norm"):
        pipeline.convert(ConvertOptions(tiling="blended", model=MODEL, target="cpu-int8", input_size=SIZE, output=tmp_path / "x"))
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_keep_norm_float_islands(bundles):
    from ai_edge_litert.interpreter import Interpreter

    result = bundles.get(MODEL, "cpu-int8", **INT8_FIT)
    interp = Interpreter(model_path=str(result.bundle.model_file))
    ops = interp._get_ops_details()  # noqa: SLF001
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    means = [op for op in ops if op["op_name"] == "MEAN"]
    assert means, "pynet-v2-mobile's InstanceNorm should lower to MEAN ops"
    assert all(np.dtype(tensors[op["outputs"][0]]["dtype"]) == np.float32 for op in means)
    convs = [op for op in ops if op["op_name"] == "CONV_2D"]
    assert convs and all(np.dtype(tensors[op["outputs"][0]]["dtype"]) == np.int8 for op in convs)
    assert len(result.manifest["quantization"]["float_nodes"]) > 20
    # Islands are what makes INT8 usable: compare with the NoNorm variant's plain INT8.
    assert result.manifest["verification"]["psnr_db"] >= 33


@pytest.mark.slow
def test_nonorm_variant_int8_without_islands(bundles):
    m = bundles.get("pynet-v2-mobile-nonorm", "cpu-int8").manifest
    assert m["verification"]["psnr_db"] >= 45 and m["quantization"]["float_nodes"] == []


@pytest.mark.slow
def test_layer_report_ranks_layers(bundles):
    m = bundles.get("pynet-v2-mobile-nonorm", "cpu-int8", layer_report=True).manifest
    errs = m["layer_errors"]
    assert 1 <= len(errs) <= 12
    ranks = [e["rmse_over_scale"] for e in errs]
    assert ranks == sorted(ranks, reverse=True) and ranks[0] > 0


@pytest.mark.slow
def test_calibration_from_folder_holds_out_files(tmp_path, shared_raw):
    import shutil

    calib = tmp_path / "calib"
    calib.mkdir()
    shutil.copy(shared_raw / "halide_bayer_small_grbg.png", calib / "a.png")
    shutil.copy(shared_raw / "halide_bayer_small_grbg.png", calib / "b.png")
    result = pipeline.convert(ConvertOptions(tiling="blended", model="microisp", target="openvino-int8", input_size=(192, 192),
                                    calib_dir=calib, calib_samples=4, verify_samples=2,
                                    raw_layout={"cfa": "GRBG", "black_level": 25, "white_level": 1023},
                                    output=tmp_path / "b"))
    m = result.manifest
    assert m["calibration"]["files"] == ["a.png"] and m["verification"]["inputs"]["files"] == ["b.png"]
    assert m["calibration"]["samples"] == 4 and m["verification"]["samples"] == 2


def test_failed_verification_writes_nothing(tmp_path):
    out = tmp_path / "never"
    with pytest.raises(VerificationError, match="dB PSNR"):
        pipeline.convert(ConvertOptions(tiling="blended", model="microisp", target="onnx-fp32", input_size=(192, 192),
                               min_psnr_db=1000, output=out))
    assert not out.exists() and not any(tmp_path.iterdir())


def test_existing_bundle_is_replaced_only_with_overwrite(tmp_path):
    from edge_isp.errors import OutputError

    out = tmp_path / "b"
    pipeline.convert(ConvertOptions(tiling="blended", model="microisp", target="onnx-fp32", input_size=(192, 192), output=out))
    first = (out / "manifest.json").read_bytes()
    with pytest.raises(OutputError, match="--overwrite"):
        pipeline.convert(ConvertOptions(tiling="blended", model="microisp", target="onnx-fp32", input_size=(192, 192), output=out, seed=1))
    assert (out / "manifest.json").read_bytes() == first
    pipeline.convert(ConvertOptions(tiling="blended", model="microisp", target="onnx-fp32", input_size=(192, 192), output=out, seed=1,
                           overwrite=True))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["weights"] == "init(seed=1)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no hidden .old or .partial folders


def test_overwrite_never_replaces_a_folder_that_is_not_a_bundle(tmp_path):
    from edge_isp.errors import OutputError

    out = tmp_path / "mine"
    out.mkdir()
    (out / "photo.cr2").write_bytes(b"raw bytes of a photo")
    with pytest.raises(OutputError, match="not an edge-isp bundle"):
        pipeline.convert(ConvertOptions(tiling="blended", model="microisp", target="onnx-fp32", input_size=(192, 192), output=out,
                               overwrite=True))
    assert [p.name for p in out.iterdir()] == ["photo.cr2"]


@pytest.mark.slow
def test_keep_float_must_name_ops_of_the_graph(tmp_path):
    with pytest.raises(InputError, match="has no normalisation layers"):
        pipeline.convert(ConvertOptions(tiling="blended", model="pynet-v2-mobile-nonorm", target="cpu-int8", input_size=SIZE,
                               keep_float=("norm",), output=tmp_path / "x"))
    with pytest.raises(InputError, match="no SOFTMAX op"):
        pipeline.convert(ConvertOptions(tiling="blended", model="pynet-v2-mobile-nonorm", target="cpu-int8", input_size=SIZE,
                               keep_float=("SOFTMAX",), output=tmp_path / "x"))
    with pytest.raises(InputError, match="no Softmax op"):
        pipeline.convert(ConvertOptions(tiling="blended", model="microisp", target="openvino-int8", input_size=(192, 192),
                               keep_float=("Softmax",), output=tmp_path / "x"))
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(("opts", "error", "words"), [
    ({"target": "nnapi-int9"}, UnknownNameError, "Did you mean 'nnapi-int8'"),
    ({"model": "pynet-v3"}, UnknownNameError, "unknown model"),
    ({"input_size": (164, 224)}, InputError, "multiples of 8"),
    ({"input_size": (16, 16)}, InputError, "too small"),
])
def test_bad_options_fail_clearly(tmp_path, opts, error, words):
    with pytest.raises(error, match=words):
        pipeline.convert(ConvertOptions(**{"tiling": "blended", "model": MODEL, "target": "onnx-fp32", "output": tmp_path / "x", **opts}))
    assert not (tmp_path / "x").exists()


def test_unreadable_calibration_file_fails_clearly(tmp_path):
    calib = tmp_path / "calib"
    calib.mkdir()
    (calib / "broken.dng").write_bytes(b"not a dng at all")
    with pytest.raises(InputError, match="broken.dng"):
        pipeline.convert(ConvertOptions(tiling="blended", model="microisp", target="cpu-int8", input_size=(192, 192), calib_dir=calib,
                               output=tmp_path / "x"))


@pytest.mark.slow
def test_load_bundle_detects_incomplete(tmp_path, bundles):
    import shutil

    src = bundles.get(MODEL, "openvino-fp32").bundle.path
    copy = tmp_path / "copy"
    shutil.copytree(src, copy)
    assert load_bundle(copy).target == "openvino-fp32"
    (copy / "model.bin").unlink()
    with pytest.raises(BundleError, match="model.bin is missing"):
        load_bundle(copy)
    with pytest.raises(BundleError, match="not an edge-isp bundle"):
        load_bundle(tmp_path)


@pytest.mark.slow
def test_bundles_say_which_weights_they_carry(tmp_path):
    import subprocess
    import sys

    random = pipeline.convert(ConvertOptions(tiling="blended", model="microisp", target="onnx-fp32", input_size=(192, 192), output=tmp_path / "r"))
    assert random.manifest["model"]["weights_kind"] == "random"
    packaged = pipeline.convert(ConvertOptions(tiling="blended", target="onnx-fp32", weights=Path("default"), output=tmp_path / "p"))
    assert packaged.manifest["model"]["weights_kind"] == "packaged"
    assert packaged.manifest["model"]["name"] == "pynet-v2-mobile-nonorm"
    with pytest.raises(InputError, match="no packaged weights"):
        pipeline.convert(ConvertOptions(tiling="blended", model="microisp", target="onnx-fp32", weights=Path("default"), output=tmp_path / "x"))
    # --tiling blended: microisp's two-pass window is at least 720x720 (minutes of statistics here).
    proc = subprocess.run([sys.executable, "-m", "edge_isp.cli", "convert", "microisp", "--target", "onnx-fp32",
                           "--input-size", "192x192", "--tiling", "blended", "-o", str(tmp_path / "cli")],
                          capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "weights: init(seed=0) (random)" in proc.stdout
    assert proc.stderr.count("warning:") == 1 and "random weights" in proc.stderr
