"""The test session's one factory of real bundles: each (model, target, size, options)
converted once, with one crop setting, whichever test module asks first."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

MODEL = "pynet-v2-mobile"
SIZE = (160, 224)          # RAW HxW; packed 80x112 (free of onnx2tf's C == H == W trap)
CALIB_SAMPLES = 4          # enough for the INT8 bars at this size; a quarter of convert's default
VERIFY_SAMPLES = 1

_DONE: dict[tuple, Any] = {}
_ROOT: list[Path] = []


def convert_once(target: str, model: str = MODEL, size: tuple[int, int] = SIZE, **options: Any) -> Any:
    """The ConversionResult of ``edge-isp convert`` (blended tiling unless ``tiling`` is given)."""
    key = (model, target, tuple(size), tuple(sorted((k, repr(v)) for k, v in options.items())))
    if key not in _DONE:
        from edge_isp.converters.pipeline import ConvertOptions, convert

        if not _ROOT:
            _ROOT.append(Path(tempfile.mkdtemp(prefix="edge-isp-test-bundles-")))
            atexit.register(shutil.rmtree, _ROOT[0], True)
        out = _ROOT[0] / f"{model}_{target}_{size[0]}x{size[1]}_{len(_DONE)}"
        settings = {"tiling": "blended", "calib_samples": CALIB_SAMPLES, "verify_samples": VERIFY_SAMPLES, **options}
        _DONE[key] = convert(ConvertOptions(model=model, target=target, input_size=tuple(size), output=out, **settings))
    return _DONE[key]


def converted(target: str, model: str = MODEL, size: tuple[int, int] = SIZE, **options: Any) -> Path:
    """The bundle folder of :func:`convert_once`."""
    return Path(convert_once(target, model, size, **options).bundle.path)
