"""Finding and opening devices: ``--device`` (profile alias), ``--serial``, ``--host``.

``--device pixel`` matches a profile name or alias (several profiles may share an alias),
then the connected device that matches one of them: devices the adb server lists, a USB
device adb-shell finds when there is no adb client, and devices reached before (their
addresses are remembered in the config folder). ``--serial`` picks one ADB device
(USB serial or HOST:PORT), ``--host`` an SSH board; ``local`` is this machine.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from typing import Any

from edge_isp.devices.config import load_state, save_state
from edge_isp.devices.errors import AmbiguousDeviceError, DeviceError, DeviceNotFoundError, TransportUnavailableError
from edge_isp.devices.profiles import DeviceProfile, list_profiles, match_profile, profiles_named
from edge_isp.devices.transport import DeviceInfo, Transport

TRANSPORTS = ("auto", "adb-shell", "adb", "ssh", "local")


@dataclass
class ConnectedDevice:
    transport: Transport
    info: DeviceInfo
    profile: DeviceProfile | None
    notes: list[str] = field(default_factory=list)

    @property
    def device_id(self) -> str:
        """Stable identity for the results store: the profile for known models, else the model."""
        if self.profile is not None and not self.profile.fallback:
            return self.profile.name
        name = (self.info.model or self.info.device or self.info.serial).strip().lower()
        return "-".join(name.replace("/", " ").split()) or "device"

    def identity(self) -> dict[str, Any]:
        i = self.info
        return {"serial": i.props.get("ro.serialno") or i.serial, "address": i.serial, "transport": i.transport,
                "os": i.os, "manufacturer": i.manufacturer, "model": i.model, "device": i.device, "soc": i.soc,
                "abi": i.abi, "api_level": i.api_level, "android_version": i.android_version,
                "profile": self.profile.name if self.profile else None}

    def close(self) -> None:
        self.transport.close()


def _remember(kind: str, address: str) -> None:
    state = load_state()
    known = state.setdefault("known_devices", [])
    entry = {"transport": kind, "address": address}
    if entry not in known:
        known.append(entry)
        save_state(state)


def known_devices() -> list[dict[str, str]]:
    return list(load_state().get("known_devices", []))


def forget_device(address: str) -> None:
    state = load_state()
    state["known_devices"] = [d for d in state.get("known_devices", []) if d.get("address") != address]
    save_state(state)


def open_transport(transport: str = "auto", serial: str | None = None, host: str | None = None,
                   adb_server_port: int | None = None, connect_timeout: float = 10.0) -> Transport:
    """One transport to one device, chosen by serial/host and the transport asked for."""
    if transport not in TRANSPORTS:
        raise DeviceError(f"unknown transport {transport!r}; use one of {', '.join(TRANSPORTS)}")
    if transport == "local" or (serial in ("local", "host") and transport == "auto"):
        from edge_isp.devices.local import LocalTransport

        return LocalTransport()
    if host is not None or transport == "ssh":
        from edge_isp.devices.ssh import SshTransport

        target = host or serial
        if not target:
            raise DeviceError("--transport ssh needs --host [USER@]HOST[:PORT]")
        t = SshTransport(target, connect_timeout=connect_timeout)
        _remember("ssh", target)
        return t
    if serial is None:
        raise DeviceError("no device given: pass --device NAME, --serial SERIAL|HOST:PORT or --host HOST")
    use_client = transport == "adb" or (transport == "auto" and shutil.which("adb") is not None)
    if use_client:
        from edge_isp.devices.adb_client import AdbClientTransport

        t = AdbClientTransport(serial, server_port=adb_server_port, connect=":" in serial)
        if ":" in serial:
            _remember("adb", serial)
        return t
    from edge_isp.devices.adb_python import AdbShellTransport

    if ":" in serial:
        t = AdbShellTransport(serial, connect_timeout=connect_timeout)
        _remember("adb-shell", serial)
        return t
    return AdbShellTransport(usb_serial=serial, connect_timeout=connect_timeout)


def identify(t: Transport, profiles: list[DeviceProfile] | None = None,
             among: list[DeviceProfile] | None = None) -> ConnectedDevice:
    info = t.info()
    profiles = profiles if profiles is not None else list_profiles()
    props = dict(info.props)
    prof = match_profile(props, info.os, profiles, among=among)
    return ConnectedDevice(t, info, prof)


def candidates(adb_server_port: int | None = None, include_known: bool = True,
               probe_timeout: float = 3.0, transport: str = "auto") -> tuple[list[Transport], list[str]]:
    """Open every device we can see; returns (transports, notes on the ones that failed).

    ``transport='adb-shell'`` keeps away from any adb server (nothing is started)."""
    found: list[Transport] = []
    notes: list[str] = []
    seen: set[str] = set()
    use_client = shutil.which("adb") is not None and transport in ("auto", "adb")
    if use_client:
        from edge_isp.devices.adb_client import AdbClientTransport, list_adb_devices

        try:
            listed = list_adb_devices(adb_server_port)
        except DeviceError as exc:
            listed = []
            notes.append(f"adb: {exc}")
        for d in listed:
            if d.state != "device":
                notes.append(f"{d.serial}: {d.state}")
                continue
            try:
                found.append(AdbClientTransport(d.serial, server_port=adb_server_port))
                seen.add(d.serial)
            except DeviceError as exc:
                notes.append(f"{d.serial}: {exc}")
    elif transport in ("auto", "adb-shell"):
        with contextlib.suppress(DeviceError, TransportUnavailableError, Exception):
            from edge_isp.devices.adb_python import AdbShellTransport

            t = AdbShellTransport(usb_serial=None, connect_timeout=probe_timeout)
            found.append(t)
            seen.add(t.serial)
    if include_known:
        for entry in known_devices():
            addr, kind = entry.get("address", ""), entry.get("transport", "")
            if addr in seen or (transport not in ("auto", kind) and not (transport == "adb-shell" and kind == "adb")):
                continue
            try:
                if kind == "ssh":
                    from edge_isp.devices.ssh import SshTransport

                    found.append(SshTransport(addr, connect_timeout=probe_timeout))
                elif kind == "adb-shell" or (kind == "adb" and not use_client):
                    from edge_isp.devices.adb_python import AdbShellTransport

                    found.append(AdbShellTransport(addr, connect_timeout=probe_timeout, auth_timeout=probe_timeout))
                else:
                    from edge_isp.devices.adb_client import AdbClientTransport

                    found.append(AdbClientTransport(addr, server_port=adb_server_port, connect=True))
                seen.add(addr)
            except Exception as exc:  # noqa: BLE001 - an offline known device is only a note
                notes.append(f"{addr} ({kind}): not reachable ({type(exc).__name__})")
    return found, notes


def select_device(device: str | None = None, serial: str | None = None, host: str | None = None,
                  transport: str = "auto", adb_server_port: int | None = None,
                  connect_timeout: float = 10.0) -> ConnectedDevice:
    """Resolve the CLI's --device/--serial/--host/--transport into one identified device."""
    profiles = list_profiles()
    named: list[DeviceProfile] | None = None
    if device is not None and device.lower() in ("local", "host") and serial is None and host is None:
        transport = "local"
    elif device is not None:
        named = profiles_named(device, profiles)
        if not named:
            from edge_isp.devices.profiles import get_profile

            get_profile(device, profiles)          # raises with a suggestion
    if serial is not None or host is not None or transport == "local":
        t = open_transport(transport, serial=serial, host=host, adb_server_port=adb_server_port,
                           connect_timeout=connect_timeout)
        dev = identify(t, profiles)
        if named is not None:
            specific = match_profile(dict(dev.info.props), dev.info.os, profiles, among=named)
            if specific is not None:
                dev.profile = specific
            elif not any(p.fallback for p in named):
                dev.notes.append(f"{dev.info.label} does not match profile(s) {', '.join(p.name for p in named)}; "
                                 f"using {dev.profile.name if dev.profile else 'no profile'}")
            else:
                dev.profile = named[0]
        return dev
    if named is None:
        raise DeviceError("which device? pass --device NAME (a profile alias such as 'pixel'), "
                          "--serial SERIAL|HOST:PORT or --host HOST; 'edge-isp devices' lists what is connected")
    transports, notes = candidates(adb_server_port, transport=transport)
    matches, others = [], []
    for t in transports:
        try:
            dev = identify(t, profiles)
        except DeviceError as exc:
            notes.append(f"{t.serial}: {exc}")
            t.close()
            continue
        specific = match_profile(dict(dev.info.props), dev.info.os, profiles, among=[p for p in named if not p.fallback])
        generic = any(p.fallback and p.os == dev.info.os for p in named)   # 'android' / 'linux' match any of that OS
        if specific is not None or generic:
            if specific is not None:
                dev.profile = specific
            matches.append(dev)
        else:
            others.append(dev)
    for d in others:
        d.close()
    if len(matches) == 1:
        return matches[0]
    listing = "; ".join(f"{d.info.label} -> {d.profile.name if d.profile else '?'}" for d in matches + others)
    for d in matches:
        d.close()
    if not matches:
        raise DeviceNotFoundError(
            f"no connected device matches '{device}' ({', '.join(p.name for p in named)}). Connected: "
            f"{listing or 'none'}{'; ' + '; '.join(notes) if notes else ''}. Plug it in with USB debugging on, "
            "or pass --serial HOST:PORT / --host HOST")
    raise AmbiguousDeviceError(f"{len(matches)} connected devices match '{device}': {listing}; "
                               "pick one with --serial")


def list_connected(adb_server_port: int | None = None, serials: list[str] | None = None,
                   hosts: list[str] | None = None, transport: str = "auto",
                   include_known: bool = True) -> tuple[list[ConnectedDevice], list[str]]:
    """Every reachable device with the profile it matched (for ``edge-isp devices``)."""
    profiles = list_profiles()
    transports, notes = (([], []) if (serials or hosts) and not include_known
                         else candidates(adb_server_port, include_known, transport=transport))
    seen = {t.serial for t in transports}
    for s in serials or []:
        if s in seen:
            continue
        try:
            transports.append(open_transport(transport, serial=s, adb_server_port=adb_server_port))
        except DeviceError as exc:
            notes.append(f"{s}: {exc}")
    for h in hosts or []:
        if h in seen:
            continue
        try:
            transports.append(open_transport("ssh", host=h))
        except DeviceError as exc:
            notes.append(f"{h}: {exc}")
    devices = []
    for t in transports:
        try:
            devices.append(identify(t, profiles))
        except DeviceError as exc:
            notes.append(f"{t.serial}: {exc}")
            t.close()
    return devices, notes
