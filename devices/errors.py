"""Device errors: one branch of the edge-isp exception hierarchy.

Every message says what went wrong and what to do next; the CLI prints it as one line.
"""

from __future__ import annotations

from edge_isp.errors import EXIT_DEVICE, EdgeIspError, InputError, UnknownNameError


class DeviceError(EdgeIspError):
    """Something about a device (phone, board) or the way to reach it went wrong."""

    exit_code = EXIT_DEVICE


class DeviceNotFoundError(DeviceError):
    """No connected device matches what was asked for."""


class AmbiguousDeviceError(DeviceError):
    """More than one connected device matches: the user must pick one by serial."""


class DeviceAuthError(DeviceError):
    """The device refused our ADB key (or SSH credentials)."""


class DeviceDisconnectedError(DeviceError):
    """The connection dropped in the middle of an operation."""

    def __init__(self, message: str, *, stage: str | None = None) -> None:
        super().__init__(message)
        self.stage = stage


class DeviceCommandError(DeviceError):
    """A command on the device failed (non-zero exit status)."""

    def __init__(self, message: str, *, exit_code: int | None = None, stdout: str = "", stderr: str = "") -> None:
        super().__init__(message)
        self.command_exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr


class DeviceTimeoutError(DeviceError):
    """A command on the device did not finish in time."""


class TransportUnavailableError(DeviceError):
    """The transport asked for cannot be used here (no adb client, no ssh, no libusb)."""


class BenchmarkBinaryError(InputError):
    """The on-device benchmark binary is missing, or built for another ABI."""


class ProfileError(InputError):
    """A device profile TOML file is malformed."""


class UnknownProfileError(UnknownNameError):
    """No device profile has this name or alias."""
