"""LiteRT NPU AOT targets: ai-edge-litert 2.3.0's vendor plugins in their own toolchain env.

Everything runs the real ``apply_plugin_main`` and vendor plugins from the isolated
toolchain; the session fixture installs it into a temp folder when it is not installed.
The vendor compiler SDKs are not on PyPI (and not reachable here), so Qualcomm, MediaTek and
Google Tensor must fail with the one-line missing-SDK message, and Intel partitions offline
but cannot compile (its NPU compiler library is a vendor download too).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edge_isp import toolchains
from edge_isp.converters.tflite_reader import read_tflite
from edge_isp.errors import InputError, MissingDependencyError

from _tf_models import int8_tflite

LOG_LINE = re.compile(r"Partitioned subgraph<0>, selected (\d+) ops, from a total of (\d+) ops\. "
                      r"resulted in (\d+) partitions\.")


@pytest.fixture(scope="session")
def aot_env(toolchain_env) -> Path:
    """The litert-aot toolchain (installed into a session temp folder when it is not installed)."""
    path = toolchain_env("litert-aot")
    assert toolchains.status("litert-aot").version == "2.3.0"
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """'isp': full INT8 conv / LeakyReLU / DEPTH_TO_SPACE / MIRROR_PAD / conv (the Intel plugin
    claims all 5); 'fft': an FFT the plugin leaves on the CPU between two claimed parts."""
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(1)
    folder = tmp_path_factory.mktemp("litert")
    w1 = tf.constant(rng.standard_normal((3, 3, 4, 16)).astype(np.float32) * 0.1)
    w2 = tf.constant(rng.standard_normal((3, 3, 4, 3)).astype(np.float32) * 0.1)
    w3 = tf.constant(rng.standard_normal((3, 3, 4, 8)).astype(np.float32) * 0.1)

    def isp(x):
        y = tf.nn.leaky_relu(tf.nn.conv2d(x, w1, 1, "SAME"), 0.2)
        y = tf.nn.depth_to_space(y, 2)
        y = tf.pad(y, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
        return tf.nn.conv2d(y, w2, 1, "VALID")

    def fft(x):
        spec = tf.abs(tf.signal.rfft2d(tf.transpose(x, [0, 3, 1, 2])))[:, :, :, :16]
        return tf.nn.conv2d(tf.transpose(spec, [0, 2, 3, 1])[:, :, :, :4], w3, 1, "SAME")

    return {"isp": int8_tflite(isp, (1, 16, 16, 4), folder / "isp.tflite"),
            "fft": int8_tflite(fft, (1, 16, 16, 4), folder / "fft.tflite", int8_only=False)}


# ----------------------------------------------------------------------------- toolchain env and protocol

def test_missing_toolchain_is_one_clear_error(tmp_path, monkeypatch):
    from edge_isp.converters.litert_aot import check_with_litert_aot

    model = tmp_path / "m.tflite"
    model.write_bytes(b"unused")
    monkeypatch.setenv("EDGE_ISP_TOOLCHAINS", str(tmp_path / "none"))
    with pytest.raises(toolchains.ToolchainError, match="edge-isp toolchain install litert-aot"):
        check_with_litert_aot(model, "litert-npu-intel")


def test_worker_protocol_errors_become_toolchain_errors(aot_env, models, tmp_path):
    with pytest.raises(toolchains.ToolchainError, match="unknown op 'frobnicate'"):
        toolchains.run("litert-aot", {"op": "frobnicate"})
    with pytest.raises(toolchains.ToolchainError, match="unknown vendor 'nokia'"):
        toolchains.run("litert-aot", {"op": "probe", "vendor": "nokia", "soc": "X"})
    with pytest.raises(toolchains.ToolchainError, match="unknown SoC 'SM9999' for qualcomm; known: SA8255"):
        toolchains.run("litert-aot", {"op": "probe", "vendor": "qualcomm", "soc": "SM9999"})
    with pytest.raises(toolchains.ToolchainError, match="KeyError: 'model'"):
        toolchains.run("litert-aot", {"op": "partition", "vendor": "intel", "soc": "LNL"})
    with pytest.raises(toolchains.ToolchainError, match="did not answer 'partition' within"):
        toolchains.run("litert-aot", {"op": "partition", "model": str(models["isp"]), "vendor": "intel", "soc": "LNL",
                                      "output_dir": str(tmp_path)}, timeout=0.01)
    # A bad request schema, sent straight to the worker: a clean error response.
    worker = Path(toolchains.__file__).with_name("toolchain_litert_aot_worker.py")
    proc = subprocess.run([str(aot_env / "bin" / "python"), str(worker)], input='{"op": "version"}',
                          capture_output=True, text=True, timeout=120)
    resp = json.loads(proc.stdout)
    assert resp["ok"] is False and "request schema None" in resp["error"]


def test_stdout_carries_only_the_json_answer(aot_env, models, tmp_path):
    """aot_compile and the native libraries print progress and logs; none of it reaches stdout."""
    worker = Path(toolchains.__file__).with_name("toolchain_litert_aot_worker.py")
    req = {"schema": toolchains.REQUEST_SCHEMA, "op": "compile", "model": str(models["isp"]), "vendor": "intel",
           "soc": "LNL", "output_dir": str(tmp_path / "c")}
    proc = subprocess.run([str(aot_env / "bin" / "python"), str(worker)], input=json.dumps(req),
                          capture_output=True, text=True, timeout=300)
    resp = json.loads(proc.stdout)                     # raises if anything else was printed
    assert resp["schema"] == toolchains.RESPONSE_SCHEMA and resp["ok"] is True
    assert "IntelOpenVINO_LNL" in proc.stderr          # aot_compile's progress went to stderr
    [backend] = resp["backends"]
    assert backend["target"] == "IntelOpenVINO_LNL" and "COMPILATION FAILURES" in resp["compilation_report"]
    assert not list((tmp_path / "c").glob("*.tflite")), "empty outputs of a failed backend are removed"


def test_soc_lists_match_the_installed_vendor_targets(aot_env):
    from edge_isp.converters.targets import LITERT_NPU_SOCS, get_target

    vendors = toolchains.run("litert-aot", {"op": "socs", "probe": False})["vendors"]
    assert set(vendors) >= set(LITERT_NPU_SOCS)
    for vendor, socs in LITERT_NPU_SOCS.items():
        assert tuple(vendors[vendor]["socs"]) == socs, vendor
        tgt = get_target(f"litert-npu-{vendor}")
        assert tgt.accelerator_config in socs and tgt.accelerator_choices == socs
    assert vendors["google-tensor"]["soc_values"]["TENSOR_G4"] == "Tensor_G4"
    intel = toolchains.run("litert-aot", {"op": "socs", "vendors": ["intel"]})["vendors"]["intel"]
    assert intel["plugin"]["loaded"] and set(intel["plugin"]["socs"]) == {"LNL", "PTL"}


def test_unknown_soc_is_an_input_error_before_any_work(tmp_path):
    from edge_isp.converters.litert_aot import check_with_litert_aot
    from edge_isp.converters.pipeline import ConvertOptions, convert
    from edge_isp.converters.targets import resolve_accelerator
    from edge_isp.converters.targets import get_target

    with pytest.raises(InputError, match="litert-npu-qualcomm does not know platform 'SM9999'.*SM8750"):
        convert(ConvertOptions(model="microisp", target="litert-npu-qualcomm", soc="SM9999", output=tmp_path / "b"))
    with pytest.raises(InputError, match="does not know platform 'LNLX'"):
        check_with_litert_aot(tmp_path / "unused.tflite", "litert-npu-intel", soc="LNLX")
    assert resolve_accelerator(get_target("litert-npu-qualcomm"), "sm8750") == "SM8750"
    assert resolve_accelerator(get_target("litert-npu-google-tensor"), "tensor_g5") == "TENSOR_G5"
    assert resolve_accelerator(get_target("litert-npu-intel"), None) == "LNL"
    assert not (tmp_path / "b").exists()


# ----------------------------------------------------------------------------- Intel: the plugin's own placement

def test_intel_partition_claims_every_op_of_the_isp_model(aot_env, models):
    from edge_isp.converters.litert_aot import check_with_litert_aot

    report = check_with_litert_aot(models["isp"], "litert-npu-intel")
    n = len(read_tflite(models["isp"]).operators)
    assert n == 5 and report.ops_total == n
    assert report.verdict == "full" and report.ops_delegated == n and report.delegated_partitions == 1
    m = LOG_LINE.search(" ".join(report.notes))
    assert m and (int(m[1]), int(m[2]), int(m[3])) == (n, n, 1)
    assert report.accelerator == "LNL" and any("partition step" in s for s in report.notes)


def test_intel_partition_placement_matches_the_plugin_log(aot_env, models, tmp_path):
    from edge_isp.converters import litert_aot

    result, resp = litert_aot.partition(models["fft"], "intel", "PTL", tmp_path)
    assert result is not None and resp["partitioned"]
    # The plugin's own numbers ...
    assert (result.claimed, result.total, result.partitions) == (9, 11, 2)
    assert LOG_LINE.fullmatch(result.line)
    # ... equal the per-op placement read from the partitioned model.
    assert result.npu_ops == result.claimed > 0 and len(result.placement) == result.total
    assert sorted(p.op for p in result.placement if p.target == "CPU") == ["COMPLEX_ABS", "RFFT2D"]
    assert [o["op"] for o in resp["main_ops"]] == ["RFFT2D", "COMPLEX_ABS"] and resp["dispatch_ops"] == 2
    assert len({p.partition for p in result.placement if p.target == "NPU"}) == result.partitions
    assert not result.unmatched
    report = litert_aot.aot_report(result, "litert-npu-intel")
    assert report.verdict == "partial" and report.ops_delegated == 9 and report.ops_on_cpu == 2
    assert report.delegated_partitions == 2
    groups = report.rejected_groups()
    assert [g["op"] for g in groups] == ["RFFT2D", "COMPLEX_ABS"]
    assert groups[0]["reason"] == "the LiteRT Intel plugin did not claim it; plugins give no reason"
    text = report.to_text()
    assert "RFFT2D x1" in text and "partition step" in text and "LiteRT Intel NPU plugin" in text
    assert report.summary_line().startswith("litert-npu-intel: partial delegation on LiteRT Intel NPU plugin")
    # edge-isp's own TFLite reader sees the plugin's dispatch ops as what they are (LiteRT writes
    # them as builtin code 0 = ADD plus a custom code), not as ADDs.
    ops = read_tflite(Path(resp["output"])).op_counts()
    assert ops.get("CUSTOM:DISPATCH_OP") == 2 and "ADD" not in ops, ops


def test_intel_compile_fails_on_the_missing_npu_compiler_and_says_what_is_known(aot_env, models, tmp_path,
                                                                             monkeypatch):
    """convert's builder, with the INT8 TFLite build replaced by the small model (the rest is real)."""
    from edge_isp.converters import litert_aot, tflite_build
    from edge_isp.converters.stages import BuiltArtifact
    from edge_isp.converters.targets import get_target

    monkeypatch.setattr(tflite_build, "build", lambda ctx: BuiltArtifact(models["fft"]))
    ctx = _ctx(get_target("litert-npu-intel"), "LNL", tmp_path)
    with pytest.raises(MissingDependencyError) as err:
        litert_aot.build(ctx)
    msg = str(err.value)
    assert "\n" not in msg
    assert "libopenvino_intel_npu_compiler_loader.so" in msg
    assert "the LiteRT Intel plugin would claim 9 of 11 ops in 2 partition(s)" in msg
    assert "edge-isp toolchain install litert-aot --addon intel" in msg and "openvino/libs" in msg
    assert msg.endswith("Nothing was written")


def test_a_successful_compile_is_bundled_with_the_plugins_placement(aot_env, models, tmp_path, monkeypatch):
    """Only aot_compile is stood in for (no vendor compiler here): probe, partition and report are real."""
    from edge_isp.converters import litert_aot, tflite_build
    from edge_isp.converters.stages import BuiltArtifact
    from edge_isp.converters.targets import get_target

    fake_compiled = tmp_path / "compiled.tflite"
    fake_compiled.write_bytes(models["isp"].read_bytes())
    monkeypatch.setattr(tflite_build, "build", lambda ctx: BuiltArtifact(models["isp"]))
    monkeypatch.setattr(litert_aot, "compile_aot", lambda model, vendor, soc, out: litert_aot.CompileResult(
        vendor, soc, True, fake_compiled, [{"subgraph": 0, "selected": 5, "total": 5, "partitions": 1}], "report"))
    built = litert_aot.build(_ctx(get_target("litert-npu-intel"), "PTL", tmp_path))
    assert [p.name for p in built.extra] == ["model_intel_PTL.tflite"] and built.extra[0].is_file()
    assert built.support.verdict == "full" and built.support.ops_delegated == 5
    npu = built.npu
    assert npu["compiled_file"] == "model_intel_PTL.tflite" and npu["verified_artifact"] == "model.tflite"
    assert (npu["claimed_ops"], npu["total_ops"], npu["partitions"]) == (5, 5, 1) and npu["soc"] == "PTL"
    # `edge-isp check` on the bundle reads this section back into the same report.
    again = litert_aot.aot_report(json.loads(json.dumps(npu)), "litert-npu-intel", "model.tflite")
    assert again.summary_line() == built.support.summary_line()


def _ctx(target, soc: str, work: Path):
    from edge_isp.converters.stages import BuildContext, ConvertOptions

    work.mkdir(parents=True, exist_ok=True)
    return BuildContext(ConvertOptions(target=target.name), target, work / "model.onnx", "input", work, None, None, soc)


# ----------------------------------------------------------------------------- vendors whose SDK is missing

@pytest.mark.parametrize("vendor,soc,library,addon_hint", [
    ("qualcomm", "SM8650", "libQnnHtp.so", "lib/x86_64-linux-clang folder on LD_LIBRARY_PATH"),
    ("mediatek", "MT6989", "libneuron_sys_util.mtk.so", "host/lib folder"),
    ("google-tensor", "TENSOR_G4", "liblitert_plugin_compiler.so", "GOOGLE_TENSOR_COMPILER_LIB"),
])
def test_missing_vendor_sdk_is_one_line_saying_which_library_and_how(aot_env, models, vendor, soc, library,
                                                                    addon_hint):
    from edge_isp.converters import litert_aot

    if litert_aot.probe(vendor, soc)["can_partition"]:
        pytest.skip(f"the {vendor} SDK is installed here")
    with pytest.raises(MissingDependencyError) as err:
        litert_aot.check_with_litert_aot(models["isp"], f"litert-npu-{vendor}")
    msg = str(err.value)
    assert "\n" not in msg and f"litert-npu-{vendor} ({soc})" in msg and library in msg
    assert f"edge-isp toolchain install litert-aot --addon {vendor}" in msg
    assert "downloads the SDK from the vendor" in msg
    assert addon_hint in msg and "not on PyPI" in msg


@pytest.mark.slow
def test_convert_to_qualcomm_fails_fast_with_the_missing_sdk_message_and_writes_nothing(aot_env, tmp_path,
                                                                                      monkeypatch):
    from edge_isp.converters import litert_aot, tflite_build
    from edge_isp.converters.pipeline import ConvertOptions, convert

    if litert_aot.probe("qualcomm", "SM8750")["can_partition"]:
        pytest.skip("the Qualcomm SDK is installed here")

    def no_tflite_build(ctx):
        raise AssertionError("the INT8 TFLite was built although the Qualcomm plugin cannot load")

    monkeypatch.setattr(tflite_build, "build", no_tflite_build)
    out = tmp_path / "b"
    with pytest.raises(MissingDependencyError, match=r"litert-npu-qualcomm \(SM8750\) needs the Qualcomm AI Runtime "
                                                     r"SDK .*libQnnHtp\.so.*--addon qualcomm.*Nothing was written$"):
        convert(ConvertOptions(model="microisp", target="litert-npu-qualcomm", soc="sm8750", input_size=(192, 192),
                               fit={"pixel_shuffle": "crd"}, calib_samples=2, verify_samples=1, output=out))
    assert not out.exists()
