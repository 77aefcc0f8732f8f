"""Parsers and pure logic of the device harness: benchmark_model output (the exact lines
from public logs), benchmark flags per target, power sources and units, profiles, exit
markers, shell v2 framing."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from edge_isp.devices.benchmark import BenchOptions, benchmark_flags, parse_benchmark_output
from edge_isp.devices.power import PowerSource, Sample, charging_warning, parse_run_log, power_over
from edge_isp.devices.profiles import (
    get_profile,
    list_profiles,
    load_profile,
    match_profile,
    nnapi_feature_level,
    profiles_named,
)

# Verbatim from public logs (FACTS.md): warm-up statistics first, then the timed runs.
REAL_OUTPUT = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Graph: [/data/local/tmp/model.tflite]
INFO: NNAPI accelerators available: [google-edgetpu,nnapi-reference]
INFO: Explicitly applied NNAPI delegate, and the model graph will be partially executed by the delegate w/ 3 delegate kernels.
INFO: count=12 first=81913 curr=58101 min=57002 max=81913 avg=58984.7 std=6621
INFO: count=1061 first=56576 curr=56299 min=54669 max=60236 avg=56265.8 std=982
INFO: Inference timings in us: Init: 3337, First inference: 81913, Warmup (avg): 58984.7, Inference (avg): 56265.8
INFO: Memory footprint delta from the start of the tool (MB): init=4.5 overall=61.25
INFO: Overall peak memory footprint (MB) via periodic monitoring: 93.2383
"""


def test_parse_real_benchmark_model_output():
    out = parse_benchmark_output(REAL_OUTPUT)
    assert out.warmup is not None and out.warmup.count == 12 and out.warmup.avg_us == pytest.approx(58984.7)
    assert out.runs.count == 1061 and out.runs.std_us == 982 and out.runs.min_us == 54669
    assert (out.init_us, out.first_inference_us, out.warmup_avg_us, out.inference_avg_us) == (
        3337, 81913, 58984.7, 56265.8)
    assert out.peak_memory_mb == pytest.approx(93.2383)
    assert (out.init_memory_mb, out.overall_memory_mb) == (4.5, 61.25)
    assert out.accelerators == ["google-edgetpu", "nnapi-reference"]
    assert (out.delegation, out.delegate_kernels) == ("partial", 3)
    m = out.metrics()
    assert m["latency_ms.mean"] == pytest.approx(56.2658)
    assert m["latency_ms.std"] == pytest.approx(0.982)
    assert m["init_ms"] == pytest.approx(3.337)
    assert m["warmup_ms.mean"] == pytest.approx(58.9847)
    assert m["throughput_fps"] == pytest.approx(1e6 / 56265.8)
    assert m["peak_memory_footprint_mb"] == pytest.approx(93.2383)


def test_parse_crlf_older_release_and_logcat_prefixes():
    text = ("I tflite  : count=50 first=1000 curr=900 min=880 max=1000 avg=910.5 std=12\r\n"
            "I tflite  : Inference timings in us: Init: 100, First inference: 1000, Warmup (avg): 1000, "
            "Inference (avg): 910.5\r\n"
            "I tflite  : Peak memory footprint (MB): init=1.5 overall=20.75\r\n"
            "INFO: Though NNAPI delegate is explicitly applied, the model graph will not be executed by the delegate.\r\n")
    out = parse_benchmark_output(text)
    assert out.warmup is None and out.runs.count == 50 and out.inference_avg_us == 910.5
    assert out.overall_memory_mb == 20.75 and out.peak_memory_mb is None
    assert out.delegation == "none"
    full = parse_benchmark_output("INFO: Explicitly applied NNAPI delegate, and the model graph will be completely "
                                  "executed by the delegate.")
    assert full.delegation == "full" and not full.complete


def test_flags_per_target():
    pixel = get_profile("pixel-7")
    nnapi = benchmark_flags("/d/m.tflite", "nnapi", "int8", pixel, BenchOptions(num_runs=30, warmup_runs=2))
    assert "--graph=/d/m.tflite" in nnapi and "--num_runs=30" in nnapi and "--warmup_runs=2" in nnapi
    assert "--use_nnapi=true" in nnapi and "--nnapi_accelerator_name=google-edgetpu" in nnapi
    assert "--disable_nnapi_cpu=true" in nnapi and "--report_peak_memory_footprint=true" in nnapi
    assert "--nnapi_allow_fp16=true" not in nnapi
    fp16 = benchmark_flags("m", "nnapi", "fp16", pixel, BenchOptions(nnapi_accelerator="other", nnapi_preference="sustained_speed"))
    assert "--nnapi_allow_fp16=true" in fp16 and "--nnapi_accelerator_name=other" in fp16
    assert "--nnapi_execution_preference=sustained_speed" in fp16
    gpu = benchmark_flags("m", "gpu", "fp16", pixel, BenchOptions(require_full_delegation=True))
    assert "--use_gpu=true" in gpu and "--gpu_precision_loss_allowed=true" in gpu
    assert "--require_full_delegation=true" in gpu
    cpu = benchmark_flags("m", "xnnpack", "fp32", pixel, BenchOptions(threads=4, min_secs=5))
    assert "--use_xnnpack=true" in cpu and "--num_threads=4" in cpu and "--min_secs=5" in cpu
    assert not any("nnapi" in f or "gpu" in f for f in cpu)


def _samples(values: list[tuple[float, ...]], t0: float = 100.0, dt: float = 0.1) -> list[Sample]:
    return [Sample(t0 + i * dt, {j: f"{v}\n" for j, v in enumerate(vals)}) for i, vals in enumerate(values)]


@pytest.mark.parametrize("current,voltage,unit,sign", [
    (-750000, 4000000, "auto", "auto"),      # Pixel: uA, negative while discharging
    (750000, 4000000, "auto", "auto"),       # vendors reporting positive
    (750, 4000000, "auto", "auto"),          # mA
    (-750, 4000, "auto", "auto"),            # mA and mV
    (-750000, 4000000, "uA", "negative-discharge"),
])
def test_battery_units_and_sign(current, voltage, unit, sign):
    src = PowerSource("battery", ["c", "v"], current_unit=unit, voltage_unit="auto", sign=sign)
    fig = power_over(src, _samples([(current, voltage)] * 5))
    assert fig.power_w == pytest.approx(3.0)


def test_odpm_power_from_cumulative_energy():
    src = PowerSource("odpm", ["/sys/bus/iio/devices/iio:device0/energy_value"])
    samples = []
    for i in range(6):                       # 2.5 W: 250000 uW*s more every 100 ms
        t_ms = 5000 + 100 * i
        e = 1_000_000 + 250_000 * i
        samples.append(Sample(5 + 0.1 * i, {0: f"t={t_ms}\nCH0(T={t_ms})[S2M_VDD_CPUCL2], {e * 3 // 5}\n"
                                              f"CH1(T={t_ms})[S3M_VDD_TPU], {e * 2 // 5}\n"}))
    fig = power_over(src, samples)
    assert fig.power_w == pytest.approx(2.5, rel=1e-3)
    assert fig.rails_w == pytest.approx({"S2M_VDD_CPUCL2": 1.5, "S3M_VDD_TPU": 1.0}, rel=1e-3)


def test_hwmon_ina3221_voltage_times_current_and_power_files():
    src = PowerSource("hwmon", ["v1", "i1", "v2", "i2"], rails=[
        {"rail": "VDD_IN", "total": True, "voltage": 0, "current": 1},
        {"rail": "VDD_CPU_GPU_CV", "total": False, "voltage": 2, "current": 3}])
    fig = power_over(src, _samples([(5000, 1000, 5000, 400)] * 3))      # mV x mA
    assert fig.power_w == pytest.approx(5.0) and fig.rails_w["VDD_CPU_GPU_CV"] == pytest.approx(2.0)
    ina219 = PowerSource("hwmon", ["p"], rails=[{"rail": "ina219", "total": True, "power": 0}])
    assert power_over(ina219, _samples([(4_200_000,)] * 3)).power_w == pytest.approx(4.2)   # uW


def test_run_log_parsing():
    text = ("@C usb.online 0\n@C battery.status Discharging\n@T before\nBIG 45000\nskin_therm 31.5\n"
            "@Q 1803000 2850000\n@S 10.00\n@F 0\n-500000\n@F 1\n4000000\n"
            "@B start 10.10 4242\n@S 10.20\n@F 0\n-900000\n@F 1\n4000000\n@H   51200 kB\n@H   61440 kB\n"
            "@B end 12.00 0\n@S 12.1\n@F 0\n-500000\n@F 1\n4000000\n@T after\nBIG 52000\n")
    log = parse_run_log(text)
    assert len(log.idle) == 1 and len(log.active) == 1 and len(log.after) == 1
    assert (log.bench_start, log.bench_end, log.bench_rc, log.bench_pid) == (10.10, 12.0, 0, 4242)
    assert log.vm_hwm_kb == 61440
    assert log.temps_before == {"BIG": 45.0, "skin_therm": 31.5} and log.temps_after == {"BIG": 52.0}
    assert log.cpufreq_khz == [1803000, 2850000]
    assert log.active[0].files[0].strip() == "-900000"
    assert charging_warning(log.charging) is None
    assert "external power" in charging_warning({"usb.online": "1", "battery.status": "Charging"})
    assert "external power" in charging_warning({"usb.online": "1", "battery.status": "Not_charging"})


def test_shipped_profiles_cover_the_issue_and_match_devices():
    names = {p.name for p in list_profiles()}
    assert {"pixel-6", "pixel-7", "pixel-8", "galaxy-s22-exynos", "dimensity-9000", "snapdragon-8-gen-2",
            "raspberry-pi-5", "jetson-orin-nano", "rk3588"} <= names
    assert {p.name for p in profiles_named("pixel")} == {"pixel-6", "pixel-7", "pixel-8"}
    assert match_profile({"ro.product.device": "husky"}, "android").name == "pixel-8"
    assert match_profile({"ro.board.platform": "kalama", "ro.product.model": "SM-S911B"}, "android").name == \
        "snapdragon-8-gen-2"
    assert match_profile({"ro.board.platform": "mt6983"}, "android").name == "dimensity-9000"
    assert match_profile({"device-tree.compatible": "nvidia,p3768-0000+p3767-0005,nvidia,p3767-0005,nvidia,tegra234"},
                         "linux").name == "jetson-orin-nano"
    assert match_profile({"device-tree.compatible": "radxa,rock-5b,rockchip,rk3588"}, "linux").name == "rk3588"
    assert match_profile({"ro.product.device": "unknown"}, "android").name == "generic-android"
    pixel = get_profile("pixel-7")
    assert pixel.accelerator_for("nnapi-int8").nnapi_name == "google-edgetpu"
    assert pixel.power["sources"] == ["odpm", "battery"]
    assert nnapi_feature_level(30) == 4 and nnapi_feature_level(33) == 8 and nnapi_feature_level(26) is None


def test_user_profiles_override_and_bad_profiles_are_clear(tmp_path, monkeypatch):
    from edge_isp.devices.errors import ProfileError, UnknownProfileError

    monkeypatch.setenv("EDGE_ISP_DEVICE_PROFILES", str(tmp_path))
    (tmp_path / "myboard.toml").write_text('name = "my-board"\naliases = ["mine"]\nos = "linux"\n'
                                           '[match]\n"device-tree.model" = ["ACME*"]\n')
    assert get_profile("mine").name == "my-board"
    assert match_profile({"device-tree.model": "ACME Board v2"}, "linux").name == "my-board"
    with pytest.raises(UnknownProfileError, match="Did you mean 'pixel'"):
        get_profile("pixle")
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nos = "windows"\n')
    with pytest.raises(ProfileError, match="os must be"):
        load_profile(bad)


def test_exit_marker_and_shell_v2_framing():
    from edge_isp.devices.adb_python import banner_features, decode_shell_v2, parse_banner
    from edge_isp.devices.transport import split_exit_marker, with_exit_marker

    wrapped, token = with_exit_marker("exit 3")
    assert wrapped.startswith("(\nexit 3\n)") and token in wrapped
    assert split_exit_marker(f"a\r\nb\r\n\r\n{token}3\r\n", token) == ("a\nb\n", 3)
    assert split_exit_marker("partial output", token) == ("partial output", None)
    frames = b"".join(bytes([k]) + struct.pack("<I", len(d)) + d for k, d in ((1, b"out"), (2, b"err"), (3, b"\x07")))
    assert decode_shell_v2(frames) == (b"out", b"err", 7)
    banner = b"device::ro.product.model=Pixel 7;features=cmd,shell_v2,stat_v2"
    packet = struct.pack("<6I", 0x4E584E43, 0x01000001, 4096, len(banner), sum(banner), 0x4E584E43 ^ 0xFFFFFFFF)
    assert banner_features(parse_banner(packet + banner)) == {"cmd", "shell_v2", "stat_v2"}


def test_binary_abi_check(tmp_path):
    from edge_isp.devices.errors import BenchmarkBinaryError
    from edge_isp.devices.device_runner import abi_family, binary_abi

    elf = bytearray(64)
    elf[:4] = b"\x7fELF"
    elf[5] = 1
    elf[18:20] = (183).to_bytes(2, "little")
    (tmp_path / "bm").write_bytes(bytes(elf))
    assert binary_abi(tmp_path / "bm") == "aarch64" == abi_family("arm64-v8a")
    (tmp_path / "s").write_text("#!/bin/sh\n")
    assert binary_abi(tmp_path / "s") == "script"
    (tmp_path / "junk").write_bytes(b"hello world, not a binary")
    with pytest.raises(BenchmarkBinaryError):
        binary_abi(tmp_path / "junk")
    assert Path(tmp_path / "bm").exists()
