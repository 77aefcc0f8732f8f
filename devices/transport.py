"""One transport interface over ADB (adb-shell or the adb client), SSH and the local host.

Every transport runs a command and returns stdout, stderr and the *real* exit status
(shells that lose it get a marker appended and parsed), pushes, pulls and stats files,
and forwards nothing unless asked. Output is returned with ``\\n`` line endings
(devices behind a pty answer with CRLF).
"""

from __future__ import annotations

import abc
import re
import shlex
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge_isp.devices.errors import DeviceCommandError

Progress = Callable[[int, int], None]   # (bytes done, total bytes)

_MARK = "__edge_isp_rc="


@dataclass(frozen=True)
class CommandResult:
    command: str
    stdout: str
    stderr: str
    exit_code: int
    exit_code_source: str = "native"     # "native" (shell v2 / ssh / local) or "marker"

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def check(self, what: str | None = None) -> CommandResult:
        if self.exit_code != 0:
            detail = one_line("\n".join((self.stderr.strip() or self.stdout.strip()).splitlines()[-3:]))
            raise DeviceCommandError(
                f"{repr(what) if what else describe(self.command)} failed on the device with exit status "
                f"{self.exit_code}" + (f": {detail}" if detail else ""),
                exit_code=self.exit_code, stdout=self.stdout, stderr=self.stderr,
            )
        return self


@dataclass(frozen=True)
class RemoteStat:
    mode: int
    size: int
    mtime: int

    @property
    def is_dir(self) -> bool:
        return (self.mode & 0o170000) == 0o040000


@dataclass
class DeviceInfo:
    """What a transport can say about the device at the other end."""

    serial: str
    transport: str                       # "adb-shell" | "adb" | "ssh" | "local"
    os: str = "unknown"                  # "android" | "linux"
    model: str = ""
    manufacturer: str = ""
    device: str = ""                     # ro.product.device / board codename
    soc: str = ""
    abi: str = ""                        # arm64-v8a / aarch64 / x86_64 ...
    api_level: int | None = None
    android_version: str = ""
    props: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        name = " ".join(p for p in (self.manufacturer, self.model) if p) or self.device or "device"
        return f"{name} ({self.serial})"


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def with_exit_marker(command: str) -> tuple[str, str]:
    """Wrap ``command`` so its exit status is printed last; returns (wrapped, token).

    For shells that lose the status, and as proof the command finished: a missing marker
    means the connection or the shell died. The wrapper exits with the command's status."""
    token = f"{_MARK}{uuid.uuid4().hex[:8]}:"
    return f"(\n{command}\n)\n__rc=$?; echo; echo \"{token}$__rc\"; exit $__rc", token


def split_exit_marker(output: str, token: str) -> tuple[str, int | None]:
    """Strip the marker line (and the newline added before it); None if it is missing."""
    output = normalize_newlines(output)
    idx = output.rfind(token)
    if idx < 0:
        return output, None
    tail = output[idx + len(token):].split("\n", 1)[0].strip()
    try:
        code = int(tail)
    except ValueError:
        return output, None
    body = output[:idx]
    if body.endswith("\n"):
        body = body[:-1]
    return body, code


def quote(arg: str | Path) -> str:
    return shlex.quote(str(arg))


_GLOB_PART = re.compile(r"[*?]|\[!?[A-Za-z0-9_-]+\]")


def quote_glob(pattern: str) -> str:
    """Quote a path pattern for the device shell, leaving only ``*``, ``?`` and ``[a-z0-9]``
    classes active: a profile's glob may match files, never run anything."""
    out, pos = [], 0
    for m in _GLOB_PART.finditer(pattern):
        if m.start() > pos:
            out.append(quote(pattern[pos:m.start()]))
        out.append(m.group(0))
        pos = m.end()
    if pos < len(pattern) or not out:
        out.append(quote(pattern[pos:]))
    return "".join(out)


def one_line(text: str, limit: int = 300) -> str:
    """Text from a device or a tool as one line for an error message (lines joined by ' / ')."""
    joined = " / ".join(ln.strip() for ln in normalize_newlines(text).splitlines() if ln.strip())
    return joined if len(joined) <= limit else joined[:limit - 3] + "..."


def describe(command: str, limit: int = 60) -> str:
    """A command as errors name it: its first line, shortened, without repr escapes."""
    lines = [ln.strip() for ln in normalize_newlines(command).splitlines() if ln.strip()] or [""]
    first = lines[0]
    short = first if len(first) <= limit and len(lines) == 1 else first[:limit].rstrip() + " ..."
    return f"'{short}'"


class Transport(abc.ABC):
    """A connection to one device."""

    kind: str = "abstract"
    serial: str = ""

    @abc.abstractmethod
    def run(self, command: str, timeout: float = 60.0) -> CommandResult:
        """Run a shell command on the device; never raises on a non-zero exit (see ``check``)."""

    @abc.abstractmethod
    def push(self, local: Path, remote: str, progress: Progress | None = None, mode: int = 0o755) -> None:
        """Copy a local file to ``remote`` (a file path) on the device."""

    @abc.abstractmethod
    def pull(self, remote: str, local: Path) -> None:
        """Copy a device file to ``local``."""

    def stat(self, remote: str) -> RemoteStat | None:
        """Mode, size and mtime of ``remote`` (None if absent), via the device's own ``stat``."""
        res = self.run(f"stat -c '%f %s %Y' {quote(remote)} 2>/dev/null")
        parts = res.stdout.split()
        if not res.ok or len(parts) != 3:
            return None
        return RemoteStat(int(parts[0], 16), int(parts[1]), int(parts[2]))

    def close(self) -> None:  # noqa: B027 - optional
        """Release the connection."""

    def forward(self, local: str, remote: str) -> None:
        raise NotImplementedError(f"{self.kind} transport does not forward ports")

    # -- conveniences shared by all transports -----------------------------------------
    def check(self, command: str, timeout: float = 60.0, what: str | None = None) -> str:
        return self.run(command, timeout=timeout).check(what).stdout

    def read_text(self, remote: str, timeout: float = 10.0) -> str | None:
        """The content of a small device file (sysfs, procfs), or None if unreadable."""
        res = self.run(f"cat {quote(remote)} 2>/dev/null", timeout=timeout)
        return res.stdout if res.ok else None

    def info(self) -> DeviceInfo:
        """Identify the device: Android properties when ``getprop`` exists, else uname/device tree."""
        probe = self.run(
            "if command -v getprop >/dev/null 2>&1 && [ -n \"$(getprop ro.build.version.sdk)\" ]; then "
            "echo __android; getprop; else echo __linux; uname -m; "
            "cat /proc/device-tree/model 2>/dev/null | tr -d '\\0'; echo; "
            "cat /proc/device-tree/compatible 2>/dev/null | tr '\\0' ','; echo; "
            "grep -m1 -i -E '^(Hardware|model name)' /proc/cpuinfo; . /etc/os-release 2>/dev/null; echo \"$PRETTY_NAME\"; fi",
            timeout=20,
        ).check("identifying the device")
        lines = probe.stdout.splitlines()
        if lines and lines[0].strip() == "__android":
            props = parse_getprop("\n".join(lines[1:]))
            api = props.get("ro.build.version.sdk", "")
            return DeviceInfo(
                serial=self.serial, transport=self.kind, os="android",
                model=props.get("ro.product.model", ""), manufacturer=props.get("ro.product.manufacturer", ""),
                device=props.get("ro.product.device", ""),
                soc=props.get("ro.soc.model") or props.get("ro.board.platform") or props.get("ro.hardware", ""),
                abi=props.get("ro.product.cpu.abi", ""), api_level=int(api) if api.isdigit() else None,
                android_version=props.get("ro.build.version.release", ""), props=props,
            )
        rest = [ln.strip() for ln in lines[1:]] + ["", "", "", "", ""]
        arch, model, compatible, cpu, os_name = rest[:5]
        return DeviceInfo(
            serial=self.serial, transport=self.kind, os="linux", model=model, device=compatible.strip(","),
            soc=cpu.split(":", 1)[-1].strip() if cpu else "", abi=arch,
            props={"uname.m": arch, "device-tree.model": model, "device-tree.compatible": compatible.strip(","),
                   "os": os_name},
        )


def parse_getprop(text: str) -> dict[str, str]:
    """``[key]: [value]`` lines from ``getprop`` into a dict."""
    props: dict[str, str] = {}
    for line in normalize_newlines(text).splitlines():
        line = line.strip()
        if line.startswith("[") and "]: [" in line and line.endswith("]"):
            key, value = line[1:-1].split("]: [", 1)
            props[key] = value
    return props
