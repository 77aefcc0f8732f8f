"""The SSH transport against a real sshd started on 127.0.0.1 with a temporary config,
and a Linux 'board' profile run through it with the Python runner."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)
pytestmark = pytest.mark.skipif(SSHD is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None,
                                reason="needs openssh-server and openssh-client (apt-get install openssh-server)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def sshd(tmp_path):
    """sshd on a free loopback port, key auth only, this user; stopped by pid at the end."""
    d = tmp_path / "sshd"
    d.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "client_key")], check=True)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nLogLevel ERROR\n"
        f"Subsystem sftp internal-sftp\n"
        # hostile-input tests: injected commands would 'touch $EDGE_ISP_TEST_CANARY'
        f"SetEnv EDGE_ISP_TEST_CANARY={d / 'canary'}\n")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)   # privilege-separation folder sshd wants as root
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None:
            pytest.skip(f"sshd did not start: {proc.stderr.read().decode()[-300:]}")
        time.sleep(0.05)
    (d / "ssh_config").write_text("")
    opts = {"StrictHostKeyChecking": "no", "UserKnownHostsFile": str(d / "known_hosts"),
            "IdentityFile": str(d / "client_key"), "IdentitiesOnly": "yes"}
    yield {"port": port, "user": getpass.getuser(), "opts": opts, "dir": d, "canary": d / "canary"}
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_ssh_run_push_pull_stat(sshd, tmp_path):
    from edge_isp.devices.ssh import SshTransport

    t = SshTransport(f"{sshd['user']}@127.0.0.1:{sshd['port']}", options=sshd["opts"])
    try:
        r = t.run("echo out; echo err >&2; exit 5")
        assert (r.stdout, r.stderr, r.exit_code) == ("out\n", "err\n", 5)
        data = os.urandom(2_000_000)
        src = tmp_path / "m.tflite"
        src.write_bytes(data)
        remote = str(tmp_path / "remote" / "m.tflite")
        t.run(f"mkdir -p {tmp_path / 'remote'}").check()
        seen = []
        t.push(src, remote, progress=lambda d, n: seen.append(d))
        assert seen[-1] == len(data)
        st = t.stat(remote)
        assert st is not None and st.size == len(data) and (st.mode & 0o777) == 0o755
        assert t.stat(remote + ".missing") is None
        t.pull(remote, tmp_path / "back")
        assert (tmp_path / "back").read_bytes() == data
        info = t.info()
        assert info.os == "linux" and info.abi
    finally:
        t.close()


def test_ssh_refused_key_is_a_clear_error(sshd, tmp_path):
    from edge_isp.devices.errors import DeviceAuthError
    from edge_isp.devices.ssh import SshTransport

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    opts = dict(sshd["opts"], IdentityFile=str(tmp_path / "other"))
    with pytest.raises(DeviceAuthError, match="refused"):
        SshTransport(f"{sshd['user']}@127.0.0.1:{sshd['port']}", options=opts)


def test_profile_a_linux_board_over_ssh_with_the_python_runner(sshd, tmp_path, monkeypatch, tmp_path_factory):
    """A 'board' with Python and ai-edge-litert but no benchmark_model: litert_runner.py is pushed and run."""
    pytest.importorskip("ai_edge_litert")
    from test_devices_e2e import build_tiny_tflite, make_bundle

    from edge_isp.devices.discovery import identify
    from edge_isp.devices.harness import ProfileOptions, profile_bundles
    from edge_isp.devices.ssh import SshTransport

    monkeypatch.setenv("EDGE_ISP_CONFIG_DIR", str(tmp_path / "config"))
    model = build_tiny_tflite(tmp_path_factory)
    bundle = make_bundle(tmp_path / "bundle", model, "tiny-isp")
    t = SshTransport(f"{sshd['user']}@127.0.0.1:{sshd['port']}", options=sshd["opts"])
    dev = identify(t)
    try:
        opts = ProfileOptions(runs=5, idle_s=0.2, runner="python", python=sys.executable,
                              workdir=str(tmp_path / "board"), device_id="ci-board")
        report = profile_bundles(dev, [bundle], opts)
    finally:
        dev.close()
    run = report.runs[0]
    assert run.runtime == "python-litert" and run.device_id == "ci-board"
    assert run.metrics["latency_ms.mean"] > 0 and run.metrics["peak_rss_mb"] > 5
    assert (tmp_path / "board" / "litert_runner.py").is_file()
