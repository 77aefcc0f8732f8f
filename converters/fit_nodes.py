"""Node-list rewrites of converters/fit.py: one ONNX node replaced by an exact equivalent made of
ops every target level takes (reflect Pad -> Slices + Concat, half-pixel 2x bilinear Resize ->
DepthToSpace or nearest Resize + a fixed depthwise filter)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge_isp._deps import require

class NodeBuilder:
    """Makes uniquely named nodes and constants for one rewritten node."""

    def __init__(self, graph: Any, prefix: str) -> None:
        self.graph, self.prefix, self.nodes, self.n = graph, prefix, [], 0

    def name(self, what: str) -> str:
        self.n += 1
        return f"{self.prefix}__{what}{self.n}"

    def const(self, value: Any, dtype: Any) -> str:
        import numpy as np
        from onnx import numpy_helper

        name = self.name("c")
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        out = output or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=self.name(op_type), **attrs))
        return out

    def slice(self, x: str, axis: int, start: int, end: int) -> str:
        import numpy as np

        return self.op("Slice", [x, self.const([start], np.int64), self.const([end], np.int64),
                                 self.const([axis], np.int64)])


def rewrite_nodes(proto: Any, rewrite: Callable[[Any, Any, dict[str, list[int]], dict[str, Any]], list[Any] | None]) -> int:
    """Replace nodes for which ``rewrite(node, graph, shapes, inits)`` returns a node list."""
    onnx = require("onnx", "fit options")
    from onnx import numpy_helper

    graph = proto.graph
    inferred = onnx.shape_inference.infer_shapes(proto).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*inferred.value_info, *inferred.input, *inferred.output]}
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    nodes, count = [], 0
    for node in list(graph.node):
        replacement = rewrite(node, graph, shapes, inits)
        if replacement is None:
            nodes.append(node)
        else:
            nodes.extend(replacement)
            count += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return count


def _attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            value = helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def reflect_pad_nodes(node: Any, graph: Any, shapes: dict[str, list[int]], inits: dict[str, Any]) -> list[Any] | None:
    """Pad(mode=reflect) on H/W -> mirrored one-row slices + Concat, per axis."""
    if node.op_type != "Pad" or _attr(node, "mode", "constant") != "reflect" or len(node.input) < 2:
        return None
    pads, shape = inits.get(node.input[1]), shapes.get(node.input[0])
    if pads is None or not shape or len(shape) != 4 or (len(node.input) > 3 and node.input[3]):
        return None
    pads = [int(v) for v in pads]
    if any(pads[a] or pads[a + 4] for a in (0, 1)):
        return None                                        # only spatial padding is rewritten
    axes = [a for a in (2, 3) if pads[a] or pads[a + 4]]
    if any(not shape[a] or pads[a] >= shape[a] or pads[a + 4] >= shape[a] for a in axes):
        return None
    b = NodeBuilder(graph, node.name or node.output[0])
    x = node.input[0]
    for k, axis in enumerate(axes):
        before, after, n = pads[axis], pads[axis + 4], shape[axis]
        parts = [b.slice(x, axis, i, i + 1) for i in range(before, 0, -1)] + [x]
        parts += [b.slice(x, axis, n - 2 - i, n - 1 - i) for i in range(after)]
        x = b.op("Concat", parts, node.output[0] if k == len(axes) - 1 else None, axis=axis)
    return b.nodes if axes else None


def resize2x_nodes(node: Any, graph: Any, shapes: dict[str, list[int]], inits: dict[str, Any]) -> list[Any] | None:
    """Resize(linear, half_pixel, 2x on H and W) -> phase images + Concat + DepthToSpace(DCR)."""
    import numpy as np

    if not _is_half_pixel_resize2x(node, shapes):
        return None
    shape = shapes[node.input[0]]
    b = NodeBuilder(graph, node.name or node.output[0])
    quarter, three_q = b.const(0.25, np.float32), b.const(0.75, np.float32)

    def phases(x: str, axis: int, n: int) -> tuple[str, str]:
        prev = b.op("Concat", [b.slice(x, axis, 0, 1), b.slice(x, axis, 0, n - 1)], axis=axis)
        nxt = b.op("Concat", [b.slice(x, axis, 1, n), b.slice(x, axis, n - 1, n)], axis=axis)
        centre = b.op("Mul", [x, three_q])
        even = b.op("Add", [centre, b.op("Mul", [prev, quarter])])
        odd = b.op("Add", [centre, b.op("Mul", [nxt, quarter])])
        return even, odd

    h_even, h_odd = phases(node.input[0], 2, shape[2])
    ee, eo = phases(h_even, 3, shape[3])
    oe, oo = phases(h_odd, 3, shape[3])
    # DepthToSpace DCR: output[c, 2i+p, 2j+q] = input[(2p+q)*C + c, i, j]
    stacked = b.op("Concat", [ee, eo, oe, oo], axis=1)
    b.op("DepthToSpace", [stacked], node.output[0], blocksize=2, mode="DCR")
    return b.nodes


def _is_half_pixel_resize2x(node: Any, shapes: dict[str, list[int]]) -> bool:
    if node.op_type != "Resize" or _attr(node, "mode", "nearest") != "linear":
        return False
    if _attr(node, "coordinate_transformation_mode", "half_pixel") not in ("half_pixel", "pytorch_half_pixel"):
        return False
    shape, out_shape = shapes.get(node.input[0]), shapes.get(node.output[0])
    return bool(shape and len(shape) == 4 and all(shape) and min(shape[2:]) >= 2
                and out_shape == [shape[0], shape[1], 2 * shape[2], 2 * shape[3]])


# Half-pixel bilinear 2x on the nearest-neighbour 2x image: [1, 2, 1] / 4 per axis.
BILINEAR_ON_NEAREST = (0.25, 0.5, 0.25)


def resize2x_nearest_nodes(node: Any, graph: Any, shapes: dict[str, list[int]], inits: dict[str, Any]) -> list[Any] | None:
    """Resize(linear, half_pixel, 2x) -> Resize(nearest, asymmetric, floor, 2x) + edge rows/columns
    replicated (slices + Concat) + a fixed 3x3 depthwise Conv."""
    import numpy as np

    if not _is_half_pixel_resize2x(node, shapes):
        return None
    n, c, h, w = shapes[node.input[0]]
    b = NodeBuilder(graph, node.name or node.output[0])
    up = b.op("Resize", [node.input[0], "", b.const([1.0, 1.0, 2.0, 2.0], np.float32)],
              mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    x = up
    for axis, size in ((2, 2 * h), (3, 2 * w)):
        x = b.op("Concat", [b.slice(x, axis, 0, 1), x, b.slice(x, axis, size - 1, size)], axis=axis)
    taps = np.asarray(BILINEAR_ON_NEAREST, np.float32)
    kernel = np.broadcast_to(np.outer(taps, taps), (c, 1, 3, 3))
    b.op("Conv", [x, b.const(kernel, np.float32)], node.output[0], group=c, kernel_shape=[3, 3])
    return b.nodes


def align_corners_taps(n: int, m: int) -> tuple[Any, Any, Any, Any]:
    """Per output position j of an align-corners linear resize of n samples to m: the two source
    indices (int32) and their weights (float32), computed as PyTorch does (float32 source
    position j * (n-1)/(m-1); the right neighbour clamped at the last sample)."""
    import numpy as np

    scale = np.float32((n - 1) / (m - 1)) if m > 1 else np.float32(0.0)
    src = np.arange(m, dtype=np.float32) * scale
    i0 = np.minimum(src.astype(np.int32), n - 1)
    i1 = np.minimum(i0 + 1, n - 1).astype(np.int32)
    w1 = (src - i0.astype(np.float32)).astype(np.float32)
    return i0, i1, (np.float32(1.0) - w1).astype(np.float32), w1


def align_corners_resize_nodes(node: Any, graph: Any, shapes: dict[str, list[int]],
                               inits: dict[str, Any]) -> list[Any] | None:
    """Resize(linear, align_corners) on H and W -> per axis two Gathers of the neighbouring rows
    (constant indices) weighted by constant per-row factors: Gather, Mul, Add only."""
    import numpy as np

    if node.op_type != "Resize" or _attr(node, "mode", "nearest") != "linear" \
            or _attr(node, "coordinate_transformation_mode", "half_pixel") != "align_corners":
        return None
    shape, out_shape = shapes.get(node.input[0]), shapes.get(node.output[0])
    if not (shape and out_shape and len(shape) == 4 and all(shape) and all(out_shape)
            and out_shape[:2] == shape[:2]):
        return None
    axes = [axis for axis in (2, 3) if shape[axis] != out_shape[axis]]
    if not axes:
        return None
    b = NodeBuilder(graph, node.name or node.output[0])
    x = node.input[0]
    for axis in axes:
        i0, i1, w0, w1 = align_corners_taps(shape[axis], out_shape[axis])
        bshape = [1, 1, 1, 1]
        bshape[axis] = out_shape[axis]
        g0 = b.op("Gather", [x, b.const(i0, np.int32)], axis=axis)
        g1 = b.op("Gather", [x, b.const(i1, np.int32)], axis=axis)
        x = b.op("Add", [b.op("Mul", [g0, b.const(w0.reshape(bshape), np.float32)]),
                         b.op("Mul", [g1, b.const(w1.reshape(bshape), np.float32)])],
                 node.output[0] if axis == axes[-1] else None)
    return b.nodes


__all__ = ["BILINEAR_ON_NEAREST", "NodeBuilder", "align_corners_resize_nodes", "align_corners_taps",
           "reflect_pad_nodes", "resize2x_nearest_nodes", "resize2x_nodes", "rewrite_nodes"]
