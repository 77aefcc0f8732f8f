"""RAW input layer: read Bayer sensor data, normalise and pack it, render it classically.

    >>> from edge_isp.raw import read_raw, read_sample, render
    >>> raw = read_raw("photo.dng")                    # levels, CFA, WB from metadata
    >>> raw = read_raw("dump.raw", width=1920, height=1080, cfa="RGGB", white_level=1023)
    >>> x = raw.packed()                               # float32 (4, H/2, W/2): B, Gr, R, Gb
    >>> rgb = render(read_sample())                    # float32 (H, W, 3) sRGB in [0, 1]

Only numpy is imported here; rawpy / Pillow / tifffile load when a function needs them.
"""

from __future__ import annotations

from edge_isp.raw.cfa import (
    CFA_PATTERNS,
    PACKED_CHANNELS,
    cfa_after_crop,
    cfa_after_flip,
    cfa_offset,
    channel_offsets,
    crop_to_cfa,
    normalize_cfa,
    pack_bayer,
    unpack_bayer,
)
from edge_isp.raw._checks import RawInputWarning
from edge_isp.raw.classical import DEMOSAIC_METHODS, demosaic, gray_world_gains, render
from edge_isp.raw.image import RawImage
from edge_isp.raw.image_io import image_extensions, write_image
from edge_isp.raw.presets import Preset, apply_preset, get_preset, list_presets, register_preset
from edge_isp.raw.readers import (
    RawLayout,
    get_reader,
    list_formats,
    read_raw,
    register_reader,
    supported_extensions,
)
from edge_isp.raw.samples import read_sample, sample_path

__all__ = [
    "CFA_PATTERNS",
    "DEMOSAIC_METHODS",
    "PACKED_CHANNELS",
    "Preset",
    "RawImage",
    "RawInputWarning",
    "RawLayout",
    "apply_preset",
    "cfa_after_crop",
    "cfa_after_flip",
    "cfa_offset",
    "channel_offsets",
    "crop_to_cfa",
    "demosaic",
    "get_preset",
    "get_reader",
    "gray_world_gains",
    "image_extensions",
    "list_formats",
    "list_presets",
    "normalize_cfa",
    "pack_bayer",
    "read_raw",
    "read_sample",
    "register_preset",
    "register_reader",
    "render",
    "sample_path",
    "supported_extensions",
    "unpack_bayer",
    "write_image",
]
