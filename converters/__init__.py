"""PyTorch -> ONNX -> TFLite / OpenVINO conversion, calibration, targets and verification."""

from edge_isp.converters.targets import Target, get_target, list_targets

__all__ = ["Target", "get_target", "list_targets"]
