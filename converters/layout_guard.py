"""Guard against onnx2tf's layout ambiguity before running it.

onnx2tf decides NCHW->NHWC transpositions from tensor shapes. When an activation's
channel count equals its height or width (e.g. 1x64x64x128 is fine, 1x64x48x64 is not),
it can pick the wrong axis for ops such as Pad and silently produce a wrong model:
measured on pynet-v2-mobile, 20 dB instead of 130 dB against PyTorch at a 192x256
mosaic, while 160x224 converts exactly. We find such tensors with ONNX shape inference
and suggest nearby input sizes that have none.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_isp._deps import require


@dataclass(frozen=True)
class Collision:
    tensor: str
    shape: tuple[int, int, int, int]   # NCHW

    def __str__(self) -> str:
        return f"{self.tensor} {'x'.join(map(str, self.shape))}"


def _shapes_at(proto: Any, packed_hw: tuple[int, int]) -> dict[str, tuple[int, ...]] | None:
    """4-D activation shapes of ``proto`` with its input resized to ``packed_hw`` (None: not inferable)."""
    onnx = require("onnx", "the layout check")
    model = copy.deepcopy(proto)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = packed_hw
    del model.graph.value_info[:]
    for out in model.graph.output:
        out.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception:
        return None
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        d = vi.type.tensor_type.shape.dim
        if len(d) == 4 and all(x.HasField("dim_value") for x in d):
            shapes[vi.name] = tuple(int(x.dim_value) for x in d)
    return shapes


def _collisions(shapes: dict[str, tuple[int, ...]]) -> list[Collision]:
    return [Collision(name, s) for name, s in shapes.items()  # type: ignore[arg-type]
            if s[1] > 1 and (s[1] == s[2] or s[1] == s[3])]


@dataclass(frozen=True)
class GraphFacts:
    """What decides the route of a TFLite conversion, from one shape inference."""

    collisions: list[Collision]
    activations_mib: float       # float32 size of all 4-D activations at the exported size


def graph_facts(onnx_path: Path) -> GraphFacts:
    """Layout collisions at the exported size, and the float32 size of all 4-D activations: what
    onnx2tf's probe run and TF's INT8 calibrator hold at once (PyNET at 448x448: 4.3 GiB of
    activations, 12.9 GB peak in onnx2tf, 7.0 GB in calibration)."""
    onnx = require("onnx", "the layout check")
    proto = onnx.load(str(onnx_path), load_external_data=False)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    shapes = _shapes_at(proto, (int(dims[2].dim_value), int(dims[3].dim_value))) or {}
    size = sum(4 * s[0] * s[1] * s[2] * s[3] for s in shapes.values()) / 2**20
    return GraphFacts(_collisions(shapes), size)


def find_collisions(onnx_path: Path) -> list[Collision]:
    """Activations whose channel count equals their height or width at the exported size."""
    return graph_facts(onnx_path).collisions


def suggest_sizes(onnx_path: Path, step: int, limit: int = 3) -> list[tuple[int, int]]:
    """Nearby RAW mosaic sizes (multiples of ``step``) with no collision, closest first."""
    onnx = require("onnx", "the layout check")
    proto = onnx.load(str(onnx_path), load_external_data=False)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    h0, w0 = 2 * int(dims[2].dim_value), 2 * int(dims[3].dim_value)
    candidates = sorted(
        ((h0 + dh * step, w0 + dw * step) for dh in range(-4, 5) for dw in range(-4, 5)),
        key=lambda hw: (abs(hw[0] - h0) + abs(hw[1] - w0), hw),
    )
    found: list[tuple[int, int]] = []
    for h, w in candidates:
        if h <= 0 or w <= 0 or (h, w) == (h0, w0):
            continue
        shapes = _shapes_at(proto, (h // 2, w // 2))
        if shapes and not _collisions(shapes):
            found.append((h, w))
            if len(found) == limit:
                break
    return found


def layout_hint(onnx_path: Path, mosaic_hw: tuple[int, int], step: int) -> str:
    """Why onnx2tf may have mistaken the layout at this size, and sizes that avoid it."""
    collisions = find_collisions(onnx_path)
    if not collisions:
        return ""
    sizes = [f"{h}x{w}" for h, w in suggest_sizes(onnx_path, step)]
    return (
        f"at {mosaic_hw[0]}x{mosaic_hw[1]}, {len(collisions)} activations have as many channels as rows "
        f"or columns (e.g. {collisions[0]}), which can make onnx2tf mistake the layout; "
        f"try --input-size {' or '.join(sizes) if sizes else 'a non-square size'}"
    )
