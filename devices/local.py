"""The local host as a device: the same harness runs a model on this machine."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
from pathlib import Path

from edge_isp.devices.errors import DeviceTimeoutError
from edge_isp.devices.transport import CommandResult, Progress, RemoteStat, Transport, describe, normalize_newlines


class LocalTransport(Transport):
    kind = "local"

    def __init__(self) -> None:
        self.serial = f"local:{socket.gethostname()}"

    def run(self, command: str, timeout: float = 60.0) -> CommandResult:
        try:
            res = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, timeout=timeout,
                                 stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise DeviceTimeoutError(f"{describe(command)} did not finish in {timeout:g} s") from exc
        return CommandResult(command, normalize_newlines(res.stdout), normalize_newlines(res.stderr), res.returncode)

    def push(self, local: Path, remote: str, progress: Progress | None = None, mode: int = 0o755) -> None:
        Path(remote).parent.mkdir(parents=True, exist_ok=True)
        tmp = f"{remote}.edge-isp-partial"
        shutil.copyfile(local, tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, remote)
        if progress:
            size = os.path.getsize(remote)
            progress(size, size)

    def pull(self, remote: str, local: Path) -> None:
        shutil.copyfile(remote, local)

    def stat(self, remote: str) -> RemoteStat | None:
        try:
            st = os.stat(remote)
        except OSError:
            return None
        return RemoteStat(st.st_mode, st.st_size, int(st.st_mtime))

    def machine(self) -> str:
        return platform.machine()
