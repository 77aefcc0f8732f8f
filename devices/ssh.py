"""SSH for embedded Linux boards without adbd (Raspberry Pi, Jetson, RK3588), via the system ssh.

Non-interactive (BatchMode: keys or an agent, never a password prompt), one multiplexed
connection per board where the OpenSSH client supports it. Files go through ``cat`` on
the remote side, so no sftp subsystem is needed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from edge_isp.devices.errors import (
    DeviceAuthError,
    DeviceCommandError,
    DeviceDisconnectedError,
    DeviceNotFoundError,
    DeviceTimeoutError,
    TransportUnavailableError,
)
from edge_isp.devices.transport import CommandResult, Progress, Transport, describe, normalize_newlines, one_line, quote
from edge_isp.errors import InputError

_CHUNK = 1 << 20
_NAME = re.compile(r"[A-Za-z0-9_.%\[\]:-]+")     # host names, IPv4/IPv6 literals, user names


def _checked(value: str, what: str) -> str:
    """A host or user name for ssh's command line: '-oProxyCommand=...' would be an option."""
    if not _NAME.fullmatch(value) or value.startswith("-"):
        raise InputError(f"{what} {value!r} is not a valid SSH {what}; pass [USER@]HOST[:PORT]")
    return value


class SshTransport(Transport):
    kind = "ssh"

    def __init__(self, host: str, *, port: int | None = None, user: str | None = None,
                 identity: Path | None = None, options: dict[str, str] | None = None,
                 connect_timeout: float = 10.0) -> None:
        exe = shutil.which("ssh")
        if not exe:
            raise TransportUnavailableError("the OpenSSH client (ssh) is not installed: apt-get install openssh-client")
        if "@" in host and user is None:
            user, host = host.split("@", 1)
        if host.count(":") == 1 and port is None:
            host, p = host.split(":")
            if not p.isdigit():
                raise InputError(f"port {p!r} of --host is not a number; pass [USER@]HOST[:PORT]")
            port = int(p)
        host = _checked(host, "host")
        user = _checked(user, "user") if user is not None else None
        self.host, self.port, self.user = host, port, user
        self.serial = f"{user + '@' if user else ''}{host}{':' + str(port) if port else ''}"
        self._control_dir = tempfile.mkdtemp(prefix="edge-isp-ssh-")
        opts = {"BatchMode": "yes", "ConnectTimeout": str(int(connect_timeout)), "ServerAliveInterval": "5",
                "ServerAliveCountMax": "3", "ControlMaster": "auto",
                "ControlPath": os.path.join(self._control_dir, "cm"), "ControlPersist": "60",
                "LogLevel": "ERROR"}
        opts.update(options or {})
        self._base = [exe]
        for k, v in opts.items():
            self._base += ["-o", f"{k}={v}"]
        if port:
            self._base += ["-p", str(port)]
        if identity:
            self._base += ["-i", str(identity)]
        self._base.append(f"{user}@{host}" if user else host)
        try:
            res = self._ssh("true", timeout=connect_timeout + 5)
        except Exception:
            shutil.rmtree(self._control_dir, ignore_errors=True)
            raise
        if res.returncode == 255:
            shutil.rmtree(self._control_dir, ignore_errors=True)
            text = one_line(res.stderr)
            if "Permission denied" in text or "Host key verification failed" in text:
                raise DeviceAuthError(f"ssh {self.serial} refused us: {text}; install your key with ssh-copy-id "
                                      "(or accept the host key once with a plain 'ssh')")
            raise DeviceNotFoundError(f"cannot reach {self.serial} over ssh: {text or 'no answer'}")

    def _ssh(self, command: str, timeout: float, stdin=None, input_bytes: bytes | None = None,
             text: bool = True) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(self._base + ["--", command], capture_output=True, timeout=timeout,
                                  input=input_bytes, stdin=stdin if input_bytes is None else None,
                                  text=text and input_bytes is None)
        except subprocess.TimeoutExpired as exc:
            raise DeviceTimeoutError(f"{describe(command)} on {self.serial} did not finish in {timeout:g} s") from exc

    def _lost(self, res: subprocess.CompletedProcess, stage: str) -> None:
        if res.returncode == 255:
            err = res.stderr if isinstance(res.stderr, str) else res.stderr.decode("utf-8", "replace")
            raise DeviceDisconnectedError(f"{self.serial} disconnected (ssh) while {stage}: "
                                          f"{one_line(err, 200) or 'connection lost'}; reconnect and re-run",
                                          stage=stage)

    def run(self, command: str, timeout: float = 60.0) -> CommandResult:
        res = self._ssh(command, timeout, stdin=subprocess.DEVNULL)
        self._lost(res, f"running {describe(command)}")
        return CommandResult(command, normalize_newlines(res.stdout), normalize_newlines(res.stderr), res.returncode)

    def push(self, local: Path, remote: str, progress: Progress | None = None, mode: int = 0o755) -> None:
        total = os.path.getsize(local)
        tmp = f"{remote}.edge-isp-partial"
        cmd = f"cat > {quote(tmp)} && chmod {mode:o} {quote(tmp)} && mv -f {quote(tmp)} {quote(remote)}"
        proc = subprocess.Popen(self._base + ["--", cmd], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        done = 0
        try:
            with open(local, "rb") as fh:
                for chunk in iter(lambda: fh.read(_CHUNK), b""):
                    proc.stdin.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            proc.wait(timeout=max(60.0, total / 1e6))
            err = proc.stderr.read()
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.wait()
            raise DeviceTimeoutError(f"pushing {local} to {self.serial} timed out") from exc
        if proc.returncode:
            stage = f"pushing {Path(local).name}"
            self._lost(subprocess.CompletedProcess(cmd, proc.returncode, b"", err), stage)
            raise DeviceCommandError(f"push of {Path(local).name} to {self.serial}:{remote} failed: "
                                     f"{one_line(err.decode('utf-8', 'replace'), 200)}", exit_code=proc.returncode)

    def pull(self, remote: str, local: Path) -> None:
        res = self._ssh(f"cat {quote(remote)}", timeout=300, stdin=subprocess.DEVNULL, text=False)
        self._lost(res, f"pulling {remote}")
        if res.returncode:
            err = one_line(res.stderr.decode("utf-8", "replace"), 200)
            raise DeviceCommandError(f"pull of {self.serial}:{remote} failed: {err}", exit_code=res.returncode)
        Path(local).write_bytes(res.stdout)

    def close(self) -> None:
        subprocess.run(self._base[:-1] + ["-O", "exit", self._base[-1]], capture_output=True, timeout=10)
        shutil.rmtree(self._control_dir, ignore_errors=True)
