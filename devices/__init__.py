"""Device transports, on-device runners, memory and power sampling.

    >>> from edge_isp.devices import select_device, profile_bundles, ProfileOptions
    >>> dev = select_device("pixel")                      # a profile alias, then the connected device
    >>> report = profile_bundles(dev, ["bundles/microisp-nnapi-int8"],
    ...                          ProfileOptions(benchmark_binary="benchmark_model"), store=ResultsStore())

Transports (one interface: run -> stdout/stderr/real exit status, push, pull, stat):
``AdbShellTransport`` (adb-shell, TCP or USB, no adb server), ``AdbClientTransport``
(the adb client), ``SshTransport`` (system ssh) and ``LocalTransport``. Heavy or optional
packages are imported only when a transport is opened.
"""

from __future__ import annotations

from typing import Any

from edge_isp.devices.errors import (
    AmbiguousDeviceError,
    BenchmarkBinaryError,
    DeviceAuthError,
    DeviceCommandError,
    DeviceDisconnectedError,
    DeviceError,
    DeviceNotFoundError,
    DeviceTimeoutError,
    ProfileError,
    TransportUnavailableError,
    UnknownProfileError,
)
from edge_isp.devices.profiles import (
    Accelerator,
    DeviceProfile,
    get_profile,
    list_profiles,
    load_profile,
    match_profile,
    nnapi_feature_level,
)
from edge_isp.devices.transport import CommandResult, DeviceInfo, RemoteStat, Transport

_LAZY = {
    "AdbShellTransport": "edge_isp.devices.adb_python",
    "AdbClientTransport": "edge_isp.devices.adb_client",
    "SshTransport": "edge_isp.devices.ssh",
    "LocalTransport": "edge_isp.devices.local",
    "ConnectedDevice": "edge_isp.devices.discovery",
    "select_device": "edge_isp.devices.discovery",
    "list_connected": "edge_isp.devices.discovery",
    "open_transport": "edge_isp.devices.discovery",
    "Harness": "edge_isp.devices.harness",
    "ProfileOptions": "edge_isp.devices.harness",
    "DeviceRun": "edge_isp.devices.harness",
    "ProfileReport": "edge_isp.devices.harness",
    "profile_bundles": "edge_isp.devices.harness",
    "parse_benchmark_output": "edge_isp.devices.benchmark",
    "benchmark_flags": "edge_isp.devices.benchmark",
}

__all__ = [
    "AmbiguousDeviceError", "BenchmarkBinaryError", "DeviceAuthError", "DeviceCommandError",
    "DeviceDisconnectedError", "DeviceError", "DeviceNotFoundError", "DeviceTimeoutError", "ProfileError",
    "TransportUnavailableError", "UnknownProfileError", "Accelerator", "DeviceProfile", "get_profile",
    "list_profiles", "load_profile", "match_profile", "nnapi_feature_level", "CommandResult", "DeviceInfo",
    "RemoteStat", "Transport", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edge_isp.devices' has no attribute {name!r}")
