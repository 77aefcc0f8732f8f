"""Camera RAW containers (DNG, CR2, NEF, ARW, RAF, ORF, RW2, ...) read through rawpy/LibRaw.

Besides the reader this module answers "is this file a camera RAW container?" for files
whose extension does not say (``.raw`` is both a Kodak/Panasonic/Leica container and the
usual name of a headerless sensor dump): :func:`probe_container`.  LibRaw also "reads"
headerless files whose byte count matches a table of old cameras (a 1024x768 8-bit AVT
dump is 786432 bytes, like a 768x512 uint16 dump); such a size-only match is not taken as
evidence of a container.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edge_isp._deps import require
from edge_isp.errors import RawFormatError
from edge_isp.raw._checks import cli_flag, flags, level, switch, warn
from edge_isp.raw._registry import RawLayout, register_reader
from edge_isp.raw.cfa import CFA_PATTERNS, PACKED_CHANNELS, channel_offsets, normalize_cfa
from edge_isp.raw.image import RawImage

CAMERA_EXTENSIONS: tuple[str, ...] = (
    ".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf",
    ".orf", ".rw2", ".rwl", ".pef", ".ptx", ".srw", ".3fr", ".fff", ".iiq", ".mos",
    ".mef", ".mrw", ".kdc", ".dcr", ".erf", ".gpr",
)  # fmt: skip

# Leading bytes of the container formats LibRaw parses from a header.
_MAGIC: tuple[bytes, ...] = (
    b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+",  # TIFF / BigTIFF: DNG, CR2, NEF, ARW, PEF, ...
    b"IIRO", b"IIRS", b"MMOR",  # Olympus ORF
    b"IIU\x00",  # Panasonic RW2 / Leica RWL
    b"FUJIFILM",  # RAF
    b"\x00MRM",  # Minolta MRW
    b"FOVb",  # Sigma X3F
    b"IIII",  # Phase One IIQ
    b"II\x1a\x00\x00\x00HEAPCCDR",  # Canon CRW
)  # fmt: skip

_TRUNCATION_SIGNS = ("unexpected end of file", "corrupt data")

HEADERLESS_HINT = (
    "a headerless sensor dump needs a .raw or .bin name and "
    + flags(["width", "height", "cfa", "white_level"])
)


def read_head(path: Path, size: int = 16) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(size)


def has_container_magic(head: bytes) -> bool:
    """True when the first bytes are those of a camera RAW container LibRaw parses by header."""
    return head.startswith(_MAGIC) or head[4:8] == b"ftyp"  # ftyp: Canon CR3 (ISO media)


def _flush_c_stdio() -> None:
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def libraw_stderr() -> Iterator[list[str]]:
    """Collect what LibRaw prints on the C-level stderr (e.g. "x.dng: Unexpected end of file").

    The CLI promises one line per error; LibRaw's own messages go into the list (filled
    when the block ends) and from there into that one line.  File descriptor 2 is
    redirected for the duration of the block, so other threads' stderr output in that
    window lands in the list too.
    """
    captured: list[str] = []
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to redirect (a daemon): nothing to hide
        yield captured
        return
    sink = tempfile.TemporaryFile()
    try:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            _flush_c_stdio()
            os.dup2(saved, 2)
    finally:
        os.close(saved)
        sink.seek(0)
        text = sink.read().decode("utf-8", "replace")
        sink.close()
        captured.extend(line.strip() for line in text.splitlines() if line.strip())


def _libraw_detail(exc: BaseException) -> str:
    detail: Any = exc.args[0] if exc.args else exc
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    return f"{type(exc).__name__}: {detail}"


def _said(chatter: list[str], path: Path) -> str:
    """LibRaw's own lines without the file name it prefixes, joined into one."""
    prefix = f"{path}: "
    return "; ".join(line[len(prefix):] if line.startswith(prefix) else line for line in chatter)


def _opens(rawpy: Any, source: Path | bytes) -> None:
    raw = rawpy.RawPy()
    try:
        if isinstance(source, bytes):
            raw.open_buffer(io.BytesIO(source))
        else:
            raw.open_file(str(source))
    finally:
        raw.close()


def _size_only(rawpy: Any, path: Path) -> bool:
    """True when LibRaw recognises the file only by its byte count (no header it knows).

    The file minus its last byte is offered again: a header-based identification does not
    care, a size-table match no longer fits.
    """
    size = path.stat().st_size
    if size < 2:
        return True
    with open(path, "rb") as fh:
        data = fh.read(size - 1)
    with libraw_stderr():
        try:
            _opens(rawpy, data)
        except Exception:  # unsupported, or not readable without its last byte
            return True
    return False


def refuse_size_only_match(path: Path) -> None:
    """RawFormatError when LibRaw read ``path`` only because its size is in LibRaw's table of
    headerless camera formats (random bytes of the right size "open" as such a camera)."""
    if has_container_magic(read_head(path)):
        return
    rawpy = require("rawpy", "reading camera RAW files")
    if _size_only(rawpy, path):
        raise RawFormatError(
            f"{path}: has no camera RAW header; LibRaw only matched its size ({path.stat().st_size} bytes) "
            f"to a headerless format of some camera, so a picture would be a guess; {HEADERLESS_HINT} "
            "(in Python, read_raw(path, format='camera') takes LibRaw's guess)"
        )


ProbeVerdict = Literal["container", "broken-container", "size-only", "not-raw"]


def probe_container(path: Path) -> ProbeVerdict:
    """What LibRaw makes of a file whose extension does not name a camera format.

    ``container``: LibRaw parses it from its header (a Kodak .raw, a DNG renamed .raw);
    ``broken-container``: it starts like a container LibRaw knows but LibRaw cannot open it;
    ``size-only``: LibRaw would only guess a camera from the byte count (a headerless dump);
    ``not-raw``: LibRaw does not recognise it.
    """
    rawpy = require("rawpy", "recognising camera RAW files")
    magic = has_container_magic(read_head(path))
    with libraw_stderr():
        try:
            _opens(rawpy, path)
        except rawpy.LibRawFileUnsupportedError:
            return "not-raw"
        except Exception:  # any other LibRaw failure
            return "broken-container" if magic else "not-raw"
    if magic:
        return "container"
    return "size-only" if _size_only(rawpy, path) else "container"


@register_reader(
    "camera",
    CAMERA_EXTENSIONS,
    accepts=("cfa", "black_level", "white_level"),
    self_describing=True,
    description=(
        "camera RAW container through rawpy (LibRaw); visible area, levels, CFA, WB and "
        "colour matrix from metadata (any extension LibRaw recognises by its header, e.g. Kodak .raw)"
    ),
)
def read_camera_raw(path: Path, layout: RawLayout) -> RawImage:
    """Read the visible sensor area of a camera RAW file with its metadata.

    ``layout.black_level`` / ``white_level`` override what the file says; ``layout.cfa``
    must match the pattern the file stores unless ``layout.force_cfa`` is set (then a
    :class:`~edge_isp.raw.RawInputWarning` is issued and the mosaic is relabelled).
    """
    rawpy = require("rawpy", "reading camera RAW files")
    head = read_head(path)
    chatter: list[str] = []
    try:
        with libraw_stderr() as chatter, rawpy.imread(str(path)) as raw:
            fields = _extract(raw, path)
    except RawFormatError:
        raise
    except rawpy.LibRawFileUnsupportedError as exc:
        if has_container_magic(head):
            raise RawFormatError(
                f"{path}: starts like a camera RAW file, but LibRaw finds no image it can read in it: "
                "it is truncated or corrupt (copy it again from the camera or card), or a format "
                "LibRaw does not support"
            ) from exc
        raise RawFormatError(
            f"{path}: not a camera RAW file LibRaw recognises (it is corrupt, or another kind of "
            f"file); {HEADERLESS_HINT}"
        ) from exc
    except Exception as exc:  # LibRawError and whatever rawpy raises on damaged data
        said = f"; LibRaw says: {_said(chatter, path)}" if chatter else ""
        raise RawFormatError(
            f"{path}: LibRaw cannot read this file ({_libraw_detail(exc)}{said}); it is truncated or "
            "corrupt: copy it again from the camera or card"
        ) from exc
    damage = [line for line in chatter if any(sign in line.lower() for sign in _TRUNCATION_SIGNS)]
    if damage:
        raise RawFormatError(
            f"{path}: the file is truncated or corrupt (LibRaw says: {_said(damage, path)}); part of "
            "the picture would be missing: copy it again from the camera or card"
        )
    if chatter:
        fields["metadata"]["libraw_messages"] = list(chatter)

    if layout.cfa is not None:
        _apply_cfa_override(path, fields, normalize_cfa(layout.cfa), bool(layout.force_cfa))
    if layout.black_level is not None:
        black = layout.black_level
        fields["black_level"] = (
            level(black, "black_level", path) if np.ndim(black) == 0
            else tuple(level(b, "black_level", path) for b in np.ravel(black))
        )
    if layout.white_level is not None:
        fields["white_level"] = level(layout.white_level, "white_level", path)
    return RawImage(source=path, format="camera", **fields)


def _apply_cfa_override(path: Path, fields: dict[str, Any], wanted: str, force: bool) -> None:
    stored = fields["cfa"]
    if wanted == stored:
        return
    if not force:
        raise RawFormatError(
            f"{path}: the file stores its Bayer pattern as {stored}, but {cli_flag('cfa')} {wanted} was "
            f"given; {flags(['cfa'])} is for headerless and PNG/TIFF Bayer files, which record none: "
            f"leave it out, or add {switch('force_cfa')} if the file's pattern is wrong"
        )
    message = (
        f"{path}: reading the mosaic as {wanted} although the file stores {stored} "
        f"({cli_flag('force_cfa')}); the file's white balance and colour matrix may not fit"
    )
    warn(message)
    black = fields["black_level"]
    if isinstance(black, tuple):  # a black level belongs to a pixel site: keep it with its site
        old, new = channel_offsets(stored), channel_offsets(wanted)
        at_site = {old[ch]: value for ch, value in zip(PACKED_CHANNELS, black)}
        fields["black_level"] = tuple(at_site[new[ch]] for ch in PACKED_CHANNELS)
    fields["cfa"] = wanted
    fields["metadata"] = {**fields["metadata"], "stored_cfa": stored,
                          "warnings": [*fields["metadata"].get("warnings", []), message]}


def _extract(raw: Any, path: Path) -> dict[str, Any]:
    pattern = raw.raw_pattern
    if pattern is None or np.asarray(pattern).shape != (2, 2):
        shape = None if pattern is None else np.asarray(pattern).shape
        raise RawFormatError(
            f"{path}: the sensor is not a 2x2 Bayer mosaic (CFA repeat {shape}; e.g. Fujifilm "
            "X-Trans, Foveon or an already-demosaiced linear DNG); only Bayer sensors are supported"
        )
    desc = raw.color_desc.decode("ascii", "replace")
    # The colour index of each visible pixel: its top-left 2x2 is the pattern of the
    # visible area, i.e. with the phase shift caused by the cropped sensor margins.
    indices = np.asarray(raw.raw_colors_visible[:2, :2]).ravel()
    letters = "".join(desc[i] if i < len(desc) else "?" for i in indices)
    if letters not in CFA_PATTERNS:
        raise RawFormatError(
            f"{path}: unsupported colour filter {letters!r} (colours {desc!r}); only RGB Bayer "
            f"patterns {', '.join(CFA_PATTERNS)} are supported"
        )
    # Colour index at each packed channel's position, to reorder per-index metadata.
    offsets = channel_offsets(letters)
    index_at = {ch: int(raw.raw_colors_visible[dy, dx]) for ch, (dy, dx) in offsets.items()}

    per_index_black = list(raw.black_level_per_channel)
    black = tuple(float(per_index_black[index_at[ch]]) for ch in PACKED_CHANNELS)

    mosaic = np.array(raw.raw_image_visible, copy=True)
    if mosaic.ndim != 2 or mosaic.size == 0:
        raise RawFormatError(f"{path}: LibRaw found no sensor data in this file (visible area {mosaic.shape})")
    white = float(raw.white_level)

    rgb_index = [desc.index(c) for c in "RGB"]
    cam_wb = [float(v) for v in raw.camera_whitebalance]
    wb = tuple(cam_wb[i] for i in rgb_index)
    wb_gains = wb if all(np.isfinite(g) and g > 0 for g in wb) else None

    matrix = np.asarray(raw.color_matrix, dtype=np.float64)
    color_matrix = None
    if matrix.shape[0] >= 3 and matrix.shape[1] >= 3:
        m = matrix[:3][:, rgb_index]
        if np.all(np.isfinite(m)) and np.any(m != 0) and not np.allclose(m, np.eye(3)):
            color_matrix = m.astype(np.float32)

    sizes = raw.sizes
    return {
        "mosaic": mosaic,
        "cfa": letters,
        "black_level": black,
        "white_level": white,
        "wb_gains": wb_gains,
        "color_matrix": color_matrix,
        "metadata": {
            "color_desc": desc,
            "raw_size": (int(sizes.raw_height), int(sizes.raw_width)),
            "margins": (int(sizes.top_margin), int(sizes.left_margin)),
            "orientation_flip": int(sizes.flip),
        },
    }
