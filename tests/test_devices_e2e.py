"""End to end: ``edge-isp profile`` against the ADB peer (a fake phone over real ADB wire
protocol), with a real TFLite model run by ai-edge-litert behind benchmark_model's output
format, power from files the kernel would write, then ``edge-isp gate`` on the stored result."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from _adb_peer import FAKE_BENCHMARK_MODEL, AdbPeer, PowerRails, android_userland_available

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "devices" / "litert_runner.py"

def tiny_conv_tflite(h: int = 96, w: int = 96, cin: int = 4, cout: int = 12, seed: int = 0,
                     deprecated_code: bool = True) -> bytes:
    """A real TFLite model, CONV_2D(3x3, SAME, RELU) NHWC float32 (packed Bayer in), written with
    the flatbuffers builder following the TFLite schema: no TensorFlow needed, milliseconds to build."""
    import flatbuffers
    import numpy as np

    rng = np.random.default_rng(seed)
    weights = rng.normal(0, 0.2, (cout, 3, 3, cin)).astype("<f4").tobytes()   # OHWI
    bias = np.zeros(cout, "<f4").tobytes()
    b = flatbuffers.Builder(1024)

    def vec_i32(vals):
        b.StartVector(4, len(vals), 4)
        for v in reversed(vals):
            b.PrependInt32(v)
        return b.EndVector()

    def vec_off(offs):
        b.StartVector(4, len(offs), 4)
        for o in reversed(offs):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    def buffer(data):
        d = b.CreateByteVector(data) if data else None
        b.StartObject(1)
        if d is not None:
            b.PrependUOffsetTRelativeSlot(0, d, 0)
        return b.EndObject()

    buffers = [buffer(b""), buffer(b""), buffer(weights), buffer(bias), buffer(b"")]

    def tensor(shape, buf, name):
        n = b.CreateString(name)
        s = vec_i32(shape)
        b.StartObject(5)
        b.PrependUOffsetTRelativeSlot(0, s, 0)
        b.PrependInt8Slot(1, 0, -1)        # FLOAT32 (force: default would be elided)
        b.PrependUint32Slot(2, buf, 0)
        b.PrependUOffsetTRelativeSlot(3, n, 0)
        return b.EndObject()

    tensors = [tensor([1, h, w, cin], 1, "bayer"), tensor([cout, 3, 3, cin], 2, "w"),
               tensor([cout], 3, "b"), tensor([1, h, w, cout], 4, "rgb")]
    b.StartObject(6)                       # Conv2DOptions
    b.PrependInt8Slot(0, 0, -1)            # SAME
    b.PrependInt32Slot(1, 1, 0)
    b.PrependInt32Slot(2, 1, 0)
    b.PrependInt8Slot(3, 1, 0)             # RELU
    b.PrependInt32Slot(4, 1, 0)
    b.PrependInt32Slot(5, 1, 0)
    opts = b.EndObject()
    ins, outs = vec_i32([0, 1, 2]), vec_i32([3])
    b.StartObject(5)                       # Operator
    b.PrependUint32Slot(0, 0, 1)
    b.PrependUOffsetTRelativeSlot(1, ins, 0)
    b.PrependUOffsetTRelativeSlot(2, outs, 0)
    b.PrependUint8Slot(3, 1, 0)            # BuiltinOptions.Conv2DOptions
    b.PrependUOffsetTRelativeSlot(4, opts, 0)
    op = b.EndObject()
    t_vec, sg_in, sg_out, ops = vec_off(tensors), vec_i32([0]), vec_i32([3]), vec_off([op])
    name = b.CreateString("main")
    b.StartObject(5)                       # SubGraph
    b.PrependUOffsetTRelativeSlot(0, t_vec, 0)
    b.PrependUOffsetTRelativeSlot(1, sg_in, 0)
    b.PrependUOffsetTRelativeSlot(2, sg_out, 0)
    b.PrependUOffsetTRelativeSlot(3, ops, 0)
    b.PrependUOffsetTRelativeSlot(4, name, 0)
    sg = b.EndObject()
    b.StartObject(4)                       # OperatorCode
    if deprecated_code:                    # newer writers fill only builtin_code
        b.PrependInt8Slot(0, 3, 0)         # deprecated_builtin_code CONV_2D
    b.PrependInt32Slot(2, 1, 0)            # version
    b.PrependInt32Slot(3, 3, 0)            # builtin_code CONV_2D
    code = b.EndObject()
    codes, sgs, bufs = vec_off([code]), vec_off([sg]), vec_off(buffers)
    desc = b.CreateString("edge-isp device test model")
    b.StartObject(5)                       # Model
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(1, codes, 0)
    b.PrependUOffsetTRelativeSlot(2, sgs, 0)
    b.PrependUOffsetTRelativeSlot(3, desc, 0)
    b.PrependUOffsetTRelativeSlot(4, bufs, 0)
    model = b.EndObject()
    b.Finish(model, file_identifier=b"TFL3")
    return bytes(b.Output())


def build_tiny_tflite(tmp_path_factory) -> Path:
    """The test model, once per session."""
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("flatbuffers")
    path = tmp_path_factory.getbasetemp() / "devices-tiny-isp.tflite"
    if not path.is_file():
        tmp = path.with_suffix(".partial")
        tmp.write_bytes(tiny_conv_tflite())
        os.replace(tmp, path)
    return path


@pytest.fixture(scope="session")
def tiny_tflite(tmp_path_factory) -> Path:
    return build_tiny_tflite(tmp_path_factory)


def make_bundle(folder: Path, tflite: Path, model: str, target: str = "cpu-fp32", file_name: str = "model.tflite") -> Path:
    """A bundle folder as 'edge-isp convert' writes it (manifest schema edge-isp/bundle@1)."""
    from edge_isp.converters.targets import get_target

    folder.mkdir(parents=True, exist_ok=True)
    data = tflite.read_bytes()
    (folder / file_name).write_bytes(data)
    t = get_target(target)
    manifest = {
        "schema": "edge-isp/bundle@1",
        "model": {"name": model},
        "target": {"name": t.name, "runtime": t.runtime, "delegate": t.delegate, "precision": t.precision},
        "artifact": {"file": file_name, "sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data)},
        "input": {"shape": [1, 96, 96, 4], "layout": "NHWC"},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


@pytest.fixture()
def phone(tmp_path, monkeypatch):
    """A Pixel 7 on 127.0.0.1 with power rails; config folder, results store and a fake benchmark_model."""
    monkeypatch.setenv("EDGE_ISP_CONFIG_DIR", str(tmp_path / "config"))
    root = tmp_path / "phone"
    rails = PowerRails(root)
    peer = AdbPeer(root, userland="android")     # mksh + toybox when installed, like a phone
    rails.start()
    peer.start()
    fake = tmp_path / "benchmark_model"
    fake.write_text(FAKE_BENCHMARK_MODEL.format(python=sys.executable, runner=RUNNER))
    fake.chmod(0o755)
    yield {"peer": peer, "rails": rails, "root": root, "fake": fake, "tmp": tmp_path,
           "results": tmp_path / "results.sqlite", "env": dict(os.environ)}
    peer.stop()
    rails.stop()


def cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_isp.cli", *args], capture_output=True, text=True,
                          env={**env, "COLUMNS": "200"}, timeout=timeout, cwd=REPO)


def test_profile_then_gate_against_the_adb_peer(phone, tiny_tflite):
    bundle = make_bundle(phone["tmp"] / "bundle", tiny_tflite, "tiny-isp")
    env = phone["env"]
    res = cli("profile", str(bundle), "--device", "pixel", "--serial", phone["peer"].address,
              "--transport", "adb-shell", "--benchmark-binary", str(phone["fake"]), "--runs", "20",
              "--min-secs", "1.0", "--idle-s", "0.6", "--sample-hz", "20", "--threads", "1",
              "--results", str(phone["results"]), env=env)
    print(res.stdout, res.stderr)
    assert res.returncode == 0, res.stderr
    assert "pixel-7" in res.stdout and "tiny-isp" in res.stdout and "stored 1 result" in res.stdout
    if android_userland_available():   # the measuring script ran under mksh with toybox applets
        assert phone["peer"].userland == "android"

    from edge_isp.results import ResultsStore

    rows = ResultsStore(phone["results"]).query(model="tiny-isp")
    assert len(rows) == 1
    m = rows[0]
    assert (m.kind, m.device, m.target, m.runtime) == ("profile", "pixel-7", "cpu-fp32", "benchmark_model")
    met = m.metrics
    assert met["latency_ms.mean"] > 0 and met["runs"] >= 20
    assert met["peak_rss_mb"] > 5 and met["peak_memory_footprint_mb"] > 5
    # ODPM rails: 3.6 W while the benchmark runs, 1.2 W idle (written by PowerRails)
    assert m.extra["power"]["source"] == "odpm"
    assert met["power_w"] == pytest.approx(3.6, rel=0.15)
    assert met["power_w.idle"] == pytest.approx(1.2, rel=0.15)
    assert met["energy_j_per_frame"] == pytest.approx(met["power_w"] * met["latency_ms.mean"] / 1000, rel=1e-6)
    assert met["fps_per_w"] == pytest.approx(1000 / met["latency_ms.mean"] / met["power_w"], rel=1e-6)
    assert met["temp_c.before"] == pytest.approx(41.0)
    assert m.extra["device"]["model"] == "Pixel 7" and m.extra["device"]["serial"] == "PEER0001"
    assert "--use_xnnpack=true" in m.extra["flags"] and "--num_threads=1" in m.extra["flags"]

    # the binary's location is remembered per ABI: the second run needs no --benchmark-binary,
    # and --device pixel alone finds the phone reached before
    res2 = cli("profile", str(bundle), "--device", "pixel", "--transport", "adb-shell", "--runs", "5", "--idle-s", "0.5",
               "--power-source", "battery", "--results", str(phone["results"]), "--json", env=env)
    assert res2.returncode == 0, res2.stderr
    run2 = json.loads(res2.stdout)[0]
    assert run2["extra"]["power"]["source"] == "battery"
    assert run2["metrics"]["power_w"] == pytest.approx(3.6, rel=0.2)

    budgets = phone["tmp"] / "budgets.toml"
    budgets.write_text(textwrap.dedent("""
        [[budget]]
        model = "tiny-isp"
        device = "pixel-7"
        kind = "profile"
        checks = ["latency_ms.mean <= 10000", "peak_rss_mb <= 4000", "fps_per_w >= 0.001", "power_w <= 10"]
    """))
    gate = cli("gate", "--budgets", str(budgets), "--results", str(phone["results"]), env=env)
    print(gate.stdout, gate.stderr)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    budgets.write_text(budgets.read_text().replace("power_w <= 10", "power_w <= 1"))
    gate = cli("gate", "--budgets", str(budgets), "--results", str(phone["results"]), env=env)
    assert gate.returncode == 1 and "FAIL" in gate.stdout


def test_profile_of_a_two_pass_bundle_measures_both_parts(phone, tiny_tflite, tmp_path):
    """A two-pass bundle: the statistics part is pushed (hashed like the model) and measured
    too; the window figure is one tile run plus one statistics run per global op."""
    bundle = make_bundle(phone["tmp"] / "two_pass", tiny_tflite, "tiny-isp")
    stats = tiny_conv_tflite(h=192, w=192, cout=24, seed=1)          # a heavier part: 4x the area
    (bundle / "stats.tflite").write_bytes(stats)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["artifact"]["files_sha256"] = {"model.tflite": manifest["artifact"]["sha256"],
                                            "stats.tflite": hashlib.sha256(stats).hexdigest()}
    manifest["tiling"] = {"mode": "two-pass", "passes": 3, "window_packed": [96, 96],
                          "stats_artifact": {"files": ["stats.tflite"]}}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    res = cli("profile", str(bundle), "--device", "pixel", "--serial", phone["peer"].address,
              "--transport", "adb-shell", "--benchmark-binary", str(phone["fake"]), "--runs", "10",
              "--idle-s", "0.5", "--threads", "1", "--results", str(phone["results"]), "--json", env=phone["env"])
    assert res.returncode == 0, res.stderr
    run = json.loads(res.stdout)[0]
    met = run["metrics"]
    assert met["stats_part.latency_ms.mean"] > met["latency_ms.mean"] > 0     # really the other model
    assert met["window_latency_ms.mean"] == pytest.approx(met["latency_ms.mean"] + 2 * met["stats_part.latency_ms.mean"])
    assert run["extra"]["two_pass"]["stats_runs_per_window"] == 2
    remote = [p for p in (phone["root"]).rglob("stats.tflite")]
    assert remote and remote[0].read_bytes() == stats
    # A statistics part that is not the one the manifest hashed never reaches the phone.
    (bundle / "stats.tflite").write_bytes(stats[:-4] + b"\0\0\0\0")
    res = cli("profile", str(bundle), "--device", "pixel", "--transport", "adb-shell", "--runs", "2",
              "--idle-s", "0.2", "--results", str(phone["results"]), env=phone["env"])
    error = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.returncode != 0 and len(error) == 1 and "stats.tflite" in error[0]


def test_disconnect_mid_run_keeps_earlier_results(phone, tiny_tflite, monkeypatch):
    from edge_isp.devices.discovery import select_device
    from edge_isp.devices.errors import DeviceDisconnectedError
    from edge_isp.devices.harness import ProfileOptions, profile_bundles
    from edge_isp.results import ResultsStore

    a = make_bundle(phone["tmp"] / "a", tiny_tflite, "model-a", file_name="a.tflite")
    b = make_bundle(phone["tmp"] / "b", tiny_tflite, "model-b", file_name="b.tflite")
    phone["peer"].drop_on = "b.tflite --num_runs"      # the phone vanishes while model b runs
    phone["peer"].drop_after_s = 0.5
    dev = select_device("pixel", serial=phone["peer"].address, transport="adb-shell")
    store = ResultsStore(phone["results"])
    opts = ProfileOptions(runs=5, idle_s=0.3, benchmark_binary=phone["fake"], min_secs=1.0)
    with pytest.raises(DeviceDisconnectedError) as info:
        profile_bundles(dev, [a, b], opts, store=store)
    msg = str(info.value)
    assert "disconnected" in msg and "model-a/cpu-fp32" in msg and "kept" in msg
    assert [m.model for m in store.query()] == ["model-a"]
    dev.close()


def test_charging_phone_warns_and_skips_battery_power(tmp_path, tiny_tflite, monkeypatch):
    from edge_isp.devices.discovery import select_device
    from edge_isp.devices.harness import ProfileOptions, profile_bundles

    monkeypatch.setenv("EDGE_ISP_CONFIG_DIR", str(tmp_path / "config"))
    root = tmp_path / "phone"
    rails = PowerRails(root, charging=True, odpm=False, current_unit="mA", positive_discharge=True)
    props = {"ro.product.model": "SM-S901B", "ro.product.manufacturer": "samsung", "ro.product.device": "r0s",
             "ro.board.platform": "s5e9925", "ro.soc.model": "s5e9925", "ro.serialno": "R3CS22"}
    fake = tmp_path / "benchmark_model"
    fake.write_text(FAKE_BENCHMARK_MODEL.format(python=sys.executable, runner=RUNNER))
    fake.chmod(0o755)
    bundle = make_bundle(tmp_path / "bundle", tiny_tflite, "tiny-isp", target="nnapi-fp16")
    with rails.start() and AdbPeer(root, props=props, shell_v2=False, crlf=True, userland="android") as peer:
        try:
            dev = select_device("samsung", serial=peer.address, transport="adb-shell")
            assert dev.profile.name == "galaxy-s22-exynos"
            report = profile_bundles(dev, [bundle], ProfileOptions(runs=3, idle_s=0.3, benchmark_binary=fake))
            dev.close()
        finally:
            rails.stop()
    run = report.runs[0]
    assert any("external power" in w for w in run.warnings)
    assert "power_w" not in run.metrics and run.extra["power"]["source"] == "battery"
    assert run.metrics["latency_ms.mean"] > 0
    flags = run.extra["flags"]
    assert "--use_nnapi=true" in flags and "--nnapi_allow_fp16=true" in flags
    assert not any(f.startswith("--nnapi_accelerator_name") for f in flags)   # Samsung: name not assumed


def test_cooldown_waits_for_the_temperature_bounded(phone):
    import time as _time

    from edge_isp.devices.discovery import select_device
    from edge_isp.devices.harness import Harness, ProfileOptions

    dev = select_device("pixel", serial=phone["peer"].address, transport="adb-shell")
    try:
        start = _time.monotonic()
        assert Harness(dev, ProfileOptions(cooldown_s=5, cooldown_temp_c=45)).cooldown() < 1   # 41 C already
        waited = Harness(dev, ProfileOptions(cooldown_s=1.0, cooldown_temp_c=30)).cooldown()    # never that cool
        assert 0.9 <= waited < 3 and _time.monotonic() - start < 5
    finally:
        dev.close()


def test_op_codes_written_only_in_the_new_field_are_read(tmp_path):
    """ai-edge-quantizer writes builtin_code alone (deprecated byte 0 = ADD): the op is what
    the interpreter runs, not ADD."""
    from edge_isp.converters.tflite_reader import read_tflite

    path = tmp_path / "new_field.tflite"
    path.write_bytes(tiny_conv_tflite(deprecated_code=False))
    assert [o.op for o in read_tflite(path).operators] == ["CONV_2D"]


def test_the_test_model_is_a_real_tflite_conv(tiny_tflite):
    """The hand-built flatbuffer loads in ai-edge-litert and computes conv3x3 + ReLU."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(tiny_tflite))
    it.allocate_tensors()
    x = np.random.default_rng(1).random((1, 96, 96, 4), dtype=np.float32)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    y = it.get_tensor(it.get_output_details()[0]["index"])
    w = np.random.default_rng(0).normal(0, 0.2, (12, 3, 3, 4)).astype(np.float32)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ref = sum(np.einsum("nhwc,oc->nhwo", xp[:, dy:dy + 96, dx:dx + 96, :], w[:, dy, dx, :])
              for dy in range(3) for dx in range(3))
    assert np.abs(y - np.maximum(ref, 0)).max() < 1e-4


def test_cli_errors_are_one_line_with_what_to_do(phone, tiny_tflite):
    bundle = make_bundle(phone["tmp"] / "bundle", tiny_tflite, "tiny-isp")
    res = cli("profile", str(bundle), "--serial", phone["peer"].address, "--transport", "adb-shell",
              "--no-store", env=phone["env"])
    assert res.returncode == 3   # BenchmarkBinaryError is bad input
    lines = [ln for ln in res.stderr.splitlines() if "error:" in ln]
    assert len(lines) == 1 and "--benchmark-binary" in res.stderr and "Traceback" not in res.stderr
    res = cli("profile", str(bundle), "--device", "pixle", "--no-store", env=phone["env"])
    assert res.returncode == 3 and "Did you mean 'pixel'" in res.stderr
