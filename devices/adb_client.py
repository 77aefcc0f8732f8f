"""ADB through a running adb server (the ``adb`` command-line client).

Always addresses the device by serial (``-s``): an adb server probes localhost:5555 on its
own and may list a second device. Every command gets an exit marker appended: shells
without the v2 protocol lose the exit status, and the v2 client reports status 0 when the
device vanishes, so the marker is also the proof that a command finished. Pushes run
behind a pseudo-terminal, the only place adb prints its progress.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

try:
    import pty
except ImportError:  # pragma: no cover - Windows: pushes report only their end
    pty = None  # type: ignore[assignment]

from edge_isp.devices.errors import (
    DeviceAuthError,
    DeviceCommandError,
    DeviceDisconnectedError,
    DeviceNotFoundError,
    DeviceTimeoutError,
    TransportUnavailableError,
)
from edge_isp.devices.transport import (
    CommandResult,
    Progress,
    Transport,
    describe,
    normalize_newlines,
    one_line,
    quote,
    split_exit_marker,
    with_exit_marker,
)

_GONE = re.compile(r"device '.*' not found|device offline|no devices/emulators found|error: closed|"
                   r"device still authorizing|protocol fault|connection reset", re.I)
_PERCENT = re.compile(rb"\[\s*(\d{1,3})%\]")        # adb push progress: "[ 42%] /data/local/tmp/m.tflite"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


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


def adb_command(args: list[str], server_port: int | None = None, timeout: float = 30.0,
                what: str | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(_base(server_port) + args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        what = what or describe("adb " + " ".join(args))
        raise DeviceTimeoutError(f"{what} did not finish in {timeout:g} s") from exc


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
        raise DeviceNotFoundError(f"adb could not connect to {address}: {one_line(text) or res.returncode}")
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

    def _adb(self, args: list[str], timeout: float, what: str | None = None) -> subprocess.CompletedProcess:
        return adb_command(["-s", self.serial] + args, self.server_port, timeout, what)

    def _state(self) -> str:
        """What the adb server says of the device now: 'device', 'offline', 'not found' ..."""
        try:
            res = self._adb(["get-state"], timeout=10)
        except DeviceTimeoutError:
            return "not answering"
        text = (res.stdout or res.stderr).strip().removeprefix("error:").strip()
        return text.splitlines()[-1] if res.returncode == 0 and text else (one_line(text, 80) or "gone")

    def _gone(self, code: int, text: str, stage: str) -> None:
        if code != 0 and _GONE.search(text):
            last = [ln.strip() for ln in normalize_newlines(text).splitlines() if ln.strip()][-1]
            raise DeviceDisconnectedError(f"{self.serial} disconnected while {stage}: {one_line(last, 200)}; "
                                          "reconnect the device and re-run", stage=stage)

    def _lost(self, res: subprocess.CompletedProcess, stage: str) -> NoReturn:
        """The command's output ended without its exit marker: the device (or its shell) went away."""
        self._gone(res.returncode, f"{res.stderr or ''}\n{res.stdout or ''}", stage)
        state = self._state()
        why = (f"adb now reports it as {state}" if state != "device"
               else "the shell ended before the command's exit status")
        raise DeviceDisconnectedError(f"{self.serial} disconnected while {stage} ({why}); reconnect the device "
                                      "and re-run", stage=stage)

    def run(self, command: str, timeout: float = 60.0) -> CommandResult:
        # Always the marker, also with shell v2: adb's v2 client reports exit status 0 and
        # no output when the device vanishes mid-command, so only the marker proves completion.
        stage = f"running {describe(command)}"
        wrapped, token = with_exit_marker(command)
        res = self._adb(["shell", wrapped], timeout, what=stage)
        body, code = split_exit_marker(res.stdout, token)
        if code is None:
            self._lost(res, stage)
        source = "native" if "shell_v2" in self.features else "marker"
        return CommandResult(command, body, normalize_newlines(res.stderr), code, exit_code_source=source)

    def push(self, local: Path, remote: str, progress: Progress | None = None, mode: int = 0o755) -> None:
        total = os.path.getsize(local)
        stage = f"pushing {Path(local).name}"
        args = ["push", os.path.abspath(local), remote]     # absolute: a name starting with '-' is no option
        timeout = max(120.0, total / 1e6)
        if progress is None or pty is None:
            res = self._adb(args, timeout, what=stage)
            code, text = res.returncode, f"{res.stderr or ''}\n{res.stdout or ''}"
        else:
            code, text = self._push_with_progress(args, total, progress, timeout, stage)
        self._check_transfer(code, text, stage, f"adb push to {remote}")
        self.run(f"chmod {mode:o} {quote(remote)}")
        if progress:
            progress(total, total)

    def _push_with_progress(self, args: list[str], total: int, progress: Progress, timeout: float,
                            stage: str) -> tuple[int, str]:
        """``adb push`` behind a pseudo-terminal: adb prints its '[ 42%]' lines only to a terminal."""
        master, slave = pty.openpty()
        env = dict(os.environ)
        if env.get("TERM", "dumb") == "dumb":
            env["TERM"] = "xterm"                      # adb treats TERM=dumb (or none) as no terminal
        try:
            proc = subprocess.Popen(_base(self.server_port) + ["-s", self.serial] + args, stdin=subprocess.DEVNULL,
                                    stdout=slave, stderr=slave, env=env, close_fds=True)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        deadline = time.monotonic() + timeout
        try:
            out = self._pump_progress(master, total, progress, deadline, stage)
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired as exc:
            raise DeviceTimeoutError(f"{stage} to {self.serial} did not finish in {timeout:g} s") from exc
        finally:
            os.close(master)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        text = _ANSI.sub("", out.decode("utf-8", "replace")).replace("\r", "\n")
        return code, text

    def _pump_progress(self, master: int, total: int, progress: Progress, deadline: float, stage: str) -> bytes:
        """Read adb's terminal output until it closes, reporting each new percentage as bytes."""
        out = bytearray()
        seen = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeviceTimeoutError(f"{stage} to {self.serial} did not finish in time")
            if not select.select([master], [], [], min(left, 1.0))[0]:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:                            # EIO: adb closed the terminal
                return bytes(out)
            if not chunk:
                return bytes(out)
            out += chunk
            for m in _PERCENT.finditer(out, max(0, len(out) - len(chunk) - 8)):
                pct = int(m.group(1))
                if seen < pct < 100:                   # 100% is reported once the push is confirmed
                    seen = pct
                    progress(total * pct // 100, total)

    def _check_transfer(self, code: int, text: str, stage: str, what: str) -> None:
        self._gone(code, text, stage)
        if code != 0:
            lines = [ln for ln in normalize_newlines(text).splitlines() if ln.strip()]
            raise DeviceCommandError(f"{what} failed on {self.serial}: {one_line(lines[-1] if lines else '', 200)}",
                                     exit_code=code, stdout=text)

    def pull(self, remote: str, local: Path) -> None:
        stage = f"pulling {remote}"
        res = self._adb(["pull", remote, os.path.abspath(local)], timeout=300, what=stage)
        self._check_transfer(res.returncode, f"{res.stderr or ''}\n{res.stdout or ''}", stage, f"adb pull of {remote}")

    def forward(self, local: str, remote: str) -> None:
        res = self._adb(["forward", local, remote], timeout=15)
        if res.returncode != 0:
            raise DeviceCommandError(f"adb forward {local} {remote} failed on {self.serial}: {one_line(res.stderr)}")
