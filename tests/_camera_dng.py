"""Write small real DNG files for the camera-benchmark tests: a Bayer mosaic in a raw
SubIFD and, in IFD0, an embedded JPEG preview (as cameras and Adobe's converter do), so
LibRaw reads the mosaic and ``extract_thumb`` returns the JPEG, through the real rawpy path.

No redistributable camera RAW file with an embedded JPEG small enough for the repository
was found (tests/data/raw/README.md), so the tests make their camera files from the real
Bayer captures in tests/data/raw.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np

# TIFF field types: BYTE, ASCII, SHORT, LONG, RATIONAL, SRATIONAL -> struct codes per value
_CODES = {1: "B", 3: "H", 4: "I", 5: "II", 10: "ii"}
Entries = dict[int, tuple[int, object]]


def _ifd(entries: Entries, at: int) -> bytes:
    """One little-endian IFD placed at file offset ``at``; long values follow it."""
    head, tail = [struct.pack("<H", len(entries))], b""
    tail_at = at + 2 + 12 * len(entries) + 4
    for tag in sorted(entries):
        kind, value = entries[tag]
        if kind == 2:
            payload = str(value).encode() + b"\0"
            count = len(payload)
        else:
            values = list(value) if isinstance(value, (list, tuple)) else [value]
            flat = [x for v in values for x in (v if isinstance(v, tuple) else (v,))]
            payload = struct.pack("<" + _CODES[kind][0] * len(flat), *flat)
            count = len(values)
        if len(payload) <= 4:
            head.append(struct.pack("<HHI", tag, kind, count) + payload.ljust(4, b"\0"))
        else:
            head.append(struct.pack("<HHII", tag, kind, count, tail_at + len(tail)))
            tail += payload + b"\0" * (len(payload) % 2)
    head.append(struct.pack("<I", 0))
    return b"".join(head) + tail


def jpeg_bytes(rgb: np.ndarray, quality: int = 95) -> bytes:
    """(h, w, 3) float in [0, 1] or uint8 -> baseline JPEG bytes (Pillow)."""
    from PIL import Image

    img = np.asarray(rgb)
    if img.dtype != np.uint8:
        img = np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def write_camera_dng(path: Path, mosaic: np.ndarray, cfa: str, black: int, white: int, *,
                     preview: np.ndarray | None = None, orientation: int = 1,
                     neutral: tuple[float, float, float] = (0.5, 1.0, 0.7), quality: int = 95) -> Path:
    """A DNG 1.4 holding ``mosaic`` (uint16, pattern ``cfa``) and, when given, ``preview``
    ((h, w, 3) as the camera's JPEG). ``orientation`` is the TIFF/EXIF Orientation; the
    colour matrix is the identity and ``neutral`` the as-shot white balance."""
    mosaic = np.ascontiguousarray(mosaic, dtype="<u2")
    height, width = mosaic.shape
    out = bytearray(b"II*\0\0\0\0\0")  # header; IFD0's offset is patched in at the end
    jpeg = jpeg_bytes(preview, quality) if preview is not None else b""
    jpeg_at = len(out)
    out += jpeg + b"\0" * (len(jpeg) % 2)
    raw_at = len(out)
    out += mosaic.tobytes()
    raw: Entries = {
        254: (4, 0), 256: (4, width), 257: (4, height), 258: (3, 16), 259: (3, 1), 262: (3, 32803),
        273: (4, raw_at), 277: (3, 1), 278: (4, height), 279: (4, mosaic.nbytes), 284: (3, 1),
        33421: (3, (2, 2)), 33422: (1, tuple("RGB".index(c) for c in cfa)),
        50714: (4, int(black)), 50717: (4, int(white)),
    }
    camera: Entries = {
        271: (2, "edge-isp"), 272: (2, "synthetic camera"), 274: (3, orientation),
        50706: (1, (1, 4, 0, 0)), 50707: (1, (1, 1, 0, 0)), 50708: (2, "edge-isp synthetic camera"),
        50721: (10, ((1, 1), (0, 1), (0, 1), (0, 1), (1, 1), (0, 1), (0, 1), (0, 1), (1, 1))),  # ColorMatrix1
        50728: (5, tuple((round(v * 10000), 10000) for v in neutral)),  # AsShotNeutral
        50778: (3, 21),  # CalibrationIlluminant1 = D65
    }
    if preview is None:
        ifd0 = {**raw, **camera}
    else:
        sub_at = len(out)
        out += _ifd(raw, sub_at)
        ph, pw = np.asarray(preview).shape[:2]
        ifd0 = {254: (4, 1), 256: (4, pw), 257: (4, ph), 258: (3, (8, 8, 8)), 259: (3, 7), 262: (3, 6),
                273: (4, jpeg_at), 277: (3, 3), 278: (4, ph), 279: (4, len(jpeg)), 284: (3, 1),
                330: (4, sub_at), **camera}
    if len(out) % 2:
        out += b"\0"
    ifd0_at = len(out)
    out += _ifd(ifd0, ifd0_at)
    out[4:8] = struct.pack("<I", ifd0_at)
    Path(path).write_bytes(bytes(out))
    return Path(path)
