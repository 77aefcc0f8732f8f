"""ADB through the adb-shell package: talks to adbd over TCP or USB, no adb server needed.

RSA keys live in the user's config folder (created on first use). The TCP socket gets
``TCP_NODELAY`` (without it adb-shell's small sync chunks stall: 65 s instead of 0.2 s for
3 MB). The device's CNXN banner is read during the handshake, so commands use the shell
v2 protocol (separate stdout/stderr, real exit status) when adbd offers it, and a marker
appended to the command when it does not.
"""

from __future__ import annotations

import os
import socket
import struct
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
    RemoteStat,
    Transport,
    describe,
    normalize_newlines,
    one_line,
    split_exit_marker,
    with_exit_marker,
)

_HEADER = struct.Struct("<6I")
_CNXN = 0x4E584E43


def _sniffing(base: type) -> type:
    """A transport class that records the bytes read while connecting (to see the banner)
    and turns a closed socket into an error instead of a busy loop."""

    class Sniffing(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.sniffed = bytearray()
            self.sniff = False

        def connect(self, transport_timeout_s):
            super().connect(transport_timeout_s)
            conn = getattr(self, "_connection", None)
            if isinstance(conn, socket.socket):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def bulk_read(self, numbytes, transport_timeout_s):
            try:
                data = super().bulk_read(numbytes, transport_timeout_s)
            except OSError as exc:  # reset, broken pipe; TcpTimeoutException is not an OSError
                raise ConnectionError(f"connection lost: {exc}") from exc
            if not data and isinstance(getattr(self, "_connection", None), socket.socket):
                raise ConnectionError("the device closed the connection")
            if self.sniff:
                self.sniffed += data
            return data

        def bulk_write(self, data, transport_timeout_s):
            try:
                return super().bulk_write(data, transport_timeout_s)
            except OSError as exc:
                raise ConnectionError(f"connection lost: {exc}") from exc

    return Sniffing


def parse_banner(raw: bytes) -> str:
    """The system-identity string of the last CNXN packet in the bytes of a handshake."""
    banner = ""
    pos = 0
    while pos + _HEADER.size <= len(raw):
        cmd, _a0, _a1, length, _crc, magic = _HEADER.unpack_from(raw, pos)
        if magic != cmd ^ 0xFFFFFFFF:
            pos += 1
            continue
        data = raw[pos + _HEADER.size: pos + _HEADER.size + length]
        if cmd == _CNXN:
            banner = bytes(data).rstrip(b"\0").decode("utf-8", "replace")
        pos += _HEADER.size + length
    return banner


def banner_features(banner: str) -> set[str]:
    for part in banner.split("::", 1)[-1].split(";"):
        if part.startswith("features="):
            return {f for f in part[len("features="):].split(",") if f}
    return set()


def decode_shell_v2(data: bytes) -> tuple[bytes, bytes, int | None]:
    """Split a shell-protocol v2 byte stream into stdout, stderr and the exit status."""
    out, err, code = bytearray(), bytearray(), None
    pos = 0
    while pos + 5 <= len(data):
        kind, length = data[pos], struct.unpack_from("<I", data, pos + 1)[0]
        payload = data[pos + 5: pos + 5 + length]
        if kind == 1:
            out += payload
        elif kind == 2:
            err += payload
        elif kind == 3 and payload:
            code = payload[0]
        pos += 5 + length
    return bytes(out), bytes(err), code


class AdbShellTransport(Transport):
    """ADB over TCP (``host:port``) or USB (a USB serial) via adb-shell."""

    kind = "adb-shell"

    def __init__(self, address: str | None = None, *, usb_serial: str | None = None,
                 key_path: Path | None = None, connect_timeout: float = 10.0, auth_timeout: float = 30.0) -> None:
        try:
            from adb_shell.adb_device import AdbDevice
            from adb_shell.auth.sign_cryptography import CryptographySigner
            from adb_shell.transport.tcp_transport import TcpTransport
        except ImportError as exc:  # pragma: no cover - adb-shell is in the device extra
            raise TransportUnavailableError("adb-shell is not installed: pip install 'edge-isp[device]'") from exc
        from edge_isp.devices.config import adb_key_path

        key = Path(key_path) if key_path else adb_key_path()
        signer = CryptographySigner(str(key))
        if usb_serial is not None or address is None:
            try:
                from adb_shell.transport.usb_transport import UsbTransport
            except ImportError as exc:
                raise TransportUnavailableError(
                    "ADB over USB needs libusb1: pip install 'adb-shell[usb]' and the system libusb") from exc
            try:
                transport = _sniffing(UsbTransport).find_adb(serial=usb_serial)   # a classmethod: cls(...)
            except Exception as exc:
                raise DeviceNotFoundError(
                    f"no USB ADB device{' with serial ' + usb_serial if usb_serial else ''} found "
                    f"({one_line(str(exc), 200)}); "
                    "check the cable and that USB debugging is on; if an adb server holds the device, "
                    "use --transport adb or run 'adb kill-server'") from exc
            self.serial = usb_serial or "usb"
        else:
            host, _, port = address.rpartition(":") if ":" in address else (address, "", "5555")
            transport = _sniffing(TcpTransport)(host, int(port))
            self.serial = f"{host}:{port}"
        self._transport = transport
        self._device = AdbDevice(transport, default_transport_timeout_s=connect_timeout)
        self.banner, self.features = "", set()
        transport.sniff = True
        try:
            self._device.connect(rsa_keys=[signer], transport_timeout_s=connect_timeout,
                                 auth_timeout_s=auth_timeout, read_timeout_s=connect_timeout)
        except Exception as exc:
            self._raise(exc, "connecting", auth=True)
        finally:
            transport.sniff = False
        self.banner = parse_banner(bytes(transport.sniffed))
        self.features = banner_features(self.banner)
        transport.sniffed = bytearray()

    @property
    def shell_v2(self) -> bool:
        return "shell_v2" in self.features

    def _raise(self, exc: Exception, stage: str, auth: bool = False):
        from adb_shell import exceptions as ax

        name = type(exc).__name__
        detail = one_line(str(exc), 200) or name
        asked = bytes(getattr(self._transport, "sniffed", b""))[:4] == b"AUTH" if hasattr(self, "_transport") else False
        if auth and (isinstance(exc, (ax.DeviceAuthError, ax.InvalidResponseError)) or asked):
            raise DeviceAuthError(
                f"{self.serial} refused our ADB key ({detail}); accept the 'Allow USB debugging' prompt on the "
                "device (key: the edge-isp config folder, adb/adbkey.pub) and retry") from exc
        if isinstance(exc, (ConnectionError, ConnectionRefusedError, OSError)) and auth:
            raise DeviceNotFoundError(f"cannot reach adbd at {self.serial}: {detail}; is the device on and "
                                      "'adb tcpip 5555' enabled?") from exc
        if isinstance(exc, ConnectionError) or "closed" in str(exc).lower():
            raise DeviceDisconnectedError(f"{self.serial} disconnected while {stage}: {detail}; reconnect the "
                                          "device and re-run", stage=stage) from exc
        if "Timeout" in name or "timed out" in str(exc):
            raise DeviceTimeoutError(f"{self.serial} did not answer while {stage} ({detail})") from exc
        raise DeviceDisconnectedError(f"{self.serial} disconnected after an ADB error while {stage}: {name}: {detail}",
                                      stage=stage) from exc

    def run(self, command: str, timeout: float = 60.0) -> CommandResult:
        stage = f"running {describe(command)}"
        try:
            if self.shell_v2:
                raw = b"".join(self._device._streaming_command(  # noqa: SLF001 - shell v2 is not public in 0.4.4
                    b"shell,v2,raw", command.encode(), timeout, timeout, timeout))
                out, err, code = decode_shell_v2(raw)
                if code is None:        # the stream closed without an exit packet: adbd or the link died
                    raise DeviceDisconnectedError(f"{self.serial} disconnected while {stage}: the shell ended "
                                                  "without an exit status; reconnect the device and re-run",
                                                  stage="run")
                return CommandResult(command, normalize_newlines(out.decode("utf-8", "replace")),
                                     normalize_newlines(err.decode("utf-8", "replace")), code)
            wrapped, token = with_exit_marker(command)
            text = self._device.shell(wrapped, transport_timeout_s=timeout, read_timeout_s=timeout, timeout_s=timeout)
        except DeviceDisconnectedError:
            raise
        except Exception as exc:
            self._raise(exc, stage)
        body, code = split_exit_marker(text, token)
        if code is None:
            raise DeviceDisconnectedError(f"{self.serial} disconnected while {stage}: the output ended before the "
                                          "exit status; reconnect the device and re-run", stage="run")
        return CommandResult(command, body, "", code, exit_code_source="marker")

    def push(self, local: Path, remote: str, progress: Progress | None = None, mode: int = 0o755) -> None:
        total = os.path.getsize(local)
        done = [0]

        def cb(_path, n, _total):
            done[0] += n
            if progress:
                progress(done[0], total)

        try:
            self._device.push(str(local), remote, st_mode=0o100000 | mode, progress_callback=cb,
                              transport_timeout_s=60, read_timeout_s=60)
        except Exception as exc:
            self._raise(exc, f"pushing {Path(local).name}")

    def pull(self, remote: str, local: Path) -> None:
        try:
            self._device.pull(remote, str(local), transport_timeout_s=60, read_timeout_s=60)
        except Exception as exc:
            self._raise(exc, f"pulling {remote}")

    def stat(self, remote: str) -> RemoteStat | None:
        try:
            mode, size, mtime = self._device.stat(remote, transport_timeout_s=30, read_timeout_s=30)
        except Exception as exc:
            self._raise(exc, f"stat {remote}")
        if mode == 0 and size == 0 and mtime == 0:
            return None
        return RemoteStat(mode, size, mtime)

    def close(self) -> None:
        try:
            self._device.close()
        except Exception:  # noqa: BLE001 - closing a dead connection
            pass
