"""Keep the converters' native log noise out of the user's terminal and CI log.

TensorFlow, absl, XLA and LiteRT write C++ log lines (cuDNN/cuBLAS factory lines,
``computation_placer``, ``Ignored output_format`` ...) straight to file descriptor 2,
below Python, where no logging setting reaches all of them. The CLI points fd 2 at a
temporary file and gives Python's ``sys.stderr`` (edge-isp's own messages, progress,
errors) a duplicate of the real stderr. ``--verbose`` / ``EDGE_ISP_VERBOSE=1`` turns
this off; a failed conversion keeps the file and names it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TextIO

ENV_VERBOSE = "EDGE_ISP_VERBOSE"


class NativeLog:
    """fd 2 -> a temporary file while active; ``sys.stderr`` stays on the terminal."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self._saved_fd: int | None = None
        self._saved_stderr: TextIO | None = None

    @property
    def active(self) -> bool:
        return self._saved_fd is not None

    def start(self) -> None:
        if self.active or os.environ.get(ENV_VERBOSE):
            return
        try:
            sys.stderr.flush()
            fd, name = tempfile.mkstemp(prefix="edge-isp-native-", suffix=".log")
            self._saved_fd = os.dup(2)
        except (OSError, ValueError, AttributeError):
            return  # no usable stderr or temp folder: leave the streams as they are
        self.path = Path(name)
        self._saved_stderr = sys.stderr
        sys.stderr = os.fdopen(os.dup(self._saved_fd), "w", buffering=1, encoding="utf-8", errors="replace")
        os.dup2(fd, 2)
        os.close(fd)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        # Library deprecation chatter is noise to a user; edge-isp's own warnings still show.
        warnings.filterwarnings("ignore")
        warnings.filterwarnings("default", module=r"edge_isp(\.|$)")

    def stop(self, keep: bool = False) -> Path | None:
        """Restore fd 2; return the log's path when kept (and non-empty), else delete it."""
        if not self.active:
            return None
        assert self._saved_fd is not None
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self._saved_fd, 2)
        os.close(self._saved_fd)
        self._saved_fd = None
        if self._saved_stderr is not None:
            replaced, sys.stderr = sys.stderr, self._saved_stderr
            replaced.close()
        path, self.path = self.path, None
        if path is None:
            return None
        if keep and path.stat().st_size > 0:
            return path
        path.unlink(missing_ok=True)
        return None


NATIVE_LOG = NativeLog()
