"""Camera RAW containers (DNG, CR2, NEF, ARW, RAF, ORF, RW2, ...) read through rawpy/LibRaw."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_isp._deps import require
from edge_isp.errors import RawFormatError
from edge_isp.raw._registry import RawLayout, register_reader
from edge_isp.raw.cfa import CFA_PATTERNS, PACKED_CHANNELS, channel_offsets
from edge_isp.raw.image import RawImage

CAMERA_EXTENSIONS: tuple[str, ...] = (
    ".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf",
    ".orf", ".rw2", ".rwl", ".pef", ".ptx", ".srw", ".3fr", ".fff", ".iiq", ".mos",
    ".mef", ".mrw", ".kdc", ".dcr", ".erf", ".gpr",
)  # fmt: skip


@register_reader(
    "camera",
    CAMERA_EXTENSIONS,
    accepts=("cfa", "black_level", "white_level"),
    self_describing=True,
    description=(
        "camera RAW container through rawpy (LibRaw); visible area, levels, CFA, WB and "
        "colour matrix from metadata"
    ),
)
def read_camera_raw(path: Path, layout: RawLayout) -> RawImage:
    """Read the visible sensor area of a camera RAW file with its metadata.

    ``layout.cfa`` / ``black_level`` / ``white_level`` override what the file says.
    """
    rawpy = require("rawpy", "reading camera RAW files")
    try:
        with rawpy.imread(str(path)) as raw:
            fields = _extract(raw, path)
    except (rawpy.LibRawError, rawpy.NotSupportedError) as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise RawFormatError(
            f"{path}: LibRaw cannot read this file ({type(exc).__name__}: {detail}); it is "
            "truncated, corrupt or not a camera RAW format LibRaw supports (a headerless sensor "
            "dump needs format='headerless' with width=, height=, cfa=, white_level=)"
        ) from exc
    if layout.cfa is not None:
        fields["cfa"] = layout.cfa
    if layout.black_level is not None:
        fields["black_level"] = layout.black_level
    if layout.white_level is not None:
        fields["white_level"] = layout.white_level
    return RawImage(source=path, format="camera", **fields)


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
