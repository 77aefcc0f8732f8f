"""Arm Ethos-U targets: Vela in its own toolchain env, its placement, estimates and bundles.

Everything here runs the real Vela (``ethos-u-vela``) from the isolated toolchain; the
session fixture installs it into a temp folder when it is not installed already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_isp import toolchains
from edge_isp.errors import EdgeIspError

from _tf_models import int8_tflite


@pytest.fixture(scope="session")
def vela_env(toolchain_env) -> Path:
    """The vela toolchain (installed into a session temp folder when it is not installed)."""
    path = toolchain_env("vela")
    return path


@pytest.fixture(scope="module")
def d2s_model(tmp_path_factory) -> Path:
    """conv -> DEPTH_TO_SPACE (pixel shuffle, DCR) -> conv, full INT8: what 'pixel_shuffle=dcr' makes."""
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(1)
    w1 = tf.constant(rng.standard_normal((3, 3, 4, 16)).astype(np.float32) * 0.1)
    w2 = tf.constant(rng.standard_normal((3, 3, 4, 3)).astype(np.float32) * 0.1)

    def net(x):
        y = tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME"))
        y = tf.nn.depth_to_space(y, 2)
        return tf.nn.conv2d(y, w2, 1, "SAME")

    return int8_tflite(net, (1, 16, 16, 4), tmp_path_factory.mktemp("d2s") / "d2s.tflite")


# ----------------------------------------------------------------------------- toolchain env

def test_missing_toolchain_is_one_clear_error(tmp_path, monkeypatch, d2s_model):
    from edge_isp.converters.vela import compile_vela

    monkeypatch.setenv("EDGE_ISP_TOOLCHAINS", str(tmp_path / "none"))
    assert not toolchains.status("vela").installed
    with pytest.raises(toolchains.ToolchainError, match="edge-isp toolchain install vela"):
        compile_vela(d2s_model, "ethos-u65-256", tmp_path / "out")
    with pytest.raises(EdgeIspError, match="unknown toolchain 'velaa'.*Did you mean 'vela'"):
        toolchains.run("velaa", {"op": "version"})


def test_timeout_is_one_clear_error(vela_env, d2s_model, tmp_path):
    with pytest.raises(toolchains.ToolchainError, match="did not answer 'compile' within"):
        toolchains.run("vela", {"op": "compile", "model": str(d2s_model), "accelerator_config": "ethos-u65-256",
                                "output_dir": str(tmp_path)}, timeout=0.01)


def test_worker_errors_and_bad_requests_become_clear_errors(vela_env, tmp_path):
    with pytest.raises(toolchains.ToolchainError, match="unknown op 'frobnicate'"):
        toolchains.run("vela", {"op": "frobnicate"})
    bogus = tmp_path / "bogus.tflite"
    bogus.write_bytes(b"not a model")
    with pytest.raises(toolchains.ToolchainError, match="vela failed on 'compile': vela exited with"):
        toolchains.run("vela", {"op": "compile", "model": str(bogus), "accelerator_config": "ethos-u65-256",
                                "output_dir": str(tmp_path / "o")})


def test_toolchain_list_cli_shows_versions(vela_env):
    env = {**os.environ, "EDGE_ISP_TOOLCHAINS": str(vela_env.parent)}
    proc = subprocess.run([sys.executable, "-m", "edge_isp.cli", "toolchain", "list", "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["vela"]["installed"] and rows["vela"]["version"] == "5.2.0"
    proc = subprocess.run([sys.executable, "-m", "edge_isp.cli", "toolchain", "install"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "edge-isp toolchain install vela" in proc.stderr


# ----------------------------------------------------------------------------- Vela's own answer

def test_depth_to_space_goes_to_the_cpu_with_velas_reason_where_the_tables_say_npu(vela_env, d2s_model, tmp_path):
    from edge_isp.converters.check import check_artifact
    from edge_isp.converters.vela import compile_vela, vela_report

    for config in ("ethos-u55-128", "ethos-u65-256", "ethos-u85-256"):
        result = compile_vela(d2s_model, config, tmp_path / config)
        assert result.vela_tflite.is_file() and result.version == "5.2.0"
        ops = {p.op: p for p in result.placement}
        assert ops["DEPTH_TO_SPACE"].target == "CPU"
        assert ops["DEPTH_TO_SPACE"].reason == "Vela: Unsupported opType"
        assert ops["CONV_2D"].target == "NPU"
        report = vela_report(result, "ethos-u65-int8")
        assert report.verdict == "partial" and report.ops_on_cpu == 1
        assert [g["op"] for g in report.rejected_groups()] == ["DEPTH_TO_SPACE"]
        assert report.delegated_partitions == 2            # conv | D2S on CPU | conv
        est = result.estimates
        assert est["estimate"] is True and "nothing executed" in est["source"]
        assert est["inference_time_ms"] > 0 and est["cycles_total"] > 0 and est["sram_bytes"] > 0
        assert est["cpu_time_not_included"] is True
    # The static tables say the opposite: NNAPI and the GPU delegate take DEPTH_TO_SPACE.
    for target in ("nnapi-int8", "cpu-int8"):
        table_report = check_artifact(d2s_model, target)
        assert table_report.verdict == "full", table_report.summary_line()
    # `edge-isp check` on the bare file for an Ethos-U target asks Vela too.
    text = check_artifact(d2s_model, "ethos-u55-int8").to_text()
    assert "DEPTH_TO_SPACE x1" in text and "Vela: Unsupported opType" in text and "estimate" in text


def test_parsers_read_real_vela_output(vela_env, d2s_model, tmp_path):
    from edge_isp.converters import vela

    resp = toolchains.run("vela", {"op": "compile", "model": str(d2s_model), "accelerator_config": "ethos-u65-256",
                                   "output_dir": str(tmp_path)})
    assert resp["schema"] == toolchains.RESPONSE_SCHEMA and resp["ok"] and resp["error"] is None
    rows = vela.parse_per_layer(resp["per_layer_csv"])
    assert {"Original Operator", "Target", "Op Cycles", "MAC Count", "Name"} <= set(rows[0])
    assert [r["Original Operator"] for r in rows if r["Target"] == "CPU"] == ["DepthToSpace"]
    summary = vela.parse_summary(resp["summary_csv"])
    assert summary["accelerator_configuration"] == "Ethos_U65_256"
    assert isinstance(summary["cycles_total"], int) and isinstance(summary["inference_time"], float)
    reasons = vela.parse_reasons(resp["stdout"])
    assert [v for v in reasons.values()] == [("DEPTH_TO_SPACE", "Unsupported opType")]


# ----------------------------------------------------------------------------- convert

@pytest.mark.slow
def test_convert_to_ethos_u65_bundles_both_files_with_velas_report(vela_env, tmp_path):
    from edge_isp.converters.check import check_bundle
    from edge_isp.converters.pipeline import ConvertOptions, convert
    from edge_isp.converters.tflite_reader import read_tflite

    res = convert(ConvertOptions(model="microisp", target="ethos-u65-int8", input_size=(192, 192),
                                 calib_samples=4, verify_samples=2, output=tmp_path / "b"))
    m = res.manifest
    folder = tmp_path / "b"
    assert m["artifact"]["file"] == "model.tflite" and m["artifact"]["extra_files"] == ["model_vela.tflite"]
    assert (folder / "model.tflite").is_file() and (folder / "model_vela.tflite").is_file()
    assert res.verification.passed
    npu = m["npu"]
    assert npu["compiler"] == "vela 5.2.0" and npu["accelerator_config"] == "ethos-u65-256"
    assert "same integer arithmetic" in npu["note"] and npu["verified_artifact"] == "model.tflite"
    assert npu["estimates"]["estimate"] is True and npu["estimates"]["inference_time_ms"] > 0
    assert len(npu["placement"]) == len(read_tflite(folder / "model.tflite").operators)
    assert m["support_check"]["table"] == "ethos-u"
    # The default Ethos-U fit turns MicroISP's pixel shuffle into an exact TRANSPOSE_CONV, so Vela
    # places every op on the NPU, and the static ethos-u table is shown next to Vela's verdicts.
    assert m["fit"]["pixel_shuffle"] == "deconv" and m["onnx"]["op_types"].get("ConvTranspose") == 1
    assert m["support_check"]["verdict"] == "full", m["support_check"]["summary"]
    assert m["support_check"]["compared_table"] == "ethos-u" and m["support_check"]["disagreements"] == []
    vela_ops = read_tflite(folder / "model_vela.tflite").op_counts()
    assert vela_ops.get("CUSTOM:ethos-u", 0) >= 1 or any("ethos" in k.lower() for k in vela_ops), vela_ops
    # `edge-isp check` on the bundle shows Vela's report from the manifest, in the usual format.
    report = check_bundle(folder)
    assert report.summary_line() == m["support_check"]["summary"]
    proc = subprocess.run([sys.executable, "-m", "edge_isp.cli", "check", str(folder), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["verdict"] == report.verdict


@pytest.mark.slow
def test_velas_estimates_go_to_the_results_store_as_estimates(vela_env, tmp_path):
    """convert records Vela's figures as kind=estimate rows that gate budgets can hold."""
    from edge_isp.budgets import gate
    from edge_isp.results import ResultsStore

    store = tmp_path / "results.sqlite"
    proc = subprocess.run([sys.executable, "-m", "edge_isp.cli", "convert", "microisp", "--target", "ethos-u55-int8",
                           "--input-size", "192x192", "--calib-samples", "2", "--verify-samples", "1",
                           "-o", str(tmp_path / "b"), "--results", str(store), "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    row_id = json.loads(proc.stdout)["estimate_row"]
    rows = ResultsStore(store).query(kind="estimate")
    assert [r.id for r in rows] == [row_id]
    row = rows[0]
    assert (row.model, row.target, row.device) == ("microisp", "ethos-u55-int8", "ethos-u55-128")
    assert row.runtime.startswith("vela ") and "nothing executed" in row.extra["source"]
    assert row.metrics["inference_time_ms"] > 0 and row.metrics["cpu_ops"] == 0 and row.metrics["npu_ops"] > 0
    assert row.metrics["sram_bytes"] > 0 and row.metrics["macs"] > 0
    budgets = tmp_path / "budgets.toml"
    budgets.write_text('[[budget]]\nkind = "estimate"\ntarget = "ethos-u55-int8"\n'
                       'checks = ["cpu_ops == 0", "inference_time_ms <= 1e6"]\n')
    assert gate(budgets, results=store).passed
    budgets.write_text('[[budget]]\nkind = "estimate"\nchecks = ["inference_time_ms <= 1e-6"]\n')
    assert not gate(budgets, results=store).passed
