"""Runners over TFLite (ai-edge-litert / tflite-runtime), OpenVINO, ONNX Runtime and PyTorch."""

from edge_isp.runtimes.base import Runner, TensorSpec, list_runtimes, open_runner
from edge_isp.runtimes.bundle_runner import open_bundle, open_model
from edge_isp.runtimes.subject import open_subject
from edge_isp.runtimes.tiling import run_tiled

__all__ = ["Runner", "TensorSpec", "list_runtimes", "open_bundle", "open_model", "open_runner", "open_subject",
           "run_tiled"]
