"""PyTorch reference runner: the registry model (or a user's checkpoint) in eval mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_isp._deps import require
from edge_isp.runtimes.base import TensorSpec, register_runner


class TorchRunner:
    runtime = "torch"

    def __init__(self, model: Any, input_shape: tuple[int, int, int, int], threads: int | None = None) -> None:
        self._torch = require("torch", "the PyTorch reference runner")
        if threads:
            self._torch.set_num_threads(threads)
        self.model = model.eval()
        self.input_spec = TensorSpec("bayer", tuple(input_shape), "float32", "NCHW")
        with self._torch.no_grad():
            out = self.model(self._torch.zeros(input_shape))
        self.output_spec = TensorSpec("rgb", tuple(out.shape), "float32", "NCHW")

    def run(self, packed: np.ndarray) -> np.ndarray:
        with self._torch.no_grad():
            return self.model(self._torch.from_numpy(np.ascontiguousarray(packed, np.float32))).numpy()


@register_runner("torch")
def _open_torch(model_path: Path, model: str | None = None, input_shape: tuple[int, int, int, int] | None = None,
                options: dict[str, Any] | None = None, threads: int | None = None) -> TorchRunner:
    """``model_path`` is a state-dict checkpoint for the registry model ``model``."""
    from edge_isp.models import create, model_info
    from edge_isp.models.weights import load_weights

    if model is None:
        raise ValueError("the torch runtime needs the registry model name")
    net = create(model, **(options or {}))
    load_weights(net, model_path)
    if input_shape is None:
        h, w = model_info(model).default_input_size
        input_shape = (1, 4, h // 2, w // 2)
    return TorchRunner(net, input_shape, threads=threads)
