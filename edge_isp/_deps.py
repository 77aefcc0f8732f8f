"""Lazy imports of heavy optional packages with a clear error when they are absent.

The base package imports none of them at import time so that ``edge-isp --help`` and the
light runtime install stay fast.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from edge_isp.errors import MissingDependencyError

# import name -> (pip extra that brings it, human description)
_EXTRA_FOR: dict[str, tuple[str, str]] = {
    "torch": ("convert", "PyTorch"),
    "onnx": ("convert", "ONNX"),
    "onnxruntime": ("convert", "ONNX Runtime"),
    "onnxscript": ("convert", "onnxscript (the dynamo ONNX exporter)"),
    "onnx2tf": ("convert", "onnx2tf"),
    "tensorflow": ("convert", "TensorFlow (pulled in by onnx2tf)"),
    "openvino": ("convert", "OpenVINO"),
    "nncf": ("convert", "NNCF"),
    "rawpy": ("runtime", "rawpy (LibRaw)"),
    "ai_edge_litert": ("runtime", "ai-edge-litert (the TFLite runtime)"),
    "tflite": ("runtime", "the tflite flatbuffer schema package"),
    "skimage": ("dev", "scikit-image"),
    "adb_shell": ("device", "adb-shell"),
}


def require(module: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise a MissingDependencyError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra, human = _EXTRA_FOR.get(top, ("convert", top))
        why = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"{human} is needed{why} but is not installed ({exc}); "
            f"install it with: pip install 'edge-isp[{extra}]'"
        ) from exc


def available(module: str) -> bool:
    """True when ``module`` can be imported (without raising)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
