"""Runners over TFLite (ai-edge-litert / tflite-runtime), OpenVINO, ONNX Runtime and PyTorch."""

from edge_isp.runtimes.base import Runner, TensorSpec, list_runtimes, open_runner

__all__ = ["Runner", "TensorSpec", "list_runtimes", "open_runner"]
