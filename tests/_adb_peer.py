"""A small adbd for the tests: speaks ADB's wire protocol over TCP on 127.0.0.1.

CNXN / AUTH (RSA token signing, or accepting a new public key) / OPEN / OKAY / WRTE /
CLSE, the ``shell:`` (v1) and ``shell,v2`` services and the ``sync:`` service (STAT, LIST,
SEND, RECV, QUIT). Commands run with ``/bin/sh`` on this host against a temporary folder
that stands in for the phone: absolute paths under ``/data``, ``/sys``, ``/sdcard`` and
``/vendor`` are mapped into it; ``getprop`` is a script printing the props given.

Behaviours of real phones the tests can switch on: no shell v2 (old adbd: the exit status
is lost), CRLF output (pty), and dropping the connection when a command contains a
given string.
"""

from __future__ import annotations

import base64
import contextlib
import os
import queue
import re
import shlex
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

A_CNXN, A_AUTH, A_OPEN, A_OKAY, A_CLSE, A_WRTE = (
    struct.unpack("<I", c)[0] for c in (b"CNXN", b"AUTH", b"OPEN", b"OKAY", b"CLSE", b"WRTE"))
HEADER = struct.Struct("<6I")
VERSION = 0x01000001
MAXDATA = 256 * 1024
AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3
MAPPED_ROOTS = ("data", "sys", "sdcard", "vendor")

DEFAULT_PROPS = {
    "ro.product.manufacturer": "Google",
    "ro.product.model": "Pixel 7",
    "ro.product.device": "panther",
    "ro.product.name": "panther",
    "ro.soc.manufacturer": "Google",
    "ro.soc.model": "GS201",
    "ro.board.platform": "gs201",
    "ro.hardware": "panther",
    "ro.build.version.sdk": "34",
    "ro.build.version.release": "14",
    "ro.product.cpu.abi": "x86_64",     # the host's ABI: binaries for this host run "on the phone"
    "ro.serialno": "PEER0001",
}


def android_userland_available() -> bool:
    """mksh and toybox installed (Debian: apt-get install mksh toybox)."""
    return shutil.which("mksh") is not None and shutil.which("toybox") is not None


def decode_adb_pubkey(blob: bytes) -> rsa.RSAPublicKey:
    """Android's RSAPublicKey struct (base64, then ' user@host') -> a public key."""
    raw = base64.b64decode(blob.strip(b"\0").split(b" ", 1)[0])
    words, _n0inv, modulus, _rr, exponent = struct.unpack("<II256s256sI", raw[:524])
    if words != 64:
        raise ValueError("not a 2048-bit adb key")
    return rsa.RSAPublicNumbers(exponent, int.from_bytes(modulus, "little")).public_key()


def _checksum(data: bytes) -> int:
    return sum(data) & 0xFFFFFFFF


class _Stream:
    def __init__(self, conn: _Connection, local_id: int, remote_id: int) -> None:
        self.conn, self.local_id, self.remote_id = conn, local_id, remote_id
        self.inbox: queue.Queue[bytes | None] = queue.Queue()
        self.acked = threading.Event()
        self.acked.set()
        self.closed = False
        self._buf = bytearray()
        self._wlock = threading.Lock()

    # incoming data (from the host), as a byte stream
    def read_exact(self, n: int, timeout: float = 30.0) -> bytes:
        while len(self._buf) < n:
            chunk = self.inbox.get(timeout=timeout)
            if chunk is None:
                raise EOFError("stream closed")
            self._buf += chunk
        data, self._buf = bytes(self._buf[:n]), self._buf[n:]
        return data

    # outgoing data: one WRTE at a time, each waits for the host's OKAY
    def write(self, data: bytes) -> None:
        with self._wlock:
            for i in range(0, len(data), MAXDATA):
                if not self.acked.wait(timeout=30) or self.closed:
                    raise EOFError("host stopped acknowledging")
                self.acked.clear()
                self.conn.send(A_WRTE, self.local_id, self.remote_id, data[i:i + MAXDATA])

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.send(A_CLSE, self.local_id, self.remote_id)


class _Connection:
    def __init__(self, peer: AdbPeer, sock: socket.socket) -> None:
        self.peer, self.sock = peer, sock
        self.lock = threading.Lock()
        self.streams: dict[int, _Stream] = {}
        self.next_id = 1
        self.authed = not peer.require_auth
        self.token = os.urandom(20)
        self.alive = True
        self.procs: list[subprocess.Popen] = []

    def send(self, cmd: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        pkt = HEADER.pack(cmd, arg0, arg1, len(data), _checksum(data), cmd ^ 0xFFFFFFFF) + data
        with self.lock:
            if self.alive:
                self.sock.sendall(pkt)

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return bytes(buf)

    def drop(self) -> None:
        """Vanish like an unplugged phone: no CLSE, just a dead socket."""
        self.alive = False
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()

    def banner(self) -> bytes:
        p = self.peer.props
        features = ["cmd"] + (["shell_v2"] if self.peer.shell_v2 else [])
        return (f"device::ro.product.name={p.get('ro.product.name', '')};ro.product.model={p.get('ro.product.model', '')};"
                f"ro.product.device={p.get('ro.product.device', '')};features={','.join(features)}").encode()

    def serve(self) -> None:
        try:
            while self.alive and not self.peer._stopping.is_set():
                cmd, arg0, arg1, length, _crc, magic = HEADER.unpack(self._recv_exact(HEADER.size))
                if magic != cmd ^ 0xFFFFFFFF:
                    raise EOFError("bad magic")
                data = self._recv_exact(length) if length else b""
                self.handle(cmd, arg0, arg1, data)
        except (EOFError, OSError, struct.error):
            pass
        finally:
            self.alive = False
            for s in list(self.streams.values()):
                s.closed = True
                s.inbox.put(None)
                s.acked.set()
            with contextlib.suppress(OSError):
                self.sock.close()

    def handle(self, cmd: int, arg0: int, arg1: int, data: bytes) -> None:
        peer = self.peer
        if cmd == A_CNXN:
            self.version = min(arg0, VERSION)
            if self.authed:
                self.send(A_CNXN, self.version, MAXDATA, self.banner())
            else:
                self.send(A_AUTH, AUTH_TOKEN, 0, self.token)
        elif cmd == A_AUTH:
            if arg0 == AUTH_SIGNATURE:
                for key in peer.authorized_keys:
                    try:
                        key.verify(data, self.token, padding.PKCS1v15(), utils.Prehashed(hashes.SHA1()))
                    except Exception:  # noqa: BLE001 - wrong key, try the next
                        continue
                    self.authed = True
                    peer.auth_log.append("signature")
                    self.send(A_CNXN, self.version, MAXDATA, self.banner())
                    return
                self.token = os.urandom(20)
                self.send(A_AUTH, AUTH_TOKEN, 0, self.token)
            elif arg0 == AUTH_RSAPUBLICKEY:
                if not peer.accept_new_keys:
                    peer.auth_log.append("rejected")
                    self.drop()
                    return
                peer.authorized_keys.append(decode_adb_pubkey(data))
                peer.auth_log.append("new-key")
                self.authed = True
                self.send(A_CNXN, self.version, MAXDATA, self.banner())
        elif not self.authed:
            raise EOFError("unauthenticated")
        elif cmd == A_OPEN:
            service = data.rstrip(b"\0").decode("utf-8", "replace")
            local_id = self.next_id
            self.next_id += 1
            handler = self.route(service)
            if handler is None:
                self.send(A_CLSE, 0, arg0)
                return
            stream = _Stream(self, local_id, arg0)
            self.streams[local_id] = stream
            self.send(A_OKAY, local_id, arg0)
            threading.Thread(target=self._run_service, args=(handler, stream, service), daemon=True).start()
        elif cmd == A_WRTE:
            stream = self.streams.get(arg1)
            if stream is None:
                self.send(A_CLSE, 0, arg0)
                return
            stream.inbox.put(data)
            self.send(A_OKAY, arg1, arg0)
        elif cmd == A_OKAY:
            stream = self.streams.get(arg1)
            if stream is not None:
                stream.remote_id = arg0
                stream.acked.set()
        elif cmd == A_CLSE:
            stream = self.streams.pop(arg1, None)
            if stream is not None:
                stream.inbox.put(None)
                stream.acked.set()
                if not stream.closed:
                    stream.close()

    def route(self, service: str):
        if service.startswith("shell,") and ":" in service:
            opts, cmd = service.split(":", 1)
            if "v2" in opts.split(",")[1:]:
                return (lambda s: self.peer._shell(self, s, cmd, v2=True)) if self.peer.shell_v2 else None
            return lambda s: self.peer._shell(self, s, cmd, v2=False)
        if service.startswith("shell:"):
            return lambda s: self.peer._shell(self, s, service[len("shell:"):], v2=False)
        if service.startswith("exec:"):
            return lambda s: self.peer._shell(self, s, service[len("exec:"):], v2=False, raw=True)
        if service == "sync:":
            return lambda s: self.peer._sync(self, s)
        return None

    def _run_service(self, handler, stream: _Stream, service: str) -> None:
        try:
            handler(stream)
        except (EOFError, OSError, queue.Empty):
            pass
        finally:
            with contextlib.suppress(OSError):
                stream.close()


class AdbPeer:
    """A fake phone reachable as ``127.0.0.1:<port>``; use as a context manager."""

    def __init__(self, root: Path, *, props: dict[str, str] | None = None, shell_v2: bool = True,
                 crlf: bool = False, require_auth: bool = True, accept_new_keys: bool = True,
                 authorized_keys: list[rsa.RSAPublicKey] | None = None, drop_on: str | None = None,
                 drop_after_s: float = 0.3, env: dict[str, str] | None = None, userland: str = "host") -> None:
        self.root = Path(root)
        self.props = dict(DEFAULT_PROPS, **(props or {}))
        self.shell_v2, self.crlf = shell_v2, crlf
        self.require_auth, self.accept_new_keys = require_auth, accept_new_keys
        self.authorized_keys = list(authorized_keys or [])
        self.drop_on, self.drop_after_s = drop_on, drop_after_s
        self.env = dict(env or {})
        self.auth_log: list[str] = []
        self.commands: list[str] = []
        self._stopping = threading.Event()
        self._conns: list[_Connection] = []
        self._threads: list[threading.Thread] = []
        for sub in ("data/local/tmp", "sys", "sdcard", "vendor", "bin"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._write_getprop()
        # userland="android": mksh (Android's /system/bin/sh) with toybox applets first on PATH
        self.shell = "/bin/sh"
        self.userland = "host"
        if userland == "android" and android_userland_available():
            self.shell, self.userland = shutil.which("mksh"), "android"
            toybin = self.root / "toybin"
            toybin.mkdir(exist_ok=True)
            toybox = shutil.which("toybox")
            applets = subprocess.run([toybox], capture_output=True, text=True).stdout.split()
            for name in applets:
                if name not in ("sh", "toysh", "bash") and not (toybin / name).exists():
                    (toybin / name).symlink_to(toybox)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_getprop(self) -> None:
        lines = "\n".join(f"{k}\t{v}" for k, v in sorted(self.props.items()))
        script = self.root / "bin" / "getprop"
        script.write_text(
            "#!/bin/sh\n"
            f"PROPS={shlex.quote(lines)}\n"
            'if [ -n "$1" ]; then printf "%s\\n" "$PROPS" | awk -F "\\t" -v k="$1" \'$1==k{print $2}\'; '
            'else printf "%s\\n" "$PROPS" | awk -F "\\t" \'{print "[" $1 "]: [" $2 "]"}\'; fi\n')
        script.chmod(0o755)

    # -- life cycle ----------------------------------------------------------------
    def start(self) -> AdbPeer:
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stopping.set()
        for c in self._conns:
            c.drop()
        for t in self._threads:
            t.join(timeout=5)
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> AdbPeer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(self, sock)
            self._conns.append(conn)
            t = threading.Thread(target=conn.serve, daemon=True)
            t.start()
            self._threads.append(t)

    # -- path mapping ----------------------------------------------------------------
    def host_path(self, device_path: str) -> Path:
        p = device_path if device_path.startswith("/") else "/data/local/tmp/" + device_path
        if p.split("/")[1] in MAPPED_ROOTS:
            return self.root / p.lstrip("/")
        return Path(p)

    def map_command(self, command: str) -> str:
        pattern = r"(?<![\w.\-/])/(" + "|".join(MAPPED_ROOTS) + r")(?=/|\b)"
        return re.sub(pattern, lambda m: f"{self.root}/{m.group(1)}", command)

    # -- services ----------------------------------------------------------------------
    def _shell(self, conn: _Connection, stream: _Stream, command: str, v2: bool, raw: bool = False) -> None:
        self.commands.append(command)
        path = f"{self.root / 'bin'}:" + (f"{self.root / 'toybin'}:" if self.userland == "android" else "")
        env = dict(os.environ, PATH=path + os.environ.get("PATH", "/usr/bin:/bin"),
                   HOME=str(self.root / "data/local/tmp"), ANDROID_DATA=str(self.root / "data"), **self.env)
        proc = subprocess.Popen([self.shell, "-c", self.map_command(command) or "true"], cwd=self.root / "data/local/tmp",
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE if v2 else subprocess.STDOUT, env=env)
        conn.procs.append(proc)
        if self.drop_on and self.drop_on in command:
            threading.Timer(self.drop_after_s, conn.drop).start()

        def frame(kind: int, data: bytes) -> bytes:
            return bytes([kind]) + struct.pack("<I", len(data)) + data if v2 else data

        def fix(data: bytes) -> bytes:
            return data.replace(b"\n", b"\r\n") if self.crlf and not raw else data

        def pump(pipe, kind: int) -> None:
            for chunk in iter(lambda: os.read(pipe.fileno(), 65536), b""):
                with contextlib.suppress(EOFError, OSError):   # the host is gone: drain, like adbd
                    stream.write(frame(kind, fix(chunk)))

        readers = [threading.Thread(target=pump, args=(proc.stdout, 1), daemon=True)]
        if v2:
            readers.append(threading.Thread(target=pump, args=(proc.stderr, 2), daemon=True))
        for r in readers:
            r.start()
        try:
            code = proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        for r in readers:
            r.join(timeout=30)
        if v2 and conn.alive:
            stream.write(frame(3, bytes([code & 0xFF])))

    def _sync(self, conn: _Connection, stream: _Stream) -> None:
        def reply(ident: bytes, *fields: int, data: bytes = b"") -> None:
            stream.write(ident + struct.pack(f"<{len(fields)}I", *fields) + data)

        while True:
            ident, length = struct.unpack("<4sI", stream.read_exact(8))
            if ident == b"QUIT":
                return
            arg = stream.read_exact(length) if length else b""
            if ident == b"STAT":
                try:
                    st = self.host_path(arg.decode()).stat()
                    reply(b"STAT", st.st_mode, st.st_size, int(st.st_mtime))
                except OSError:
                    reply(b"STAT", 0, 0, 0)
            elif ident == b"LIST":
                folder = self.host_path(arg.decode())
                for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
                    st = entry.stat()
                    name = entry.name.encode()
                    reply(b"DENT", st.st_mode, st.st_size, int(st.st_mtime), len(name), data=name)
                reply(b"DONE", 0, 0, 0, 0)
            elif ident == b"SEND":
                path_s, _, mode_s = arg.decode().rpartition(",")
                target = self.host_path(path_s)
                tmp = target.with_name(f".{target.name}.peer-partial")
                ok = True
                try:
                    fh = open(tmp, "wb")  # noqa: SIM115
                except OSError as exc:
                    ok, msg = False, str(exc)
                    fh = None
                while True:
                    ident, length = struct.unpack("<4sI", stream.read_exact(8))
                    if ident == b"DONE":
                        break
                    chunk = stream.read_exact(length)
                    if fh:
                        fh.write(chunk)
                if fh:
                    fh.close()
                    os.replace(tmp, target)
                    os.chmod(target, int(mode_s or "644") & 0o7777 or 0o644)
                    os.utime(target, (length, length))
                if ok:
                    reply(b"OKAY", 0)
                else:
                    reply(b"FAIL", len(msg.encode()), data=msg.encode())
            elif ident == b"RECV":
                try:
                    data = self.host_path(arg.decode()).read_bytes()
                except OSError as exc:
                    msg = str(exc).encode()
                    reply(b"FAIL", len(msg), data=msg)
                    continue
                for i in range(0, len(data), 64 * 1024):
                    part = data[i:i + 64 * 1024]
                    reply(b"DATA", len(part), data=part)
                reply(b"DONE", 0)
            else:
                msg = f"unknown sync request {ident!r}".encode()
                reply(b"FAIL", len(msg), data=msg)
                return


def wait_port_closed(port: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return True
        time.sleep(0.05)
    return False


class PowerRails:
    """Writes the phone's power files while the peer runs, like the kernel would.

    Battery ``current_now`` (uA, negative while discharging) and ``voltage_now`` (uV), and
    one ODPM ``energy_value`` file (cumulative uW*s, ``t=`` ms): a higher draw while a
    benchmark runs in the harness's work folder (bench.pid written, bench.rc not yet).
    """

    def __init__(self, root: Path, *, idle_w: float = 1.2, busy_w: float = 3.6, volts: float = 4.0,
                 charging: bool = False, workdir: str = "data/local/tmp/edge-isp", odpm: bool = True,
                 current_unit: str = "uA", positive_discharge: bool = False) -> None:
        self.root = Path(root)
        self.idle_w, self.busy_w, self.volts = idle_w, busy_w, volts
        self.work = self.root / workdir
        self.bat = self.root / "sys/class/power_supply/battery"
        self.usb = self.root / "sys/class/power_supply/usb"
        self.iio = self.root / "sys/bus/iio/devices/iio:device0"
        self.odpm = odpm
        self.current_unit = current_unit
        self.positive_discharge = positive_discharge
        for d in (self.bat, self.usb) + ((self.iio,) if odpm else ()):
            d.mkdir(parents=True, exist_ok=True)
        (self.bat / "status").write_text("Charging\n" if charging else "Discharging\n")
        (self.usb / "online").write_text("1\n" if charging else "0\n")
        therm = self.root / "sys/class/thermal"
        for i, (name, mc) in enumerate((("BIG", 41000), ("TPU", 38500), ("skin_therm", 33000))):
            z = therm / f"thermal_zone{i}"
            z.mkdir(parents=True, exist_ok=True)
            (z / "type").write_text(name + "\n")
            (z / "temp").write_text(f"{mc}\n")
        self.energy_uws = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._write(time.monotonic())

    def busy(self) -> bool:
        return (self.work / "bench.pid").exists() and not (self.work / "bench.rc").exists()

    def _write(self, now: float) -> None:
        watts = self.busy_w if self.busy() else self.idle_w
        amps = watts / self.volts
        scale = 1e6 if self.current_unit == "uA" else 1e3
        current = amps * scale * (1 if self.positive_discharge else -1)
        tmp = self.bat / ".current_now"
        tmp.write_text(f"{int(current)}\n")
        os.replace(tmp, self.bat / "current_now")
        (self.bat / "voltage_now").write_text(f"{int(self.volts * 1e6)}\n")
        if self.odpm:
            ms = int(float(Path("/proc/uptime").read_text().split()[0]) * 1000)
            body = (f"t={ms}\nCH0(T={ms})[S2M_VDD_CPUCL2], {int(self.energy_uws * 0.7)}\n"
                    f"CH1(T={ms})[S3M_VDD_TPU], {int(self.energy_uws * 0.3)}\n")
            tmp = self.iio / ".energy_value"
            tmp.write_text(body)
            os.replace(tmp, self.iio / "energy_value")
        self._watts = watts

    def _loop(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(0.02):
            now = time.monotonic()
            self.energy_uws += self._watts * (now - last) * 1e6
            last = now
            self._write(now)

    def start(self) -> PowerRails:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


FAKE_BENCHMARK_MODEL = """#!/bin/sh
# Stand-in for LiteRT's benchmark_model on this host: runs the model with ai-edge-litert
# (edge_isp.devices.litert_runner) and prints the real tool's output lines.
exec {python} {runner} "$@"
"""
