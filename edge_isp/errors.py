"""One exception hierarchy for every user-facing failure, and the exit codes it maps to.

Every message says what was wrong and what to do; the CLI prints ``str(err)`` as one
line on stderr and exits with ``err.exit_code``. The exit codes are one table, the same
for every verb (README "Exit codes" shows it to users):

====  =====================================================================================
code  meaning
====  =====================================================================================
0     success
1     a check you asked for did not pass: a ``gate`` budget breached, ``check --require`` /
      ``convert --require-full-delegation`` not met, ``process`` failed on some files
2     usage error: unknown option, missing argument, a flag value of the wrong type
3     bad input: a file, folder, name or value that cannot be used as given
4     verification failed: a converted artifact does not compute what PyTorch computes
5     conversion failed: a converter or vendor compiler failed on the model
6     missing dependency or toolchain: install what the message names
7     device error: not found, refused, disconnected, a command failed or timed out
8     internal error: a bug in edge-isp (``EDGE_ISP_DEBUG=1`` shows the traceback)
130   interrupted (Ctrl-C); nothing half-written is left behind
====  =====================================================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_VERIFICATION = 4
EXIT_CONVERSION = 5
EXIT_MISSING_DEPENDENCY = 6
EXIT_DEVICE = 7
EXIT_INTERNAL = 8
EXIT_INTERRUPTED = 130

# The table as data: the README section and `edge-isp exit-codes` render it from here.
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_CHECK_FAILED: "a check you asked for did not pass (gate budget, --require, --require-full-delegation, "
                       "process failed on some files)",
    EXIT_USAGE: "usage error: unknown option, missing argument, a flag value of the wrong type",
    EXIT_BAD_INPUT: "bad input: a file, folder, name or value that cannot be used as given",
    EXIT_VERIFICATION: "verification failed: the converted artifact does not compute what PyTorch computes",
    EXIT_CONVERSION: "conversion failed: a converter or vendor compiler failed on the model",
    EXIT_MISSING_DEPENDENCY: "missing dependency or toolchain: install what the message names",
    EXIT_DEVICE: "device error: not found, refused, disconnected, a command failed or timed out",
    EXIT_INTERNAL: "internal error: a bug in edge-isp (EDGE_ISP_DEBUG=1 shows the traceback)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); nothing half-written is left behind",
}


class EdgeIspError(Exception):
    """Base of every error edge-isp raises on purpose."""

    exit_code: int = EXIT_CHECK_FAILED


class CheckFailedError(EdgeIspError):
    """A check the user asked for did not pass (a budget, a delegation requirement)."""

    exit_code = EXIT_CHECK_FAILED


class UsageError(EdgeIspError):
    """The command was called wrong (a missing argument, flags that exclude each other)."""

    exit_code = EXIT_USAGE


class InputError(EdgeIspError):
    """The user gave a value or a file that cannot be used as given."""

    exit_code = EXIT_BAD_INPUT


class RawFormatError(InputError):
    """A RAW file cannot be read or does not match the layout described."""


class NoPreviewError(RawFormatError):
    """A camera RAW file embeds no preview image edge-isp can use as the camera's own rendering."""


class UnknownNameError(InputError):
    """A model, target, CFA, preset or profile name is not registered."""


class OutputError(InputError):
    """An output path cannot be written, or writing it would destroy something of the user's."""


class MissingDependencyError(EdgeIspError):
    """An optional heavy package is needed for this step but is not installed."""

    exit_code = EXIT_MISSING_DEPENDENCY


class ConversionError(EdgeIspError):
    """A converter (torch.onnx, onnx2tf, OpenVINO, NNCF) failed on the model."""

    exit_code = EXIT_CONVERSION


class VerificationError(EdgeIspError):
    """A converted artifact does not compute what the PyTorch model computes."""

    exit_code = EXIT_VERIFICATION


class BundleError(InputError):
    """An artifact bundle is missing, incomplete, tampered with or has a broken manifest."""
