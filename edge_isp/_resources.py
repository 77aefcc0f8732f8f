"""Peak memory of this process, resettable per stage on Linux."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark (VmHWM) so the next reading covers what follows."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory since start (or the last reset), in MiB."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return _rusage_peak_mb(resource.RUSAGE_SELF)


def children_peak_rss_mb() -> float:
    """The largest peak resident memory of any finished child process (toolchain workers)."""
    return _rusage_peak_mb(resource.RUSAGE_CHILDREN)


def _rusage_peak_mb(who: int) -> float:
    peak = resource.getrusage(who).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0   # bytes there, KiB here


def cache_dir(*parts: str) -> Path:
    """edge-isp's folder in the user's cache (``EDGE_ISP_CACHE`` overrides it): measured model
    plans and the machine's peak, things worth keeping between runs and cheap to lose."""
    import os

    root = os.environ.get("EDGE_ISP_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "edge-isp").joinpath(*parts)


# Peaks reported by toolchain workers (their own ru_maxrss, in their answer), since the last
# take_child_peak(): RUSAGE_CHILDREN only knows the largest child the process ever waited for.
_child_peak_mb = 0.0


def note_child_peak(mb: float) -> None:
    global _child_peak_mb
    _child_peak_mb = max(_child_peak_mb, float(mb))


def take_child_peak() -> float:
    """The largest child peak noted since the last call (0 if none), and forget it."""
    global _child_peak_mb
    peak, _child_peak_mb = _child_peak_mb, 0.0
    return peak
