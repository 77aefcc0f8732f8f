"""Atomic writes and output guards: a reader never sees a half-written file or bundle
folder, and nothing of the user's is ever deleted or replaced without being asked.

The rules every verb follows (README "Outputs"):

- a file the user named (``render -o x.png``, ``gate --junit x.xml``) is replaced
  atomically; a folder is never replaced by a file;
- a folder edge-isp writes as a whole (a bundle) may be created, may fill an empty
  folder, and may replace an older folder of the same kind only with ``--overwrite``;
  anything else there is refused before any work starts;
- destinations are checked before the work, so a bad ``-o`` fails in a second, not after
  minutes of conversion or inference.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from edge_isp.errors import OutputError


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _existing_ancestor(path: Path) -> Path:
    probe = path.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def ensure_writable_folder(folder: Path, flag: str = "--output") -> None:
    """Refuse (one line) unless files can be created in ``folder`` or where it would be made.

    Probes by creating and removing a temporary file in the nearest existing folder (root
    ignores permission bits, so ``os.access`` is no answer); creates nothing that stays.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{flag} {folder} is a file, not a folder; name a folder")
    base = _existing_ancestor(folder)
    if not base.is_dir():
        raise OutputError(f"{flag} {folder}: {base} is a file, so no folder can be made there; choose another path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".edge-isp-probe-", dir=base)
    except OSError as exc:
        raise OutputError(f"{flag} {folder}: cannot write in {base} ({_reason(exc)}); choose a writable location") from exc
    os.close(fd)
    os.unlink(probe)


def ensure_writable_file(target: Path, flag: str = "--output") -> None:
    """Refuse (one line) unless ``target`` can be written as a file."""
    target = Path(target)
    if target.is_dir():
        raise OutputError(f"{flag} {target} is a folder; name a file to write")
    ensure_writable_folder(target.parent, flag)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_path(target: Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success.

    The temporary file lives in the same folder so the final ``os.replace`` is atomic.
    On any exception the temporary file is removed and ``target`` is left untouched.
    Unwritable destinations raise :class:`OutputError` (one line), not ``OSError``.
    """
    target = Path(target)
    if target.is_dir():
        raise OutputError(f"{target} is a folder; name a file to write")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=suffix if suffix is not None else target.suffix + ".tmp",
            dir=target.parent,
        )
    except OSError as exc:
        raise OutputError(f"cannot write {target} ({_reason(exc)}); choose a writable location") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; give the final file the permissions a plain open() would.
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise OutputError(f"cannot write {target} ({_reason(exc)}); choose a writable location") from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: Path, text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


# ----------------------------------------------------------------------------- folders

def _occupant(path: Path) -> str:
    """What is at ``path``: "free" (nothing, or an empty folder), "file" (a file or a
    link: never replaced by a folder) or "folder" (a folder with something in it)."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        return "file"
    return "folder" if path.is_dir() and any(path.iterdir()) else "free"


def guard_folder(target: Path, *, kind: str, is_ours: Callable[[Path], bool], overwrite: bool,
                 flag: str = "--output") -> None:
    """Refuse, before any work, a destination that writing a ``kind`` folder would destroy.

    Allowed: nothing there, an empty folder, or (with ``overwrite``) a folder ``is_ours``
    recognises as an earlier ``kind``. Also checks the location is writable.
    """
    target = Path(target)
    occupant = _occupant(target)
    if occupant == "file":
        raise OutputError(f"{flag} {target} is a file, not a folder; nothing was written: name a new folder")
    if occupant == "folder":
        if not is_ours(target):
            raise OutputError(f"{flag} {target} is a folder that holds other files, not an edge-isp {kind}; "
                              f"nothing was written: name a new or empty folder")
        if not overwrite:
            raise OutputError(f"{flag} {target} holds an edge-isp {kind} already; pass --overwrite to replace it, "
                              f"or name another folder")
    ensure_writable_folder(target, flag)


@contextlib.contextmanager
def atomic_dir(target: Path, *, may_replace: Callable[[Path], bool] = lambda path: False) -> Iterator[Path]:
    """Build a folder under a temporary name and move it onto ``target`` when complete.

    ``target`` may be absent or an empty folder; an existing non-empty folder is replaced
    only when ``may_replace(target)`` says so (checked again here, at the moment of the
    swap, in case something appeared while the work ran), and only after the new folder
    is complete. Anything else raises :class:`OutputError` and leaves ``target`` alone.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    except OSError as exc:
        raise OutputError(f"cannot create {target} ({_reason(exc)}); choose a writable location") from exc
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the mode a plain mkdir would
        occupant = _occupant(target)
        if occupant == "file":
            raise OutputError(f"{target} is a file now; nothing was written")
        if occupant == "folder":
            if not may_replace(target):
                raise OutputError(f"{target} holds other files now (it was empty or absent when the work began); "
                                  f"nothing was replaced: name a new folder")
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / "replaced")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)  # onto an empty folder or nothing: rename(2) allows both
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
