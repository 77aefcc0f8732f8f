"""Op-support checker: tables, TFLite reader, delegate rules, partitions, CLI, fit options.

Expectations come from the sources the tables were written from
(tests/data/reference/tflite_nnapi.json, tflite_gpu.json - copies of ../shared/reference - and FACTS.md: LiteRT
nnapi_delegate.cc / model_builder.cc), not from the checker's own output. Small TFLite
models are built here with tf.lite.TFLiteConverter for specific ops; real models come from
the conversion pipeline (slow).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_isp.cli import app
from edge_isp.converters import support
from edge_isp.converters.check import (
    CHECK_FUNCTIONS,
    DelegationError,
    check_artifact,
    check_bundle,
    partition_graph,
    require_delegation,
)
from edge_isp.converters.support import FEATURE_LEVELS, SupportTableError, load_table, validate_all
from edge_isp.converters.tflite_reader import TfliteFormatError, parse_tflite, read_tflite
from edge_isp.errors import InputError, UnknownNameError

REFERENCE = Path(__file__).resolve().parent / "data" / "reference"  # copies of ../shared/reference
FL7 = FEATURE_LEVELS[7]


def _reference(name: str) -> dict:
    path = REFERENCE / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: the repository is incomplete")
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------- tables

def test_builtin_tables_load_and_cover_every_support_table_of_the_targets():
    from edge_isp.converters.targets import list_targets

    names = {t.name for t in validate_all()}
    assert {"nnapi", "gpu", "xnnpack", "openvino-cpu", "onnxruntime-cpu"} <= names
    # Vela targets have no static table: the vendor compiler is the oracle.
    assert {t.support_table for t in list_targets() if t.format != "vela"} <= names
    assert set(support.CHECKS) == set(CHECK_FUNCTIONS)


def test_nnapi_table_levels_match_the_delegate_source():
    """min level and max op version per op as read from nnapi_delegate.cc (tflite_nnapi.json)."""
    table = load_table("nnapi")
    ref = _reference("tflite_nnapi.json")
    for row in ref["ops"]:
        entry = table.op(row["tflite_op"])
        assert entry is not None, row["tflite_op"]
        assert entry.min_level == row["min_android_api"], row["tflite_op"]
        mv = row["max_op_version"]
        if isinstance(mv, int):
            assert entry.max_version == mv, row["tflite_op"]
        elif mv == "no check":
            assert entry.max_version is None, row["tflite_op"]
        assert entry.source.startswith("delegate"), row["tflite_op"]
    # The delegate-wide facts (FACTS.md, nnapi_delegate.h).
    d = table.delegate
    assert (d.min_level, d.max_partitions, d.int8_as_uint8_below, d.accelerator_only_from) == (27, 3, 30, 1000006)


def test_gpu_table_matches_the_gpu_source():
    table = load_table("gpu")
    ref = _reference("tflite_gpu.json")
    for row in ref["ops"]:
        for name in row["tflite_op"].split("/"):
            entry = table.op(name)
            assert entry is not None, name
            if isinstance(row["max_op_version"], int):
                assert entry.max_version == row["max_op_version"], name
    assert table.delegate.max_partitions == 1 and table.delegate.max_rank == 4


def _copy_tables(tmp_path: Path) -> Path:
    folder = tmp_path / "profiles" / "ops"
    folder.mkdir(parents=True)
    for p in support.builtin_tables_dir().glob("*.toml"):
        shutil.copy(p, folder / p.name)
    return folder.parent


@pytest.mark.parametrize("old, new, expect", [
    ("min_level = 27\nmax_version = 5", "min_levle = 27\nmax_version = 5", "did you mean 'min_level'"),
    ('check = "dilation_is_one"', 'check = "dilation_is_1"', "unknown check"),
    ('values = ["float32", "quant8"], reason = "NNAPI CONV_2D', 'values = ["flaot32", "quant8"], reason = "NNAPI CONV_2D',
     "unknown tensor type 'flaot32'"),
    ("[ops.DEPTH_TO_SPACE]", "[ops.DEPTH_TO_SPACES]", "not a TFLite builtin"),
    ('min_level = "FL7"', 'min_level = "FL9"', "not an API level"),
    ('max_partitions = 3', 'max_partitions = "3"', "max_partitions"),
    ('source = "delegate L3468-3473"', 'source = "delegat L3468-3473"', "[sources]"),
    ('[ops.MAX_POOL_2D]', '[ops.MAX_POOL_2D', "not valid TOML"),
])
def test_a_table_with_a_typo_is_one_clear_error(tmp_path, old, new, expect):
    root = _copy_tables(tmp_path)
    path = root / "ops" / "nnapi.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(SupportTableError) as info:
        load_table("nnapi", root)
    assert expect in str(info.value) and "nnapi.toml" in str(info.value)
    assert isinstance(info.value, InputError)


def test_user_profiles_dir_replaces_a_builtin_table(tmp_path, tiny_models):
    root = _copy_tables(tmp_path)
    path = root / "ops" / "nnapi.toml"
    path.write_text(path.read_text().replace('[ops.DEPTH_TO_SPACE]\nnnapi = "DEPTH_TO_SPACE"\nmin_level = 27',
                                             '[ops.DEPTH_TO_SPACE]\nnnapi = "DEPTH_TO_SPACE"\nmin_level = 31'))
    model = tiny_models["d2s"]
    assert check_bundle(model, "nnapi-fp16", api_level=30).verdict == "full"
    assert check_bundle(model, "nnapi-fp16", api_level=30, profiles_dir=root).verdict == "none"
    with pytest.raises(InputError):
        check_bundle(model, "nnapi-fp16", profiles_dir=tmp_path / "missing")


# ----------------------------------------------------------------------------- partitions

def test_partitioning_follows_tflite_epochs():
    # a(s) -> b(u) -> c(s): three subsets in order.
    chain = [(["x"], ["a"]), (["a"], ["b"]), (["b"], ["c"])]
    assert partition_graph(chain, [True, False, True]) == [(True, [0]), (False, [1]), (True, [2])]
    # Two supported branches around one unsupported op merge into one subset when they do
    # not depend on it: x -> a(s), x -> b(u), a -> c(s), (c, b) -> d(s).
    graph = [(["x"], ["a"]), (["x"], ["b"]), (["a"], ["c"]), (["c", "b"], ["d"])]
    assert partition_graph(graph, [True, False, True, True]) == [(True, [0, 2]), (False, [1]), (True, [3])]
    # Constants / graph inputs (never produced) are always ready.
    assert partition_graph([(["w"], ["a"])], [True]) == [(True, [0])]


# ----------------------------------------------------------------------------- tiny TFLite models

def _build(fn, shape, int8: bool = False) -> bytes:
    import tensorflow as tf

    f = tf.function(fn, input_signature=[tf.TensorSpec(shape, tf.float32)])
    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    if int8:
        rng = np.random.default_rng(0)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([rng.random(shape, dtype=np.float32)] for _ in range(4))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(1)
    w = tf.constant(rng.standard_normal((3, 3, 8, 16)).astype(np.float32) * 0.1)
    b = tf.constant(np.zeros(16, np.float32))
    pad = [[0, 0], [1, 1], [1, 1], [0, 0]]
    w2 = tf.constant(rng.standard_normal((3, 3, 4, 4)).astype(np.float32) * 0.1)

    def conv(x):
        return tf.nn.conv2d(x, w2, 1, "SAME") + tf.constant(np.ones(4, np.float32))

    def padded_chain(x):  # conv | mirror pad | conv | mirror pad | conv | mirror pad | conv ...
        for _ in range(4):
            x = conv(conv(x)) if _ else conv(x)
            x = tf.pad(x, pad, mode="REFLECT")[:, 1:-1, 1:-1, :]
        return conv(x)

    specs = {
        "mirror": (lambda x: tf.pad(x, pad, mode="REFLECT") * 2.0, (1, 8, 12, 4), False),
        "symmetric": (lambda x: tf.pad(x, pad, mode="SYMMETRIC") * 2.0, (1, 8, 12, 4), False),
        "resize_hpc": (lambda x: tf.compat.v1.image.resize_bilinear(x, (16, 24), half_pixel_centers=True),
                       (1, 8, 12, 4), False),
        "d2s": (lambda x: tf.nn.depth_to_space(x, 2), (1, 8, 12, 16), False),
        "transpose6": (lambda x: tf.reshape(tf.transpose(tf.reshape(x, (1, 8, 12, 4, 2, 2)), (0, 1, 4, 2, 5, 3)),
                                            (1, 16, 24, 4)), (1, 8, 12, 16), False),
        "conv_int8": (lambda x: tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME") + b), (1, 8, 12, 8), True),
        "padded_chain": (padded_chain, (1, 8, 12, 4), False),
    }
    folder = tmp_path_factory.mktemp("tiny")
    out = {}
    for name, (fn, shape, int8) in specs.items():
        path = folder / f"{name}.tflite"
        path.write_bytes(_build(fn, shape, int8))
        out[name] = path
    return out


def _rejected_ops(report) -> dict[str, str]:
    return {o.op: o.reason for o in report.ops if not o.delegated}


def test_reader_reads_ops_versions_options_and_quantisation(tiny_models):
    m = read_tflite(tiny_models["conv_int8"])
    (op,) = m.operators
    assert op.op == "CONV_2D" and op.version >= 2
    assert op.options["fused_activation_function"] == "RELU" and op.options["dilation_w_factor"] == 1
    x, w, bias = m.op_inputs(op)
    assert x.dtype == "int8" and x.shape == (1, 8, 12, 8) and not x.constant
    assert w.constant and w.shape == (16, 3, 3, 8) and w.quantization.per_channel
    assert read_tflite(tiny_models["mirror"]).operators[0].options == {"mode": "REFLECT"}
    opts = read_tflite(tiny_models["resize_hpc"]).operators[0].options
    assert opts["half_pixel_centers"] is True and opts["align_corners"] is False


def test_not_a_tflite_file_or_truncated_is_one_clear_error(tmp_path, tiny_models):
    junk = tmp_path / "model.tflite"
    junk.write_bytes(b"this is not a flatbuffer at all")
    with pytest.raises(TfliteFormatError, match="not a TFLite model"):
        read_tflite(junk)
    data = tiny_models["conv_int8"].read_bytes()
    with pytest.raises(TfliteFormatError, match="truncated or corrupt"):
        parse_tflite(data[: len(data) // 3])
    with pytest.raises(InputError):
        check_bundle(tmp_path / "nope.tflite", "gpu-fp16")


def test_mirror_pad_needs_feature_level_7_and_a_named_accelerator(tiny_models):
    """MIRROR_PAD: min FL7 (1000007) in nnapi_delegate.cc; FL6/7 only on the target-device path."""
    model = tiny_models["mirror"]
    for api in (29, 30, 33):
        r = check_bundle(model, "nnapi-fp16", api_level=api)
        assert "MIRROR_PAD" in _rejected_ops(r) and r.verdict == "partial"
        assert "FL7" in _rejected_ops(r)["MIRROR_PAD"]
    assert "accelerator" in _rejected_ops(check_bundle(model, "nnapi-fp16", api_level=33))["MIRROR_PAD"]
    assert check_bundle(model, "nnapi-fp16", api_level="FL7").verdict == "full"
    # Android 13 + a named accelerator: the runtime feature level (FL8) is compared.
    assert check_bundle(model, "nnapi-fp16", api_level=33, accelerator="google-edgetpu").verdict == "full"
    # GPU: REFLECT is supported, SYMMETRIC is not (gpu_compatibility.cc).
    assert check_bundle(model, "gpu-fp16").verdict == "full"
    r = check_bundle(tiny_models["symmetric"], "gpu-fp16")
    assert "MIRROR_PAD" in _rejected_ops(r) and "REFLECT" in _rejected_ops(r)["MIRROR_PAD"]


def test_nothing_is_delegated_below_api_27(tiny_models):
    r = check_bundle(tiny_models["d2s"], "nnapi-fp16", api_level=26)
    assert r.verdict == "none" and r.ops_delegated == 0 and "27" in r.ops[0].reason
    assert check_bundle(tiny_models["d2s"], "nnapi-fp16", api_level=27).verdict == "full"


def test_resize_half_pixel_centers_needs_api_30(tiny_models):
    model = tiny_models["resize_hpc"]
    r29 = check_bundle(model, "nnapi-fp16", api_level=29)
    assert r29.verdict == "none" and "half_pixel_centers" in r29.ops[0].reason
    assert check_bundle(model, "nnapi-fp16", api_level=30).verdict == "full"


def test_rank_6_transpose_is_refused_by_gpu_and_nnapi(tiny_models):
    model = tiny_models["transpose6"]
    gpu = check_bundle(model, "gpu-fp16")
    assert gpu.verdict == "none" and all(not o.delegated for o in gpu.ops)
    assert "rank" in _rejected_ops(gpu)["RESHAPE"]
    nnapi = check_bundle(model, "nnapi-fp16", api_level="FL8")
    assert nnapi.verdict == "none"
    assert "version 6" in _rejected_ops(nnapi)["TRANSPOSE"]   # max op version 2 in the delegate
    assert "rank" in _rejected_ops(nnapi)["RESHAPE"]
    # The fit: DEPTH_TO_SPACE runs from API 27 and on the GPU.
    assert check_bundle(tiny_models["d2s"], "nnapi-fp16", api_level=27).verdict == "full"
    assert check_bundle(tiny_models["d2s"], "gpu-fp16").verdict == "full"


def test_int8_conv_needs_api_29_and_is_passed_as_uint8_below_30(tiny_models):
    model = tiny_models["conv_int8"]
    r28 = check_bundle(model, "nnapi-int8", api_level=28)
    assert r28.verdict == "none" and "uint8" in r28.ops[0].reason
    r29 = check_bundle(model, "nnapi-int8", api_level=29)
    assert r29.verdict == "full" and "uint8" in (r29.ops[0].note or "")
    assert any("int8 tensors" in n for n in r29.notes)
    r30 = check_bundle(model, "nnapi-int8", api_level=30)
    assert r30.verdict == "full" and not r30.ops[0].note
    # The CPU path runs everything.
    assert check_bundle(model, "cpu-int8").verdict == "full"


def test_partition_limit_keeps_the_three_largest(tiny_models):
    """Default max_number_delegated_partitions = 3 (nnapi_delegate.h); 0 = no limit."""
    model = tiny_models["padded_chain"]
    r = check_bundle(model, "nnapi-fp16", api_level=30)
    delegated_kinds = [p for p in r.partitions if p.delegated or p.dropped]
    assert len(delegated_kinds) > 3
    assert r.delegated_partitions == 3 and r.limited
    kept = sorted(len(p.ops) for p in r.partitions if p.delegated)
    dropped = [len(p.ops) for p in r.partitions if p.dropped]
    assert min(kept) >= max(dropped)
    unlimited = check_bundle(model, "nnapi-fp16", api_level=30, max_partitions=0)
    assert unlimited.delegated_partitions == len(delegated_kinds) and not unlimited.limited
    assert unlimited.ops_on_cpu == sum(1 for o in unlimited.ops if o.op == "MIRROR_PAD")
    # GPU: only the largest partition by default; all MIRROR_PADs are fine there.
    assert check_bundle(model, "gpu-fp16").verdict == "full"


def test_level_and_target_errors(tiny_models):
    model = tiny_models["d2s"]
    with pytest.raises(UnknownNameError, match="did you mean|Did you mean"):
        check_bundle(model, "nnapi-int9")
    with pytest.raises(InputError, match="not an API level"):
        check_bundle(model, "nnapi-fp16", api_level="FL12")
    with pytest.raises(InputError, match="not an API level"):
        check_bundle(model, "nnapi-fp16", api_level=7)
    with pytest.raises(InputError, match="--target"):
        check_bundle(model)
    with pytest.raises(InputError, match="openvino"):
        check_bundle(model, "openvino-fp32")
    with pytest.raises(InputError, match="no-such-phone"):
        check_bundle(model, "nnapi-fp16", device="no-such-phone")


def test_device_profile_gives_api_level_and_accelerator(tmp_path, tiny_models):
    devices = tmp_path / "prof" / "devices"
    devices.mkdir(parents=True)
    (devices / "test-phone-13.toml").write_text(
        'name = "test-phone-13"\naliases = ["tp13"]\nos = "android"\n'
        '[android]\nlaunch_api = 33\napi_levels = [33, 34]\nnnapi_feature_level = 8\n'
        '[[accelerators]]\nname = "npu"\nkind = "npu"\nnnapi_name = "vendor-npu"\ndelegates = ["nnapi"]\n'
        'targets = ["nnapi-int8", "nnapi-fp16"]\n')
    (devices / "test-phone-10.toml").write_text(
        'name = "test-phone-10"\nos = "android"\n[android]\nlaunch_api = 29\nnnapi_feature_level = 3\n')
    prof = tmp_path / "prof"
    r = check_bundle(tiny_models["mirror"], "nnapi-fp16", device="tp13", profiles_dir=prof)
    assert r.device == "test-phone-13" and r.accelerator == "vendor-npu" and r.verdict == "full", (r.accelerator, r.level, r.notes[:1])
    r = check_bundle(tiny_models["mirror"], "nnapi-fp16", device="test-phone-10", profiles_dir=prof)
    assert r.level == 29 and r.accelerator is None and r.verdict == "partial"
    # The built-in Pixel 7 profile names the Edge TPU: MIRROR_PAD (FL7) is reachable.
    r = check_bundle(tiny_models["mirror"], "nnapi-fp16", device="pixel-7")
    assert r.accelerator == "google-edgetpu" and r.verdict == "full"


def test_report_dict_is_json_safe_and_require(tiny_models):
    r = check_artifact(tiny_models["mirror"], "nnapi-fp16")   # default level of the target: API 29
    d = json.loads(json.dumps(r.to_dict()))
    assert d["verdict"] == "partial" and d["counts"]["ops_total"] == 2 and d["level"] == 29
    assert d["rejected"][0]["op"] == "MIRROR_PAD" and d["rejected"][0]["ops"] == [0]
    assert "MIRROR_PAD x1" in r.summary_line()
    with pytest.raises(DelegationError) as info:
        require_delegation(r, "full")
    assert info.value.exit_code != 0 and "MIRROR_PAD" in str(info.value)
    require_delegation(r, "partial")
    with pytest.raises(DelegationError):
        require_delegation(check_bundle(tiny_models["resize_hpc"], "nnapi-fp16", api_level=29), "partial")


# ----------------------------------------------------------------------------- CLI

def test_cli_check_json_exit_codes_and_errors(tmp_path, tiny_models):
    runner = CliRunner()
    model = str(tiny_models["mirror"])
    res = runner.invoke(app, ["check", model, "--target", "nnapi-fp16", "--api-level", "30", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["verdict"] == "partial" and data["level"] == 30
    res = runner.invoke(app, ["check", model, "--target", "nnapi-fp16", "--api-level", "FL7"])
    assert res.exit_code == 0 and "full delegation" in res.output
    res = runner.invoke(app, ["check", model, "--target", "nnapi-fp16", "--api-level", "30", "--require", "full"])
    assert isinstance(res.exception, DelegationError) and res.exception.exit_code == 1
    res = runner.invoke(app, ["check", model, "--target", "gpu-fp16", "--require", "full"])
    assert res.exit_code == 0
    # The console entry point turns errors into one line and a non-zero exit.
    import subprocess
    import sys

    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\0" * 64)
    for args, text in [([str(junk), "--target", "gpu-fp16"], "not a TFLite model"),
                       ([model, "--target", "nnapi-int9"], "unknown target"),
                       ([model, "--target", "nnapi-fp16", "--api-level", "99"], "not an API level")]:
        proc = subprocess.run([sys.executable, "-c", "from edge_isp.cli import main; main()", "check", *args],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 3, proc.stderr
        assert text in proc.stderr and "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- fit options (ONNX level)

def test_pixel_shuffle_dcr_rewrite_is_exact(tmp_path):
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    from edge_isp.converters.fit import FitOptions, rewrite_onnx
    from edge_isp.converters.onnx_export import export_onnx

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(8, 12, 3, padding=1)
            self.pre = torch.nn.Conv2d(8, 8, 1, padding=0, padding_mode="reflect")
            self.act = torch.nn.PReLU(12)
            self.shuffle = torch.nn.PixelShuffle(2)

        def forward(self, x):
            a, b = torch.split(self.pre(x), 4, dim=1)
            return self.shuffle(self.act(self.conv(torch.cat([b, a * 2.0], dim=1))))

    torch.manual_seed(0)
    model = Head().eval()
    with torch.no_grad():
        model.act.weight.copy_(torch.linspace(-0.5, 0.5, 12))
    path = tmp_path / "head.onnx"
    export_onnx(model, (1, 8, 10, 14), path)
    x = np.random.default_rng(0).standard_normal((1, 8, 10, 14)).astype(np.float32)
    before = ort.InferenceSession(str(path)).run(None, {"bayer": x})[0]
    changed = rewrite_onnx(path, FitOptions(pixel_shuffle="dcr", drop_noop_pads=True, split_as_slice=True))
    assert changed == {"depth_to_space_dcr": 1, "depth_to_space_deconv": 0, "noop_pads_removed": 1,
                       "splits_as_slices": 1, "reflect_pads_as_slices": 0, "resizes_as_depth_to_space": 0,
                       "resizes_as_nearest_conv": 0}
    import onnx

    g = onnx.load(str(path)).graph
    d2s = [n for n in g.node if n.op_type == "DepthToSpace"][0]
    assert {a.name: a.s for a in d2s.attribute}["mode"] == b"DCR"
    assert not [n for n in g.node if n.op_type in ("Pad", "Split")]
    after = ort.InferenceSession(str(path)).run(None, {"bayer": x})[0]
    np.testing.assert_array_equal(before, after)
    with pytest.raises(InputError):
        FitOptions.parse({"pixel_shufle": "dcr"})


def test_pixel_shuffle_dcr_without_a_conv_to_fold_into_uses_an_exact_gather(tmp_path):
    """MicroISP-like: an Add feeds the shuffle, so the permutation becomes a Gather; still exact."""
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    import onnx

    from edge_isp.converters.fit import FitOptions, rewrite_onnx
    from edge_isp.converters.onnx_export import export_onnx

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Conv2d(4, 12, 3, padding=1)
            self.b = torch.nn.Conv2d(4, 12, 1)

        def forward(self, x):
            return torch.nn.functional.pixel_shuffle(self.a(x) + self.b(x), 2)

    path = tmp_path / "add_shuffle.onnx"
    export_onnx(Head().eval(), (1, 4, 6, 8), path)
    x = np.random.default_rng(2).standard_normal((1, 4, 6, 8)).astype(np.float32)
    before = ort.InferenceSession(str(path)).run(None, {"bayer": x})[0]
    assert rewrite_onnx(path, FitOptions(pixel_shuffle="dcr"))["depth_to_space_dcr"] == 1
    nodes = onnx.load(str(path)).graph.node
    ops = [n.op_type for n in nodes]
    assert ops.index("Gather") == ops.index("DepthToSpace") - 1
    d2s = nodes[ops.index("DepthToSpace")]
    assert {a.name: a.s for a in d2s.attribute}["mode"] == b"DCR"
    np.testing.assert_array_equal(before, ort.InferenceSession(str(path)).run(None, {"bayer": x})[0])


@pytest.mark.parametrize("r,channels", [(2, 12), (3, 18)])
def test_pixel_shuffle_deconv_rewrite_is_exact(tmp_path, r, channels):
    """DepthToSpace as a one-hot ConvTranspose (for NPUs without DEPTH_TO_SPACE) changes nothing."""
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    import onnx

    from edge_isp.converters.fit import FitOptions, one_hot_deconv_weights, rewrite_onnx
    from edge_isp.converters.onnx_export import export_onnx

    # A 1x1 reflect-padded conv exports an all-zero Pad: both rewrites together (as Ethos-U's fit).
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 1, padding_mode="reflect"),
                                torch.nn.Conv2d(4, channels, 3, padding=1), torch.nn.PixelShuffle(r)).eval()
    path = tmp_path / "shuffle.onnx"
    export_onnx(model, (1, 4, 6, 10), path)
    x = np.random.default_rng(1).standard_normal((1, 4, 6, 10)).astype(np.float32)
    before = ort.InferenceSession(str(path)).run(None, {"bayer": x})[0]
    changed = rewrite_onnx(path, FitOptions(pixel_shuffle="deconv", drop_noop_pads=True))
    assert changed["depth_to_space_deconv"] == 1 and changed["noop_pads_removed"] == 1
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert "DepthToSpace" not in ops and "Pad" not in ops and ops.count("ConvTranspose") == 1
    after = ort.InferenceSession(str(path)).run(None, {"bayer": x})[0]
    assert after.shape == before.shape == (1, channels // (r * r), 6 * r, 10 * r)
    np.testing.assert_array_equal(before, after)
    # The weights are one-hot: each input channel feeds exactly one output sub-pixel.
    w = one_hot_deconv_weights(channels, r, "CRD")
    assert w.sum() == channels and (w.reshape(channels, -1).sum(axis=1) == 1).all()
    with pytest.raises(InputError, match="pixel_shuffle"):
        FitOptions.parse({"pixel_shuffle": "transpose"})


# ----------------------------------------------------------------------------- real conversions

SIZE = (160, 224)  # RAW mosaic: H/2, W/2 at every level differ from the channel counts


@pytest.fixture(scope="module")
def converted():
    """A few real conversions (pynet-v2-mobile), from the session's shared factory."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx2tf")
    from _bundles import convert_once

    def get(name: str):
        # gpu-fp16 applies its fit rewrites by default; "gpu-default" turns them off.
        kw: dict = {"model": "pynet-v2-mobile", "target": "gpu-fp16",
                    "fit": {"pixel_shuffle": "crd", "drop_noop_pads": False}}
        if name == "gpu-fit":
            kw["fit"] = {"pixel_shuffle": "dcr", "drop_noop_pads": True}
        elif name == "int8-fit":
            kw = {"model": "pynet-v2-mobile-nonorm", "target": "nnapi-int8", "model_options": {"padding": "zero"},
                  "fit": {"pixel_shuffle": "dcr", "drop_noop_pads": True, "split_as_slice": True}}
        return convert_once(kw.pop("target"), kw.pop("model"), SIZE, **kw)

    return get


def _ops_of(result) -> list:
    return read_tflite(result.bundle.model_file).operators


@pytest.mark.slow
def test_real_default_model_is_split_by_pixel_shuffle_and_mirror_pad(converted):
    result = converted("gpu-default")
    ops = _ops_of(result)
    m = read_tflite(result.bundle.model_file)
    # What TOOLCHAIN.md says onnx2tf makes: reflect pad -> MIRROR_PAD, PixelShuffle -> 6-D TRANSPOSE.
    assert any(o.op == "MIRROR_PAD" for o in ops)
    six_d = [o for o in ops if o.op == "TRANSPOSE" and m.op_inputs(o)[0].rank == 6]
    assert six_d
    gpu = check_bundle(result.bundle.path)          # the bundle's own target: gpu-fp16
    assert gpu.verdict == "partial" and gpu.delegated_partitions == 1
    refused = {g["op"] for g in gpu.rejected_groups()}
    assert {"RESHAPE", "TRANSPOSE"} <= refused       # rank 6 (IsAllAllowedTensors) / op version
    for api in (29, 30):
        nn = check_bundle(result.bundle.path, "nnapi-fp16", api_level=api)
        assert nn.verdict == "partial"
        assert "MIRROR_PAD" in {g["op"] for g in nn.rejected_groups()}


@pytest.mark.slow
def test_real_fit_options_make_the_gpu_and_nnapi_fl7_take_everything(converted):
    before, after = converted("gpu-default"), converted("gpu-fit")
    v0, v1 = before.manifest["verification"], after.manifest["verification"]
    assert v1["passed"] and v1["psnr_db"] >= v0["psnr_db"] - 0.5   # exact rewrite: no numeric cost
    m = read_tflite(after.bundle.model_file)
    ops = m.operators
    assert any(o.op == "DEPTH_TO_SPACE" for o in ops)
    assert max(t.rank for t in m.tensors) <= 4
    # Independent expectation from tflite_gpu.json: every op type is in the GPU list and
    # within its max op version; no rank >= 5 -> the GPU delegate takes all.
    gpu_ref = {n: row["max_op_version"] for row in _reference("tflite_gpu.json")["ops"]
               for n in row["tflite_op"].split("/")}
    assert all(o.op in gpu_ref and (not isinstance(gpu_ref[o.op], int) or o.version <= gpu_ref[o.op])
               for o in ops)
    report = check_bundle(after.bundle.path)
    assert report.verdict == "full" and report.delegated_partitions == 1
    assert check_bundle(after.bundle.path, "nnapi-fp16", api_level="FL7").verdict == "full"
    # At API 30 MIRROR_PAD (FL7) still splits the graph.
    assert check_bundle(after.bundle.path, "nnapi-fp16", api_level=30).verdict == "partial"


@pytest.mark.slow
def test_real_int8_nonorm_zero_pad_fit_is_fully_delegated_from_api_30(converted):
    result = converted("int8-fit")
    assert result.manifest["verification"]["passed"]
    ops = {o.op for o in _ops_of(result)}
    assert "MIRROR_PAD" not in ops and "RSQRT" not in ops and "DEPTH_TO_SPACE" in ops
    r30 = check_bundle(result.bundle.path, api_level=30)
    assert r30.verdict == "full", r30.to_text()
    # split_as_slice: no SPLIT (int8 SPLIT needs API 30), STRIDED_SLICE instead (quant8 from API 28).
    assert "SPLIT" not in ops and "STRIDED_SLICE" in ops
    # API 29: what is left is RESIZE_BILINEAR with half_pixel_centers (needs API 30,
    # nnapi_delegate.cc L2643-2682), which splits the graph.
    r29 = check_bundle(result.bundle.path, api_level=29)
    assert {g["op"] for g in r29.rejected_groups()} == {"RESIZE_BILINEAR"}


# ----------------------------------------------------------------------------- OpenVINO / ONNX

@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch")
    from edge_isp.converters.onnx_export import export_onnx

    model = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.PReLU(8),
                                torch.nn.Conv2d(8, 12, 1), torch.nn.PixelShuffle(2)).eval()
    path = tmp_path_factory.mktemp("onnx") / "small.onnx"
    export_onnx(model, (1, 4, 12, 20), path)
    return path


def test_openvino_ir_is_checked_by_asking_the_cpu_plugin(tmp_path, small_onnx, monkeypatch):
    ov = pytest.importorskip("openvino")
    xml = tmp_path / "model.xml"
    ov.save_model(ov.convert_model(str(small_onnx)), str(xml))
    report = check_bundle(xml, "openvino-fp32")
    assert report.verdict == "full" and report.ops_total >= 4
    assert {o.op for o in report.ops} >= {"Convolution", "PRelu"}
    # An op the plugin does not claim is reported with the plugin as the reason.
    real = ov.Core.query_model

    def without_prelu(self, model, device, *args, **kwargs):
        answer = dict(real(self, model, device, *args, **kwargs))
        return {k: v for k, v in answer.items()
                if not any(op.get_friendly_name() == k and op.get_type_name() == "PRelu" for op in model.get_ops())}

    monkeypatch.setattr(ov.Core, "query_model", without_prelu)
    report = check_bundle(xml, "openvino-fp32")
    assert report.verdict == "partial" and _rejected_ops(report) == {
        "PRelu": "PRelu is not supported by the OpenVINO CPU plugin (query_model)"}


def test_onnx_for_onnxruntime_cpu_runs_whole(small_onnx):
    report = check_bundle(small_onnx, "onnx-fp32")
    assert report.verdict == "full" and "DepthToSpace" in {o.op for o in report.ops}
