"""The CLI as a user meets it: real subprocesses, exit codes, one-line errors, JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_isp.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_models_json_has_exact_reference_counts():
    proc = run("models", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["pynet"]["params"] == 47_554_738
    assert rows["pynet-ca"]["params"] == 51_303_515
    assert rows["pynet-v2-mobile"]["params"] == 930_255
    assert rows["microisp"]["params"] == 13_560
    assert rows["lw-isp"]["params"] == 2_014_681
    assert rows["punet"]["params"] == 5_725_199
    for r in rows.values():
        assert r["reference_params"] in (None, r["params"]), r["name"]


def test_version_and_targets_json():
    versions = json.loads(run("version", "--json").stdout)
    assert versions["edge-isp"] and versions["python"].startswith("3.")
    targets = {t["name"] for t in json.loads(run("targets", "--json").stdout)}
    assert {"onnx-fp32", "cpu-fp32", "cpu-int8", "gpu-fp16", "nnapi-fp16", "nnapi-int8",
            "openvino-fp32", "openvino-fp16", "openvino-int8"} <= targets


def test_raw_info_on_bundled_sample_and_headerless(shared_raw):
    info = json.loads(run("raw-info", "--json").stdout)
    assert (info["width"], info["height"], info["cfa"]) == (256, 344, "GRBG")
    proc = run("raw-info", str(shared_raw / "DSC_1339_768x512_rggb_u16le.raw"), "--width", "768", "--height", "512",
               "--cfa", "RGGB", "--black", "600", "--white", "15520", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["packed_shape"] == [4, 256, 384]


def test_render_writes_a_png(tmp_path):
    from PIL import Image

    out = tmp_path / "dog.png"
    proc = run("render", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as img:
        assert img.size == (256, 344) and img.mode == "RGB"


@pytest.mark.parametrize(("args", "code", "words"), [
    (["convert", "--target", "nnapi-int9"], 3, "unknown target"),
    (["convert", "no-such-model", "--target", "onnx-fp32"], 3, "unknown model"),
    (["convert", "microisp", "--input-size", "big"], 3, "is not HxW"),
    (["raw-info", "/nonexistent/file.dng"], 3, "no such file"),
    (["raw-info", "x.raw"], 3, "no such file"),
    (["render", "-o", "out.bmp"], 3, "bmp"),
    (["convert", "--no-such-flag"], 2, "no such option"),
])
def test_errors_are_one_line_with_nonzero_exit(tmp_path, args, code, words):
    proc = run(*args, cwd=tmp_path)
    assert proc.returncode == code
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert words.lower() in lines[0].lower()


@pytest.mark.slow
def test_convert_json_prints_the_manifest(tmp_path):
    # openvino-int8: NNCF draws progress bars, which must not reach the JSON on stdout.
    proc = run("convert", "microisp", "--target", "openvino-int8", "--input-size", "192x192", "--tiling", "blended",
               "-o", str(tmp_path / "b"), "--json")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout)
    assert manifest["model"]["name"] == "microisp" and manifest["verification"]["passed"]
    assert json.loads((tmp_path / "b" / "manifest.json").read_text()) == manifest
