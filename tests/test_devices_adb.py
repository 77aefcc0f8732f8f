"""ADB transports against the in-test adbd peer: the real adb-shell client, and the real adb
client (through an adb server on a private port) when it is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from _adb_peer import AdbPeer, android_userland_available, decode_adb_pubkey, wait_port_closed


@pytest.fixture()
def peer(tmp_path):
    p = AdbPeer(tmp_path / "phone").start()
    yield p
    p.stop()
    assert wait_port_closed(p.port)


def test_key_created_on_first_use_and_accepted_then_signed(config, tmp_path):
    from edge_isp.devices.adb_python import AdbShellTransport

    with AdbPeer(tmp_path / "phone") as p:
        t = AdbShellTransport(p.address)
        t.close()
        assert (config / "adb" / "adbkey").is_file() and (config / "adb" / "adbkey.pub").is_file()
        assert oct((config / "adb" / "adbkey").stat().st_mode & 0o777) == "0o600"
        # the phone stored our public key ("Always allow"): the next connection signs the token
        AdbShellTransport(p.address).close()
        assert p.auth_log == ["new-key", "signature"]


def test_known_key_signs_and_unknown_key_is_refused(config, tmp_path):
    from edge_isp.devices.adb_python import AdbShellTransport
    from edge_isp.devices.config import adb_key_path
    from edge_isp.devices.errors import DeviceAuthError

    key = adb_key_path()
    pub = decode_adb_pubkey((key.parent / "adbkey.pub").read_bytes())
    with AdbPeer(tmp_path / "a", authorized_keys=[pub], accept_new_keys=False) as p:
        AdbShellTransport(p.address).close()
        assert p.auth_log == ["signature"]
    with AdbPeer(tmp_path / "b", accept_new_keys=False) as p:
        with pytest.raises(DeviceAuthError, match="refused our ADB key"):
            AdbShellTransport(p.address, connect_timeout=3, auth_timeout=3)


@pytest.mark.parametrize("shell_v2,crlf,userland", [(True, False, "host"), (False, True, "host"),
                                                     (True, False, "android")],
                         ids=["shell-v2", "old-adbd-crlf", "mksh-toybox"])
def test_exit_codes_streams_and_crlf(config, tmp_path, shell_v2, crlf, userland):
    from edge_isp.devices.adb_python import AdbShellTransport

    if userland == "android" and not android_userland_available():
        pytest.skip("mksh and toybox are not installed (apt-get install mksh toybox)")
    with AdbPeer(tmp_path / "phone", shell_v2=shell_v2, crlf=crlf, userland=userland) as p:
        t = AdbShellTransport(p.address)
        try:
            assert t.shell_v2 is shell_v2
            r = t.run("echo out; echo err >&2; exit 7")
            assert r.exit_code == 7
            assert r.exit_code_source == ("native" if shell_v2 else "marker")
            if shell_v2:
                assert (r.stdout, r.stderr) == ("out\n", "err\n")
            else:  # v1 merges stderr into stdout, and a pty answers with CRLF
                assert r.stdout == "out\nerr\n" and "\r" not in r.stdout
            assert t.run("printf 'no newline'").stdout == "no newline"
            assert t.run("true").exit_code == 0 and t.run("false").exit_code == 1
            info = t.info()
            assert (info.os, info.model, info.api_level, info.abi) == ("android", "Pixel 7", 34, "x86_64")
        finally:
            t.close()


def test_push_pull_stat_3mb_fast_and_atomic(config, peer, tmp_path):
    from edge_isp.devices.adb_python import AdbShellTransport

    data = os.urandom(3 * 1024 * 1024 + 123)
    src = tmp_path / "model.tflite"
    src.write_bytes(data)
    t = AdbShellTransport(peer.address)
    try:
        seen = []
        start = time.monotonic()
        t.push(src, "/data/local/tmp/model.tflite", progress=lambda d, n: seen.append((d, n)))
        t.pull("/data/local/tmp/model.tflite", tmp_path / "back.bin")
        elapsed = time.monotonic() - start
        assert (tmp_path / "back.bin").read_bytes() == data
        assert elapsed < 10, f"3 MB push+pull took {elapsed:.1f} s (TCP_NODELAY missing?)"
        assert seen[-1] == (len(data), len(data)) and len(seen) > 10
        st = t.stat("/data/local/tmp/model.tflite")
        assert st is not None and st.size == len(data) and not st.is_dir
        assert t.stat("/data/local/tmp/missing") is None
        assert t.run("ls /data/local/tmp").stdout.split() == ["model.tflite"]   # no partial files left
    finally:
        t.close()


def test_device_that_drops_the_connection_gives_a_clear_error(config, tmp_path):
    from edge_isp.devices.adb_python import AdbShellTransport
    from edge_isp.devices.errors import DeviceDisconnectedError

    with AdbPeer(tmp_path / "phone", drop_on="sleep 5", drop_after_s=0.2) as p:
        t = AdbShellTransport(p.address)
        assert t.run("echo alive").stdout == "alive\n"
        start = time.monotonic()
        with pytest.raises(DeviceDisconnectedError, match="disconnected while running"):
            t.run("sleep 5; echo never", timeout=30)
        assert time.monotonic() - start < 4
        t.close()


def test_unreachable_address_is_a_clear_error(config):
    from edge_isp.devices.adb_python import AdbShellTransport
    from edge_isp.devices.errors import DeviceNotFoundError

    with pytest.raises(DeviceNotFoundError, match="cannot reach adbd"):
        AdbShellTransport("127.0.0.1:1", connect_timeout=2)


def test_devices_command_lists_two_phones_with_their_profiles(config, tmp_path):
    """Two devices attached: each is listed with the profile it matched; --device picks by profile."""
    from edge_isp.devices.discovery import list_connected, select_device
    from edge_isp.devices.errors import AmbiguousDeviceError

    samsung = {"ro.product.model": "SM-S901B", "ro.product.manufacturer": "samsung", "ro.product.device": "r0s",
               "ro.board.platform": "s5e9925", "ro.soc.model": "s5e9925", "ro.serialno": "R3CS22"}
    with AdbPeer(tmp_path / "p1") as pixel, AdbPeer(tmp_path / "p2", props=samsung) as galaxy:
        found, notes = list_connected(serials=[pixel.address, galaxy.address], transport="adb-shell",
                                      include_known=False)
        try:
            assert {d.info.serial: d.profile.name for d in found} == {pixel.address: "pixel-7",
                                                                      galaxy.address: "galaxy-s22-exynos"}
        finally:
            for d in found:
                d.close()
        # both are now remembered: --device picks the one its profile matches, without --serial
        # (adb-shell discovery: no adb server gets started)
        dev = select_device("pixel", transport="adb-shell")
        assert dev.profile.name == "pixel-7" and dev.info.serial == pixel.address
        dev.close()
        dev = select_device("exynos", transport="adb-shell")
        assert dev.profile.name == "galaxy-s22-exynos"
        dev.close()
        with pytest.raises(AmbiguousDeviceError, match="pick one with --serial"):
            select_device("android", transport="adb-shell")


def test_devices_cli_json(config, peer):
    from typer.testing import CliRunner

    from edge_isp.cli import app

    res = CliRunner().invoke(app, ["devices", "--serial", peer.address, "--transport", "adb-shell",
                                   "--no-known", "--json"])
    assert res.exit_code == 0, res.output
    import json

    data = json.loads(res.output)
    assert data["devices"][0]["profile"] == "pixel-7" and data["devices"][0]["api_level"] == 34


@pytest.mark.skipif(shutil.which("adb") is None, reason="the adb client is not installed (apt-get install adb)")
@pytest.mark.parametrize("shell_v2", [True, False], ids=["shell-v2", "old-adbd"])
def test_adb_client_transport_through_a_private_adb_server(tmp_path, shell_v2, monkeypatch):
    from edge_isp.devices.adb_client import AdbClientTransport, adb_command

    env_home = tmp_path / "home"
    env_home.mkdir()
    port = 20000 + os.getpid() % 20000
    monkeypatch.setenv("HOME", str(env_home))   # the adb server keeps its own key under $HOME/.android
    try:
        with AdbPeer(tmp_path / "phone", shell_v2=shell_v2) as p:
            try:
                t = AdbClientTransport(p.address, server_port=port, connect=True)
                r = t.run("echo out; echo err >&2; exit 3")
                assert r.exit_code == 3 and "out" in r.stdout
                src = tmp_path / "m.bin"
                src.write_bytes(os.urandom(1_000_000))
                t.push(src, "/data/local/tmp/m.bin")
                st = t.stat("/data/local/tmp/m.bin")
                assert st is not None and st.size == 1_000_000
                t.pull("/data/local/tmp/m.bin", tmp_path / "back.bin")
                assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
                assert t.info().model == "Pixel 7"
            finally:
                adb_command(["disconnect", p.address], port)
    finally:
        subprocess.run(["adb", "-P", str(port), "kill-server"], capture_output=True, timeout=20)


def test_benchmark_binary_for_the_wrong_abi_is_refused(config, peer, tmp_path):
    from edge_isp.devices.discovery import select_device
    from edge_isp.devices.errors import BenchmarkBinaryError
    from edge_isp.devices.harness import Harness, ProfileOptions

    elf = bytearray(64)
    elf[:4], elf[5], elf[18:20] = b"\x7fELF", 1, (183).to_bytes(2, "little")    # aarch64
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(bytes(elf))
    dev = select_device("pixel", serial=peer.address, transport="adb-shell")   # the peer says x86_64
    try:
        with pytest.raises(BenchmarkBinaryError, match="built for aarch64 but .* x86_64"):
            Harness(dev, ProfileOptions(benchmark_binary=binary)).prepare()
        with pytest.raises(BenchmarkBinaryError, match="--benchmark-binary PATH"):
            Harness(dev, ProfileOptions()).prepare()
    finally:
        dev.close()


@pytest.mark.skipif(shutil.which("adb") is None, reason="the adb client is not installed (apt-get install adb)")
def test_profile_through_the_adb_client(tmp_path, monkeypatch, tmp_path_factory):
    """The whole harness over the adb client (adb server on a private port) against the peer."""
    import sys

    from _adb_peer import FAKE_BENCHMARK_MODEL, PowerRails
    from test_devices_e2e import RUNNER, build_tiny_tflite, make_bundle

    from edge_isp.devices.discovery import select_device
    from edge_isp.devices.harness import ProfileOptions, profile_bundles

    monkeypatch.setenv("EDGE_ISP_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("HOME", str(tmp_path))
    bundle = make_bundle(tmp_path / "bundle", build_tiny_tflite(tmp_path_factory), "tiny-isp")
    fake = tmp_path / "benchmark_model"
    fake.write_text(FAKE_BENCHMARK_MODEL.format(python=sys.executable, runner=RUNNER))
    fake.chmod(0o755)
    port = 20000 + (os.getpid() + 7) % 20000
    rails = PowerRails(tmp_path / "phone").start()
    try:
        with AdbPeer(tmp_path / "phone", userland="android") as p:
            try:
                dev = select_device("pixel", serial=p.address, transport="adb", adb_server_port=port)
                report = profile_bundles(dev, [bundle], ProfileOptions(runs=5, idle_s=0.5, min_secs=1,
                                                                       benchmark_binary=fake))
                dev.close()
            finally:
                subprocess.run(["adb", "-P", str(port), "kill-server"], capture_output=True, timeout=20)
    finally:
        rails.stop()
    run = report.runs[0]
    assert run.extra["device"]["transport"] == "adb" and run.device_id == "pixel-7"
    assert run.metrics["power_w"] == pytest.approx(3.6, rel=0.2) and run.metrics["peak_rss_mb"] > 5
