"""One exception hierarchy for every user-facing failure.

Every message says what was wrong and what to do; the CLI prints ``str(err)`` as one
line and exits with ``err.exit_code``.
"""

from __future__ import annotations


class EdgeIspError(Exception):
    """Base of every error edge-isp raises on purpose."""

    exit_code: int = 1


class InputError(EdgeIspError):
    """The user gave a value or a file that cannot be used as given."""

    exit_code = 2


class RawFormatError(InputError):
    """A RAW file cannot be read or does not match the layout described."""


class UnknownNameError(InputError):
    """A model, target, CFA, preset or profile name is not registered."""


class MissingDependencyError(EdgeIspError):
    """An optional heavy package is needed for this step but is not installed."""

    exit_code = 3


class ConversionError(EdgeIspError):
    """A converter (torch.onnx, onnx2tf, OpenVINO, NNCF) failed on the model."""


class VerificationError(EdgeIspError):
    """A converted artifact does not compute what the PyTorch model computes."""

    exit_code = 4


class BundleError(InputError):
    """An artifact bundle is missing, incomplete or has a broken manifest."""
