"""PyTorch -> TFLite through LiteRT-Torch: the route that does not guess layouts.

onnx2tf turns an NCHW ONNX graph into NHWC TFLite by *guessing* from tensor shapes which
axis is the channel axis; when an activation has as many channels as rows or columns it
can guess wrong and silently build another model (``converters.layout_guard``). LiteRT-Torch
lowers the PyTorch program itself (torch.export -> StableHLO -> TFLite) and keeps the
program's own NCHW interface (the bundle records ``layout: NCHW`` for the runner), so any input size converts as the model computes it.

It runs in its own environment (``edge-isp toolchain install litert-torch``): the program
is exported here with ``torch.export`` and converted there. Float32 only for now: INT8
and float16 weight storage stay on the onnx2tf route.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_isp import toolchains
from edge_isp._deps import require
from edge_isp.converters.onnx_export import INPUT_NAME, OUTPUT_NAME
from edge_isp.errors import ConversionError

ROUTES = ("auto", "onnx2tf", "litert-torch")
CONVERT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class TorchSource:
    """What an ONNX file of the pipeline was exported from: the module, its inputs (name ->
    shape, positional order) and output names, so another route starts from the same program
    and gives the TFLite signature the same names."""

    module: Any
    inputs: dict[str, tuple[int, ...]]
    outputs: tuple[str, ...]


def source_of(module: Any, input_shape: Sequence[int] | Mapping[str, Sequence[int]],
              output_names: Sequence[str] = (OUTPUT_NAME,)) -> TorchSource:
    named = dict(input_shape) if isinstance(input_shape, Mapping) else {INPUT_NAME: tuple(input_shape)}
    return TorchSource(module, {n: tuple(int(d) for d in s) for n, s in named.items()}, tuple(output_names))


class _Named:
    """Wraps a module taking positional inputs and returning a tensor or a tuple into one that
    takes keyword inputs and returns a dict: LiteRT-Torch names the TFLite signature's inputs
    and outputs after them (the names the runners and two-pass driver look up)."""

    @staticmethod
    def wrap(source: TorchSource) -> Any:
        torch = require("torch", "the litert-torch route")

        class Named(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                module = source.module
                self.inner = module.traceable() if hasattr(module, "traceable") else module

            def forward(self, **kw: Any) -> dict[str, Any]:
                y = self.inner(*[kw[n] for n in source.inputs])
                return dict(zip(source.outputs, y if isinstance(y, (tuple, list)) else (y,)))

        return Named().eval()


def convert(source: TorchSource, out_path: Path, work: Path) -> dict[str, Any]:
    """``source`` as a float32 TFLite model at ``out_path``; returns what the toolchain said."""
    torch = require("torch", "the litert-torch route")
    work.mkdir(parents=True, exist_ok=True)
    program = work / "program.pt2"
    samples = {n: torch.zeros(*s) for n, s in source.inputs.items()}
    try:
        with torch.no_grad():
            exported = torch.export.export(_Named.wrap(source), (), samples)
        torch.export.save(exported, str(program))
    except Exception as exc:  # torch.export raises many types for untraceable code
        raise ConversionError(f"torch.export could not trace the model for litert-torch: "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from exc
    resp = toolchains.run("litert-torch", {"op": "convert", "program": str(program),
                                           "inputs": {n: list(s) for n, s in source.inputs.items()},
                                           "output": str(out_path)},
                          timeout=CONVERT_TIMEOUT_S)
    if not Path(out_path).is_file():
        raise ConversionError(f"litert-torch reported success but wrote no {out_path}")
    return {"route": "litert-torch", "version": resp.get("version"), "seconds": resp.get("seconds")}


def available() -> bool:
    return toolchains.status("litert-torch").installed


__all__ = ["CONVERT_TIMEOUT_S", "ROUTES", "TorchSource", "available", "convert", "source_of"]
