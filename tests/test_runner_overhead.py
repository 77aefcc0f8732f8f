"""The runner-vs-runtime measurement (issue #16): the raw call runs the same model on the
same runtime objects, so the ratio is the runner's own cost and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from edge_isp import runner_overhead
from edge_isp.errors import InputError
from edge_isp.runtimes.base import decode_output, encode_input
from edge_isp.runtimes.bundle_runner import open_bundle, open_model

from test_runtimes import converted  # noqa: E402 - the session's shared real bundles


@pytest.mark.parametrize("target", ["onnx-fp32", "openvino-fp32", "cpu-fp32"])
def test_the_raw_call_is_the_same_model(target):
    loaded = open_bundle(converted(target), threads=1)
    x = loaded.example_input(3)
    raw = runner_overhead.RAW_CALLS[loaded.runtime](loaded.runner, encode_input(x, loaded.runner.input_spec))
    got = raw()
    got = got[0] if isinstance(got, list) else got
    if not isinstance(got, np.ndarray):                    # OpenVINO: a result keyed by output
        got = got[loaded.runner._compiled.outputs[0]]      # noqa: SLF001
    np.testing.assert_array_equal(decode_output(np.asarray(got), loaded.runner.output_spec), loaded.run(x))


def test_measure_reports_interleaved_medians():
    loaded = open_bundle(converted("onnx-fp32"), threads=1)
    row = runner_overhead.measure(loaded, rounds=5, warmup=1)
    assert row.rounds == 5 and row.runtime == "onnxruntime" and row.raw_ms > 0 and row.runner_ms > 0
    assert row.to_dict()["ratio"] == pytest.approx(row.runner_ms / row.raw_ms, rel=1e-3)


def test_runtimes_without_a_direct_call_and_too_few_rounds_are_refused():
    loaded = open_model("microisp", (192, 192))
    with pytest.raises(InputError, match="no direct call known for runtime 'torch'"):
        runner_overhead.measure(loaded, rounds=3)
    with pytest.raises(InputError, match="at least 3"):
        runner_overhead.measure(loaded, rounds=2)


@pytest.mark.parametrize("dtype,zero", [("int8", -128), ("int8", 3), ("uint8", 0)])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_one_pass_codec_equals_the_plain_formulas(dtype, zero, layout):
    from edge_isp.runtimes.base import TensorSpec

    rng = np.random.default_rng(1)
    x = rng.normal(0.5, 0.6, (2, 4, 6, 10)).astype(np.float32)          # some values clip
    shape = (2, 6, 10, 4) if layout == "NHWC" else x.shape
    spec = TensorSpec("t", shape, dtype, layout, scale=1 / 200, zero_point=zero)
    info = np.iinfo(dtype)
    plain = x.transpose(0, 2, 3, 1) if layout == "NHWC" else x
    want = np.clip(np.round(plain / np.float32(spec.scale)) + zero, info.min, info.max).astype(dtype)
    got = encode_input(x, spec)
    assert got.flags.c_contiguous and got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, want)
    back = decode_output(got, spec)
    assert back.flags.c_contiguous and back.dtype == np.float32 and back.shape == x.shape
    plain_back = (got.astype(np.float32) - zero) * np.float32(spec.scale)
    np.testing.assert_array_equal(back, plain_back.transpose(0, 3, 1, 2) if layout == "NHWC" else plain_back)


@pytest.mark.parametrize("target", ["onnx-fp32", "openvino-fp32", "cpu-fp32"])
def test_an_output_survives_the_next_call(target):
    """Runners share buffers with their runtime where they can; what they return must not."""
    loaded = open_bundle(converted(target), threads=1)
    x1, x2 = loaded.example_input(1), loaded.example_input(2)
    y1 = loaded.run(x1)
    kept = y1.copy()
    loaded.run(x2)
    np.testing.assert_array_equal(y1, kept)


def test_the_benchmark_12mp_photo_keeps_the_bayer_phase(tmp_path):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "side_by_side.py"
    spec = importlib.util.spec_from_file_location("side_by_side", script)
    sbs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sbs)
    path, layout = sbs.twelve_mp_raw(tmp_path)
    big = np.fromfile(path, "<u2").reshape(layout["height"], layout["width"])
    chart = np.fromfile(sbs.CHART, "<u2").reshape(1080, 1920)
    assert big.shape == (3024, 4032) and layout["cfa"] == "RGGB"
    np.testing.assert_array_equal(big[:1080, :1920], chart)
    # Mirrored plane by plane: mosaic row 1080 (an R/G row) repeats row 1078, not 1079 (G/B).
    np.testing.assert_array_equal(big[1080, :1920], chart[1078])
    np.testing.assert_array_equal(big[:1080, 1920], chart[:, 1918])
