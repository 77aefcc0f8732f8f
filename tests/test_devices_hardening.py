"""Issue #13: the device harness against hostile bundles, profiles and flags, a remembered
benchmark binary, adb-client push progress and disconnects, and a lost adbkey.pub.

Hostile values run through the three ways to a device: adb-shell against the ADB peer,
the adb client (private adb server) against the same peer, and SSH to a real sshd. Every
injected command would ``touch $EDGE_ISP_TEST_CANARY``; the canary must never appear.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import test_devices_ssh
from _adb_peer import AdbPeer

sshd = test_devices_ssh.sshd        # the fixture, for the SSH transport

CANARY_VAR = "EDGE_ISP_TEST_CANARY"
C = "$" + CANARY_VAR
TFLITE = b"TFL3-not-run-by-the-fake-benchmark" * 100

# benchmark_model stand-in: echoes each argument it got, checks the model is there, prints
# the real tool's result lines (fast: nothing is run)
FAKE_BENCHMARK = r"""#!/bin/sh
for a in "$@"; do printf 'ARG:%s\n' "$a"; case "$a" in --graph=*) g="${a#--graph=}";; esac; done
[ -f "$g" ] || { echo "ERROR: no model at $g"; exit 3; }
echo "INFO: which=__WHICH__"
echo "INFO: count=1 first=900 curr=900 min=900 max=900 avg=900 std=0"
echo "INFO: count=3 first=900 curr=900 min=800 max=1000 avg=900 std=50"
echo "INFO: Inference timings in us: Init: 100, First inference: 900, Warmup (avg): 900, Inference (avg): 900"
"""
FAILING_BENCHMARK = "#!/bin/sh\necho 'ERROR: Failed to load the model'\nexit 1\n"


def _fake(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def _bundle(folder: Path, file_name: str = "model.tflite", target: str = "cpu-fp32", data: bytes = TFLITE,
            extra: dict[str, bytes] | None = None, **artifact: Any) -> Path:
    """A bundle as 'edge-isp convert' writes it; ``artifact`` overrides manifest fields."""
    from edge_isp.converters.targets import get_target

    folder.mkdir(parents=True, exist_ok=True)
    (folder / file_name).write_bytes(data)
    for name, content in (extra or {}).items():
        (folder / name).write_bytes(content)
    t = get_target(target)
    manifest = {
        "schema": "edge-isp/bundle@1", "model": {"name": "hostile"},
        "target": {"name": t.name, "runtime": t.runtime, "delegate": t.delegate, "precision": t.precision},
        "artifact": {"file": file_name, "sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data),
                     **({"extra_files": list(extra)} if extra else {}), **artifact},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Device:
    dev: Any                              # ConnectedDevice
    kind: str
    canary: Path
    base: str                             # a device folder the test may create work folders in
    host_path: Any                        # device path -> the host path it lives at

    @property
    def workdir(self) -> str:
        return f"{self.base}/edge-isp"


@pytest.fixture()
def peer(tmp_path):
    p = AdbPeer(tmp_path / "phone", env={CANARY_VAR: str(tmp_path / "canary")}).start()
    yield p
    p.stop()


@pytest.fixture()
def adb_server(tmp_path, monkeypatch):
    """A private adb server (its own port and $HOME); killed at the end."""
    if shutil.which("adb") is None:
        pytest.skip("the adb client is not installed (apt-get install adb)")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    port = _free_port()
    yield port
    subprocess.run(["adb", "-P", str(port), "kill-server"], capture_output=True, timeout=20)


@pytest.fixture(params=["adb-shell", "adb", "ssh"])
def device(request, config, tmp_path):
    """One device per transport, with a canary the injected commands would create."""
    from edge_isp.devices.discovery import identify, select_device

    if request.param == "ssh":
        if test_devices_ssh.SSHD is None or shutil.which("ssh") is None:
            pytest.skip("needs openssh-server and openssh-client")
        from edge_isp.devices.ssh import SshTransport

        s = request.getfixturevalue("sshd")
        t = SshTransport(f"{s['user']}@127.0.0.1:{s['port']}", options=s["opts"])
        d = Device(identify(t), "ssh", s["canary"], str(tmp_path / "board"), Path)
        yield d
        d.dev.close()
        return
    p = request.getfixturevalue("peer")
    port = request.getfixturevalue("adb_server") if request.param == "adb" else None
    dev = select_device("pixel", serial=p.address, transport=request.param, adb_server_port=port)
    yield Device(dev, request.param, tmp_path / "canary", "/data/local/tmp", p.host_path)
    dev.close()


def _hostile_profile(os_name: str):
    """A device profile whose accelerator name and power/thermal patterns try to run commands."""
    from edge_isp.devices.profiles import Accelerator, DeviceProfile

    npu = Accelerator(name="npu", kind="npu", nnapi_name=f"npu;touch {C};'\"$(touch {C})`touch {C}`",
                      delegates=("nnapi",), targets=("nnapi-fp16", "cpu-fp32"))
    power = {"sources": ["odpm", "battery", "hwmon"], "odpm": f"/sys/x$(touch {C})*/energy_value",
             "battery": {"current_now": f"/sys/class/power_supply/battery/current_now;touch {C}",
                         "voltage_now": f"/sys/`touch {C}`[0-9]/voltage_now"},
             "hwmon": [{"rail": "vdd", "power": f"/sys/class/hwmon/hwmon*/power1_input' ; touch {C} ; '"}]}
    return DeviceProfile(name="hostile", os=os_name, accelerators=(npu,), power=power,
                         thermal={"zones": [f"$(touch {C})"]})


# file names that are legal in a bundle (no '/', no newline) and are shell syntax
HOSTILE_NAMES = [f"m;touch {C};#.tflite", f"m$(touch {C}).tflite", f"m`touch {C}`.tflite",
                 f"m'$(touch {C})'.tflite", f'm"$(touch {C})".tflite', "-m .tflite"]


def test_hostile_names_profile_and_flags_are_quoted(device, tmp_path):
    """Shell syntax in file names, the profile, --workdir and extra flags reaches the device as
    data: every bundle runs, each argument arrives unchanged, the canary never appears."""
    from edge_isp.devices.harness import ProfileOptions, profile_bundles

    device.dev.profile = _hostile_profile(device.dev.info.os)
    bundles = [_bundle(tmp_path / f"b{i}", name, target="nnapi-fp16", data=TFLITE + bytes([i]))
               for i, name in enumerate(HOSTILE_NAMES)]
    weights = f"w'$(touch {C})`touch {C}`;.bin"
    bundles.append(_bundle(tmp_path / "extra", "model.tflite", data=TFLITE + b"x", extra={weights: b"w" * 1000}))
    workdir = f"{device.base}/edge isp'$(touch {C})\"`touch {C}`"
    flag = f"--hostile=$(touch {C});'\"`touch {C}`"
    opts = ProfileOptions(runs=1, warmup_runs=1, idle_s=0, sample_hz=50, workdir=workdir, extra_flags=(flag,),
                          benchmark_binary=_fake(tmp_path / "benchmark_model", FAKE_BENCHMARK))
    report = profile_bundles(device.dev, bundles, opts)
    assert len(report.runs) == len(bundles)
    for run, name in zip(report.runs, [*HOSTILE_NAMES, "model.tflite"]):
        args = [ln[4:] for ln in run.bench_log.splitlines() if ln.startswith("ARG:")]
        graph = next(a for a in args if a.startswith("--graph="))
        assert graph.endswith("/" + name) and flag in args
        if run.target == "nnapi-fp16":
            assert f"--nnapi_accelerator_name={_hostile_profile('linux').accelerators[0].nnapi_name}" in args
    remote_dir = f"{workdir}/models/{report.runs[-1].bundle_sha256[:12]}"
    assert device.host_path(f"{remote_dir}/{weights}").read_bytes() == b"w" * 1000
    assert device.host_path(f"{workdir}/benchmark_model").is_file()
    assert not device.canary.exists()


def _hostile_bundles(tmp_path: Path) -> dict[str, Path]:
    """Bundles whose manifest was edited (or model changed): each must be refused."""
    real = hashlib.sha256(TFLITE).hexdigest()
    tmp_path.mkdir()
    (tmp_path / "outside.bin").write_bytes(b"secret")
    cases: dict[str, dict[str, Any]] = {
        "sha-semicolon": {"sha256": f"0000;touch {C};#"},
        "sha-subshell": {"sha256": f"$(touch {C})"},
        "sha-backticks": {"sha256": f"`touch {C}`" + "0" * 50},
        "sha-quotes": {"sha256": f"'\"; touch {C}; echo '"},
        "sha-newline": {"sha256": real + f"\ntouch {C}"},
        "sha-uppercase": {"sha256": real.upper()},
        "sha-wrong": {"sha256": "0" * 64},
        "sha-not-a-string": {"sha256": 1234},
        "extra-dotdot": {"extra_files": ["../outside.bin"]},
        "extra-absolute": {"extra_files": [str(tmp_path / "outside.bin")]},
        "extra-separator": {"extra_files": ["sub/w.bin"]},
        "extra-newline": {"extra_files": [f"w\ntouch {C}.bin"]},
        "extra-not-a-list": {"extra_files": "w.bin"},
        "file-dotdot": {"file": "../outside.bin"},
        "file-newline": {"file": f"m\ntouch {C}.tflite"},
    }
    out = {}
    for name, fields in cases.items():
        folder = _bundle(tmp_path / name, extra={"w.bin": b"w"})
        (folder / "sub").mkdir()
        (folder / "sub" / "w.bin").write_bytes(b"w")
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["artifact"].update(fields)
        (folder / "manifest.json").write_text(json.dumps(manifest))
        out[name] = folder
    tampered = _bundle(tmp_path / "model-changed")
    (tampered / "model.tflite").write_bytes(TFLITE + b"; touch canary")     # changed after conversion
    out["model-changed"] = tampered
    return out


def test_hostile_manifests_are_refused_before_anything_is_pushed(device, tmp_path):
    from edge_isp.devices.harness import Harness, ProfileOptions, profile_bundles
    from edge_isp.errors import BundleError

    good = _bundle(tmp_path / "good")
    opts = ProfileOptions(runs=1, idle_s=0, workdir=device.workdir,
                          benchmark_binary=_fake(tmp_path / "benchmark_model", FAKE_BENCHMARK))
    for case, bundle in _hostile_bundles(tmp_path / "cases").items():
        with pytest.raises(BundleError) as info:
            profile_bundles(device.dev, [good, bundle], opts)      # the good one first: still nothing is pushed
        msg = str(info.value)
        assert "\n" not in msg and "re-run 'edge-isp convert'" in msg, (case, msg)
        with pytest.raises(BundleError):
            Harness(device.dev, opts).run_bundle(bundle)
        assert not device.canary.exists(), case
        assert not device.host_path(device.workdir).exists(), f"{case}: something reached the device"


def test_hostile_python_flag_runs_nothing(device, tmp_path):
    from edge_isp.devices.errors import BenchmarkBinaryError
    from edge_isp.devices.harness import ProfileOptions, profile_bundles

    opts = ProfileOptions(runs=1, idle_s=0, workdir=device.workdir, python=f"python3; touch {C}; `touch {C}`")
    with pytest.raises(BenchmarkBinaryError) as info:
        profile_bundles(device.dev, [_bundle(tmp_path / "b")], opts)
    assert "\n" not in str(info.value) and info.value.exit_code == 3
    assert not device.canary.exists()
    assert not device.host_path(f"{device.workdir}/litert_runner.py").exists()


def test_hostile_bundle_through_the_cli_is_one_line_exit_3(config, peer, tmp_path):
    from test_devices_e2e import cli

    bundle = _bundle(tmp_path / "b", sha256=f"0000;touch {C};#")
    fake = _fake(tmp_path / "benchmark_model", FAKE_BENCHMARK)
    res = cli("profile", str(bundle), "--serial", peer.address, "--transport", "adb-shell",
              "--benchmark-binary", str(fake), "--no-store", env=dict(os.environ))
    assert res.returncode == 3, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and "artifact.sha256" in errors[0] and "Traceback" not in res.stderr
    assert not (tmp_path / "canary").exists() and not peer.host_path("/data/local/tmp/edge-isp").exists()


# -- a remembered benchmark binary --------------------------------------------------------

@pytest.fixture()
def phone(config, peer):
    from edge_isp.devices.discovery import select_device

    dev = select_device("pixel", serial=peer.address, transport="adb-shell")
    yield dev
    dev.close()


def test_only_a_binary_that_ran_is_remembered(phone, tmp_path):
    from edge_isp.devices.config import cached_binary
    from edge_isp.devices.errors import DeviceCommandError
    from edge_isp.devices.harness import ProfileOptions, profile_bundles

    bundle = _bundle(tmp_path / "b")
    (tmp_path / "bad").mkdir()
    bad = _fake(tmp_path / "bad" / "benchmark_model", FAILING_BENCHMARK)
    with pytest.raises(DeviceCommandError, match="Failed to load the model") as info:
        profile_bundles(phone, [bundle], ProfileOptions(runs=1, idle_s=0, benchmark_binary=bad))
    assert "\n" not in str(info.value)
    assert cached_binary("x86_64") is None                 # pushed and ran, but failed: not remembered
    good = _fake(tmp_path / "benchmark_model", FAKE_BENCHMARK)
    run = profile_bundles(phone, [bundle], ProfileOptions(runs=1, idle_s=0, benchmark_binary=good)).runs[0]
    assert cached_binary("x86_64") == good.resolve()
    assert run.runner == f"benchmark_model ({good.resolve()}, --benchmark-binary)"


def test_explicit_binary_wins_over_the_remembered_one(phone, tmp_path):
    from edge_isp.devices.config import cached_binary, remember_binary
    from edge_isp.devices.harness import ProfileOptions, profile_bundles

    bundle = _bundle(tmp_path / "b")
    old = _fake(tmp_path / "old_benchmark_model", FAKE_BENCHMARK.replace("__WHICH__", "old"))
    new = _fake(tmp_path / "new_benchmark_model", FAKE_BENCHMARK.replace("__WHICH__", "new"))
    remember_binary("x86_64", old)
    run = profile_bundles(phone, [bundle], ProfileOptions(runs=1, idle_s=0)).runs[0]
    assert "which=old" in run.bench_log and run.runner == f"benchmark_model ({old.resolve()}, remembered)"
    run = profile_bundles(phone, [bundle], ProfileOptions(runs=1, idle_s=0, benchmark_binary=new)).runs[0]
    assert "which=new" in run.bench_log and run.runner == f"benchmark_model ({new.resolve()}, --benchmark-binary)"
    assert run.extra["runner_detail"]["source"] == "--benchmark-binary"
    assert cached_binary("x86_64") == new.resolve()         # it ran: now it is the remembered one


def test_a_failing_remembered_binary_says_so(phone, tmp_path):
    from edge_isp.devices.config import remember_binary
    from edge_isp.devices.errors import DeviceCommandError
    from edge_isp.devices.harness import ProfileOptions, profile_bundles

    remember_binary("x86_64", _fake(tmp_path / "benchmark_model", FAILING_BENCHMARK))
    with pytest.raises(DeviceCommandError, match="remembered .* pass --benchmark-binary"):
        profile_bundles(phone, [_bundle(tmp_path / "b")], ProfileOptions(runs=1, idle_s=0))


def test_both_explicit_runners_is_an_input_error(phone, tmp_path):
    from edge_isp.devices.harness import ProfileOptions, profile_bundles
    from edge_isp.errors import InputError

    opts = ProfileOptions(benchmark_binary=_fake(tmp_path / "benchmark_model", FAKE_BENCHMARK), python="python3")
    with pytest.raises(InputError, match="--benchmark-binary and --python"):
        profile_bundles(phone, [_bundle(tmp_path / "b")], opts)


def test_explicit_python_wins_over_the_remembered_binary_in_the_cli(config, peer, tmp_path, tmp_path_factory):
    """The issue's case: a remembered binary, then 'profile --python': the Python runner
    produces the figures, and the table and JSON say which runner did."""
    from test_devices_e2e import build_tiny_tflite, cli, make_bundle

    from edge_isp.devices.config import remember_binary

    bundle = make_bundle(tmp_path / "bundle", build_tiny_tflite(tmp_path_factory), "tiny-isp")
    remember_binary("x86_64", _fake(tmp_path / "benchmark_model", FAKE_BENCHMARK.replace("__WHICH__", "old")))
    env = dict(os.environ)
    common = ("profile", str(bundle), "--serial", peer.address, "--transport", "adb-shell", "--runs", "2",
              "--idle-s", "0", "--no-store")
    res = cli(*common, "--python", sys.executable, "--json", env=env)
    assert res.returncode == 0, res.stderr
    run = json.loads(res.stdout)[0]
    assert run["runtime"] == "python-litert" and run["runner"] == f"python-litert ({sys.executable}, --python)"
    assert "which=old" not in json.dumps(run)
    res = cli(*common, env=env)                            # no flag: the remembered binary, and the table says so
    assert res.returncode == 0, res.stderr
    assert f"runner: benchmark_model ({(tmp_path / 'benchmark_model').resolve()}, remembered)" in res.stdout


# -- the adb client: push progress and disconnects ------------------------------------------

def test_adb_client_push_reports_progress_while_it_runs(tmp_path, adb_server):
    from edge_isp.devices.adb_client import AdbClientTransport, adb_command

    data = os.urandom(8 * 1024 * 1024 + 17)
    src = tmp_path / "model.tflite"
    src.write_bytes(data)
    with AdbPeer(tmp_path / "phone") as p:
        try:
            t = AdbClientTransport(p.address, server_port=adb_server, connect=True)
            seen: list[tuple[int, int]] = []
            t.push(src, "/data/local/tmp/model.tflite", progress=lambda d, n: seen.append((d, n)))
            assert p.host_path("/data/local/tmp/model.tflite").read_bytes() == data
        finally:
            adb_command(["disconnect", p.address], adb_server)
    middle = [d for d, n in seen if 0 < d < n]
    assert len(middle) >= 5 and middle == sorted(middle), seen[:10]
    assert seen[-1] == (len(data), len(data)) and all(n == len(data) for _, n in seen)


@pytest.mark.parametrize("shell_v2", [True, False], ids=["shell-v2", "old-adbd"])
def test_adb_client_disconnect_mid_command_says_disconnected(tmp_path, adb_server, shell_v2):
    import time

    from edge_isp.devices.adb_client import AdbClientTransport, adb_command
    from edge_isp.devices.errors import DeviceDisconnectedError

    with AdbPeer(tmp_path / "phone", shell_v2=shell_v2, drop_on="sleep 5", drop_after_s=0.3) as p:
        try:
            t = AdbClientTransport(p.address, server_port=adb_server, connect=True)
            assert t.run("echo alive").stdout == "alive\n"
            start = time.monotonic()
            with pytest.raises(DeviceDisconnectedError) as info:
                t.run("cd /data/local/tmp\nsleep 5; echo never", timeout=30)     # a script, as the harness sends
            assert time.monotonic() - start < 10
        finally:
            adb_command(["disconnect", p.address], adb_server)
    msg = str(info.value)
    assert "disconnected" in msg and "\n" not in msg and "\\n" not in msg, msg
    assert p.address in msg and "reconnect" in msg


# -- the ADB key ------------------------------------------------------------------------------

def test_lost_adbkey_pub_is_rebuilt_from_the_private_key(config):
    from edge_isp.devices.config import adb_key_path

    key = adb_key_path()
    private, public = key.read_bytes(), (key.parent / "adbkey.pub").read_bytes()
    (key.parent / "adbkey.pub").unlink()
    assert adb_key_path() == key
    assert key.read_bytes() == private                      # the key the phone authorised is kept
    assert (key.parent / "adbkey.pub").read_bytes() == public


def test_unreadable_adbkey_is_never_replaced(config):
    from edge_isp.devices.config import adb_key_path
    from edge_isp.devices.errors import DeviceAuthError

    key = config / "adb" / "adbkey"
    key.parent.mkdir(parents=True)
    key.write_bytes(b"not a PEM key")
    with pytest.raises(DeviceAuthError, match="cannot be read") as info:
        adb_key_path()
    assert "\n" not in str(info.value) and key.read_bytes() == b"not a PEM key"


def test_rebuilt_key_is_accepted_by_the_phone(config, tmp_path):
    from _adb_peer import decode_adb_pubkey

    from edge_isp.devices.adb_python import AdbShellTransport
    from edge_isp.devices.config import adb_key_path

    key = adb_key_path()
    authorised = decode_adb_pubkey((key.parent / "adbkey.pub").read_bytes())
    (key.parent / "adbkey.pub").unlink()
    with AdbPeer(tmp_path / "phone", authorized_keys=[authorised], accept_new_keys=False) as p:
        AdbShellTransport(p.address).close()
        assert p.auth_log == ["signature"]                  # no new authorisation prompt


# -- small pieces ---------------------------------------------------------------------------------

def test_quote_glob_keeps_only_glob_characters_active(tmp_path):
    from edge_isp.devices.transport import describe, quote_glob

    for i in range(3):
        (tmp_path / f"hwmon{i}").mkdir()
        (tmp_path / f"hwmon{i}" / "power1_input").write_text("1")
    canary = tmp_path / "canary"
    for pattern in (f"{tmp_path}/hwmon*/power1_input", f"{tmp_path}/hwmon[0-9]/power?_input",
                    f"{tmp_path}/hwmon*/power1_input;touch {canary}", f"{tmp_path}/$(touch {canary})*",
                    f"{tmp_path}/[$(touch {canary})]", f"{tmp_path}/'`touch {canary}`'*"):
        out = subprocess.run(["sh", "-c", f"for f in {quote_glob(pattern)}; do echo \"$f\"; done"],
                             capture_output=True, text=True).stdout.split("\n")
        if "touch" not in pattern:
            assert len([f for f in out if f.endswith("power1_input")]) == 3, pattern
    assert not canary.exists()
    assert describe("cd /x || exit 90\nsleep 1") == "'cd /x || exit 90 ...'"


def test_ssh_host_that_is_an_option_is_refused(tmp_path):
    from edge_isp.devices.ssh import SshTransport
    from edge_isp.errors import InputError

    if shutil.which("ssh") is None:
        pytest.skip("needs openssh-client")
    for host in (f"-oProxyCommand=touch {tmp_path / 'canary'}", "user@-oProxyCommand=x", "host name", "h;x",
                 "host:port"):
        with pytest.raises(InputError) as info:
            SshTransport(host, connect_timeout=1)
        assert "\n" not in str(info.value)
    assert not (tmp_path / "canary").exists()
