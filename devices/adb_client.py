"""ADB through a running adb server (the ``adb`` command-line client).

Always addresses the device by serial (``-s``): an adb server probes localhost:5555 on its
own and may list a second device. Uses the shell v2 protocol (real exit status) when the
device offers it, else a marker appended to the command.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from edge_isp.devices.errors import (
    DeviceAuthError,
    DeviceDisconnectedError,
    DeviceNotFoundError,
    DeviceTimeoutError,
    TransportUnavailableError,
)
from edge_isp.devices.transport import (
    CommandResult,
    Progress,
    Transport,
    normalize_newlines,
    quote,
    split_exit_marker,
    with_exit_marker,
)

_GONE = re.compile(r"device '.*' not found|device offline|no devices/emulators found|error: closed|"
                   r"device still authorizing|protocol fault|connection reset", re.I)


def adb_path() -> str:
    exe = os.environ.get("ADB") or shutil.which("adb")
    if not exe:
        raise TransportUnavailableError(
            "the adb client is not installed (Debian/Ubuntu: apt-get install adb; or Android platform-tools); "
            "or use --transport adb-shell, which needs no adb server")
    return exe


@dataclass(frozen=True)
class AdbListing:
    serial: str
    state: str                 # device | unauthorized | offline | ...
    details: dict[str, str]


def _base(server_port: int | None) -> list[str]:
    cmd = [adb_path()]
    if server_port:
        cmd += ["-P", str(server_port)]
    return cmd


def adb_command(args: list[str], server_port: int | None = None, timeout: float = 30.0) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(_base(server_port) + args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise DeviceTimeoutError(f"'adb {' '.join(args)}' did not finish in {timeout:g} s") from exc


def list_adb_devices(server_port: int | None = None) -> list[AdbListing]:
    """``adb devices -l`` (starts the adb server if none runs)."""
    res = adb_command(["devices", "-l"], server_port)
    found = []
    for line in res.stdout.splitlines():
        line = line.strip()
        if not line or line.startswith(("List of devices", "*")):
            continue
        parts = line.split()
        if len(parts) < 2:
            continue
        details = dict(p.split(":", 1) for p in parts[2:] if ":" in p)
        found.append(AdbListing(parts[0], parts[1], details))
    return found


def adb_connect(address: str, server_port: int | None = None, auth_timeout: float = 30.0) -> None:
    """``adb connect``; waits (bounded) while the device shows its 'Allow USB debugging' prompt."""
    res = adb_command(["connect", address], server_port)
    text = (res.stdout + res.stderr).strip()
    if "connected to" in text:
        return
    if "authenticate" not in text:
        raise DeviceNotFoundError(f"adb could not connect to {address}: {text or res.returncode}")
    deadline = time.monotonic() + auth_timeout
    while time.monotonic() < deadline:   # adb reports 'failed to authenticate' while the prompt is up
        state = {d.serial: d.state for d in list_adb_devices(server_port)}.get(address)
        if state == "device":
            return
        time.sleep(0.25)
    raise DeviceAuthError(f"{address} did not accept the adb server's key within {auth_timeout:g} s; "
                          "accept the 'Allow USB debugging' prompt on the device and retry")


class AdbClientTransport(Transport):
    kind = "adb"

    def __init__(self, serial: str, server_port: int | None = None, connect: bool = False) -> None:
        self.serial = serial
        self.server_port = server_port
        if connect and ":" in serial:
            adb_connect(serial, server_port)
        listing = {d.serial: d for d in list_adb_devices(server_port)}
        if serial not in listing:
            raise DeviceNotFoundError(
                f"adb does not list {serial!r} (it lists: {', '.join(listing) or 'nothing'}); plug the device in, "
                "or 'adb connect HOST:PORT' for a network device")
        if listing[serial].state == "unauthorized":
            raise DeviceAuthError(f"{serial} is unauthorized: accept the 'Allow USB debugging' prompt on the device")
        if listing[serial].state != "device":
            raise DeviceDisconnectedError(f"{serial} is {listing[serial].state}; reconnect it", stage="connect")
        feats = self._adb(["features"], timeout=15)
        self.features = set(re.split(r"[\s,]+", feats.stdout.strip())) if feats.returncode == 0 else set()

    def _adb(self, args: list[str], timeout: float) -> subprocess.CompletedProcess:
        return adb_command(["-s", self.serial] + args, self.server_port, timeout)

    def _gone(self, res: subprocess.CompletedProcess, stage: str) -> None:
        text = (res.stderr or "") + (res.stdout or "")
        if res.returncode != 0 and _GONE.search(text):
            raise DeviceDisconnectedError(f"{self.serial} disconnected while {stage}: {text.strip().splitlines()[-1]}; "
                                          "reconnect the device and re-run", stage=stage)

    def run(self, command: str, timeout: float = 60.0) -> CommandResult:
        if "shell_v2" in self.features:
            res = self._adb(["shell", command], timeout)
            self._gone(res, f"running {command[:60]!r}")
            return CommandResult(command, normalize_newlines(res.stdout), normalize_newlines(res.stderr), res.returncode)
        wrapped, token = with_exit_marker(command)
        res = self._adb(["shell", wrapped], timeout)
        body, code = split_exit_marker(res.stdout, token)
        if code is None:
            self._gone(res, f"running {command[:60]!r}")
            raise DeviceDisconnectedError(f"{self.serial}: the output of {command[:60]!r} ended before its exit status",
                                          stage="run")
        return CommandResult(command, body, normalize_newlines(res.stderr), code, exit_code_source="marker")

    def push(self, local: Path, remote: str, progress: Progress | None = None, mode: int = 0o755) -> None:
        total = os.path.getsize(local)
        res = self._adb(["push", str(local), remote], timeout=max(120.0, total / 1e6))
        self._gone(res, f"pushing {Path(local).name}")
        if res.returncode != 0:
            raise DeviceDisconnectedError(f"adb push {local} -> {remote} failed: {(res.stderr or res.stdout).strip()}",
                                          stage="push")
        self.run(f"chmod {mode:o} {quote(remote)}")
        if progress:
            progress(total, total)

    def pull(self, remote: str, local: Path) -> None:
        res = self._adb(["pull", remote, str(local)], timeout=300)
        self._gone(res, f"pulling {remote}")
        if res.returncode != 0:
            raise DeviceDisconnectedError(f"adb pull {remote} failed: {(res.stderr or res.stdout).strip()}", stage="pull")

    def forward(self, local: str, remote: str) -> None:
        res = self._adb(["forward", local, remote], timeout=15)
        if res.returncode != 0:
            raise DeviceDisconnectedError(f"adb forward {local} {remote} failed: {res.stderr.strip()}", stage="forward")
