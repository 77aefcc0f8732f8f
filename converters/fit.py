"""Conversion-time choices that make an ISP model fit an accelerator (explicit, recorded).

Each choice is named, off by default, recorded in the manifest by the caller, and its
numeric cost is measured by the usual verification against PyTorch. Choices:

``pixel_shuffle="dcr"`` (exact)
    PyTorch's ``PixelShuffle`` exports as ONNX ``DepthToSpace`` in CRD order, which onnx2tf
    lowers to RESHAPE(6-D) + TRANSPOSE(6-D) + RESHAPE. Rank-6 tensors are refused by the
    GPU delegate and NNAPI, and the 6-D TRANSPOSE forces TRANSPOSE op version 6 on every
    TRANSPOSE of the model (above what NNAPI (2) and the GPU delegate (4) accept). DCR order
    is the same op up to a permutation of the input channels, and onnx2tf maps DCR to
    ``tf.nn.depth_to_space`` -> TFLite DEPTH_TO_SPACE (NNAPI from API 27, GPU). So the
    producing Conv's output channels (and any per-channel PRelu slopes in between) are
    permuted and the node switched to DCR: same function, different graph.

``pixel_shuffle="deconv"`` (exact)
    The DepthToSpace becomes a ConvTranspose with kernel = stride = r and one-hot weights
    (input channel k of output channel c at sub-pixel (i, j) gets weight 1, all else 0):
    each output pixel is exactly one input value, so the function is unchanged. TFLite
    lowers it to TRANSPOSE_CONV, which Arm Ethos-U runs on the NPU where it has neither
    DEPTH_TO_SPACE nor (U55/U65) a 6-D TRANSPOSE. In INT8 the one-hot weights quantise to
    exactly 127 * scale, so only the usual output requantisation remains.

``drop_noop_pads=True`` (exact)
    A 1x1 conv with ``padding_mode="reflect"`` exports a Pad with all-zero pads; TFLite keeps
    it as a MIRROR_PAD (NNAPI feature level 7 only). Removing such Pads changes nothing.

``split_as_slice=True`` (exact)
    ``torch.split`` exports as ONNX Split, which TFLite keeps as SPLIT: NNAPI takes int8
    SPLIT only from API 30 (float32/uint8/int32 below). Slices become STRIDED_SLICE, which
    NNAPI takes quantized from API 28.

``reflect_pad_as_slices=True`` (exact)
    A reflect Pad of k pixels (the published PyNET models pad 1-2 px before every conv)
    becomes, per spatial axis, k one-row slices in mirrored order concatenated around the
    tensor: TFLite SLICE/STRIDED_SLICE + CONCATENATION (NNAPI from API 27/28) instead of
    MIRROR_PAD (NNAPI feature level 7 only). The same values, copied, not computed.

``resize_as_depth_to_space=True`` (exact up to float rounding)
    A 2x bilinear upsampling with half-pixel centres (PyTorch ``align_corners=False``)
    is, per axis, out[2i] = 0.75 x[i] + 0.25 x[i-1] and out[2i+1] = 0.75 x[i] + 0.25 x[i+1]
    (edges clamped). The four phase images are built with slices, MUL and ADD, stacked on
    the channel axis and interleaved by DEPTH_TO_SPACE: ops NNAPI takes from API 27, where
    RESIZE_BILINEAR with half_pixel_centers needs API 30. Exact in ONNX Runtime and
    OpenVINO; onnx2tf 1.29.24 mis-infers the layout of the rewritten graph (a conv after
    it gets the wrong shape), so TFLite targets refuse it for now (``require_supported``).

``rsqrt_in_float=True`` (INT8 only; at least as exact)
    InstanceNorm's 1/sqrt(variance + eps) is a TFLite RSQRT, which NNAPI takes quantized only
    from feature level 7 (float32 from API 29). Leaving RSQRT out of the INT8 quantisation
    computes it in float32 between DEQUANTIZE and QUANTIZE (API 30 takes int8 for both). It
    acts on the per-channel variances (1 x C values), so the float island costs nothing and
    the quantisation error of that step disappears. Not a graph rewrite: both TFLite routes'
    quantisers are told to skip the op (onnx2tf: TF's MLIR denylist; litert-torch:
    ai-edge-quantizer's no_quantize).

``resize_as_nearest_conv=True`` (exact up to float rounding)
    The same 2x half-pixel bilinear upsampling as nearest-neighbour 2x followed by a fixed
    3x3 depthwise filter ([1, 2, 1] x [1, 2, 1] / 16) on the edge-replicated result: on the
    nearest image u (u[2i] = u[2i+1] = x[i]) the filter gives 0.25 x[i-1] + 0.75 x[i] at even
    and 0.75 x[i] + 0.25 x[i+1] at odd positions, and replicating u's edge clamps as PyTorch
    does. TFLite RESIZE_NEAREST_NEIGHBOR without half-pixel centres (NNAPI API 29),
    slices + CONCATENATION (API 27/28) and DEPTHWISE_CONV_2D (API 27): plain ops onnx2tf
    lowers without layout guesses, so this is the form TFLite targets take below API 30
    (the default of nnapi-fp16, whose default level is API 29). The filter weights 1/16,
    1/8, 1/4 are exact in float16.

``resize_align_corners_as_gather=True`` (exact up to float rounding)
    A bilinear resize with ``align_corners=True`` (the PyNET / PyNET-CA port's x2 upsamplers)
    has weights that change along the image (output row j reads rows floor(s) and floor(s)+1
    of the input, s = j (n-1)/(m-1)), so no fixed filter reproduces it. Per axis it is two
    GATHERs of the neighbouring rows with constant indices, each scaled by a constant per-row
    weight (MUL with broadcasting) and added: TFLite GATHER (NNAPI API 29), MUL and ADD
    (API 27), where RESIZE_BILINEAR with align_corners needs API 30. The default of
    nnapi-fp16 (API 29); any scale, not only 2x.

``padding="zero"`` (changes the function; a model option, not an ONNX rewrite)
    Reflect padding becomes MIRROR_PAD (NNAPI feature level 7 only); zero padding becomes
    PAD (API 28+) or folds into the conv. pynet-v2-mobile has it as a model option
    (``-O padding=zero``); with trained reflect-pad weights it shifts border pixels, which
    verification measures.

``pynet-v2-mobile-nonorm`` (a different model)
    InstanceNorm lowers to MEAN / SQUARED_DIFFERENCE / RSQRT; quantized RSQRT needs NNAPI
    feature level 7 and INT8 InstanceNorm loses accuracy. The NoNorm variant has no such ops
    but needs its own trained weights.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_isp._deps import require
from edge_isp.converters.fit_nodes import BILINEAR_ON_NEAREST as BILINEAR_ON_NEAREST
from edge_isp.converters.fit_nodes import (
    align_corners_resize_nodes,
    reflect_pad_nodes,
    resize2x_nearest_nodes,
    resize2x_nodes,
    rewrite_nodes,
)
from edge_isp.errors import ConversionError, InputError

# Per-channel ops that may sit between the Conv and the DepthToSpace.
_CHANNELWISE = {"PRelu", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Clip", "Identity"}
PIXEL_SHUFFLE_FORMS = ("crd", "dcr", "deconv")


@dataclass(frozen=True)
class FitOptions:
    # "crd" (as exported) | "dcr" (DEPTH_TO_SPACE) | "deconv" (one-hot TRANSPOSE_CONV)
    pixel_shuffle: str = "crd"
    drop_noop_pads: bool = False
    split_as_slice: bool = False
    reflect_pad_as_slices: bool = False
    resize_as_depth_to_space: bool = False
    rsqrt_in_float: bool = False
    resize_as_nearest_conv: bool = False
    resize_align_corners_as_gather: bool = False

    def __post_init__(self) -> None:
        if self.pixel_shuffle not in PIXEL_SHUFFLE_FORMS:
            raise InputError(f"fit option pixel_shuffle={self.pixel_shuffle!r} must be one of "
                             f"{', '.join(PIXEL_SHUFFLE_FORMS)}")

    @property
    def active(self) -> bool:
        return self != FitOptions()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def parse(cls, pairs: dict[str, Any]) -> FitOptions:
        """From ``{"pixel_shuffle": "dcr", "drop_noop_pads": true}`` (CLI ``--fit key=value``)."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in pairs:
            if key not in known:
                raise InputError(f"unknown fit option {key!r}; known: {', '.join(sorted(known))}")
        for key in ("drop_noop_pads", "split_as_slice", "reflect_pad_as_slices", "resize_as_depth_to_space",
                    "rsqrt_in_float", "resize_as_nearest_conv", "resize_align_corners_as_gather"):
            if key in pairs and not isinstance(pairs[key], bool):
                raise InputError(f"fit option {key} must be true or false")
        return cls(**pairs)


def _perm_crd_to_dcr(channels: int, r: int) -> Any:
    """perm[k_dcr] = k_crd for C = channels / r^2: k_crd = c*r*r + i*r + j, k_dcr = (i*r + j)*C + c."""
    import numpy as np

    c_out = channels // (r * r)
    perm = np.empty(channels, dtype=np.int64)
    for c in range(c_out):
        for ij in range(r * r):
            perm[ij * c_out + c] = c * r * r + ij
    return perm


def rewrite_onnx(path: Path, options: FitOptions) -> dict[str, int]:
    """Apply the ONNX-level fit options to ``path`` in place; returns what was changed."""
    onnx = require("onnx", "fit options")
    import numpy as np
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    graph = proto.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    graph_outputs = {o.name for o in graph.output}
    changed = {"depth_to_space_dcr": 0, "depth_to_space_deconv": 0, "noop_pads_removed": 0, "splits_as_slices": 0,
               "reflect_pads_as_slices": 0, "resizes_as_depth_to_space": 0, "resizes_as_nearest_conv": 0}

    def single_use(name: str) -> bool:
        return len(consumers.get(name, [])) == 1 and name not in graph_outputs

    def set_init(name: str, array: Any) -> None:
        new = numpy_helper.from_array(array.astype(numpy_helper.to_array(inits[name]).dtype), name)
        inits[name].CopyFrom(new)

    if options.pixel_shuffle == "dcr":
        gathers: dict[str, Any] = {}   # DepthToSpace output -> the Gather to put before it
        channels: dict[str, int] | None = None     # inferred once, when a Gather is needed
        for node in list(graph.node):
            if node.op_type != "DepthToSpace":
                continue
            attrs = {a.name: a for a in node.attribute}
            mode = attrs["mode"].s.decode() if "mode" in attrs else "DCR"
            if mode != "CRD":
                continue
            r = attrs["blocksize"].i
            chain, x = [], node.input[0]
            while x in producer and producer[x].op_type in _CHANNELWISE and single_use(x):
                chain.append(producer[x])
                x = producer[x].input[0]
            conv = producer.get(x)
            group = next((a.i for a in conv.attribute if a.name == "group"), 1) if conv is not None else 0
            if conv is None or conv.op_type != "Conv" or not single_use(x) or group != 1 \
                    or conv.input[1] not in inits:
                # No plain Conv to fold the permutation into (e.g. an Add feeds it): permute the
                # channels with an explicit Gather instead (TFLite GATHER; still exact).
                channels = channel_counts(proto) if channels is None else channels
                gathers[node.output[0]] = _permute_with_gather(graph, node, r, channels.get(node.input[0], 0))
                changed["depth_to_space_dcr"] += 1
                continue
            w = numpy_helper.to_array(inits[conv.input[1]])
            perm = _perm_crd_to_dcr(w.shape[0], r)
            set_init(conv.input[1], w[perm])
            if len(conv.input) > 2 and conv.input[2]:
                set_init(conv.input[2], numpy_helper.to_array(inits[conv.input[2]])[perm])
            for op in chain:
                for name in op.input[1:]:
                    if name in inits:
                        a = numpy_helper.to_array(inits[name])
                        if a.size == w.shape[0]:
                            set_init(name, a.reshape(-1)[perm].reshape(a.shape))
                        elif a.size != 1:
                            raise ConversionError(f"fit pixel_shuffle=dcr: cannot permute {op.op_type} parameter {name}")
            if "mode" in attrs:
                attrs["mode"].s = b"DCR"
            else:
                node.attribute.append(onnx.helper.make_attribute("mode", "DCR"))
            changed["depth_to_space_dcr"] += 1
        if gathers:
            nodes = [n for node in graph.node for n in ((gathers[node.output[0]], node) if node.output[0] in gathers else (node,))]
            del graph.node[:]
            graph.node.extend(nodes)

    if options.pixel_shuffle == "deconv":
        changed["depth_to_space_deconv"] = _depth_to_space_as_deconv(proto)

    if options.drop_noop_pads:
        # The rewrites above may have rebuilt the node list: look the consumers up again.
        consumers = {}
        for n in graph.node:
            for i in n.input:
                consumers.setdefault(i, []).append(n)
        keep = []
        for node in graph.node:
            pads = node.input[1] if node.op_type == "Pad" and len(node.input) > 1 else None
            if pads in inits and not np.any(numpy_helper.to_array(inits[pads])) \
                    and node.output[0] not in graph_outputs:
                src, dst = node.input[0], node.output[0]
                for c in consumers.get(dst, []):
                    for k, name in enumerate(c.input):
                        if name == dst:
                            c.input[k] = src
                changed["noop_pads_removed"] += 1
                continue
            keep.append(node)
        del graph.node[:]
        graph.node.extend(keep)
        used = {i for n in graph.node for i in n.input}
        unused = [i for i in graph.initializer if i.name not in used]
        for init in unused:
            graph.initializer.remove(init)

    if options.split_as_slice:
        _splits_to_slices(proto, changed)

    if options.reflect_pad_as_slices:
        changed["reflect_pads_as_slices"] = rewrite_nodes(proto, reflect_pad_nodes)

    if options.resize_as_depth_to_space:
        changed["resizes_as_depth_to_space"] = rewrite_nodes(proto, resize2x_nodes)
    if options.resize_as_nearest_conv:
        changed["resizes_as_nearest_conv"] = rewrite_nodes(proto, resize2x_nearest_nodes)
    if options.resize_align_corners_as_gather:
        changed["align_corners_resizes_as_gather"] = rewrite_nodes(proto, align_corners_resize_nodes)

    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:  # noqa: BLE001
        raise ConversionError(f"fit options produced an invalid ONNX graph: {exc}") from exc
    onnx.save(proto, str(path))
    return changed


def channel_counts(proto: Any) -> dict[str, int]:
    """Static channel count (dim 1) of every 4-D tensor of the graph, from one shape inference."""
    onnx = require("onnx", "fit options")

    inferred = onnx.shape_inference.infer_shapes(proto).graph
    return {v.name: int(v.type.tensor_type.shape.dim[1].dim_value)
            for v in [*inferred.value_info, *inferred.input, *inferred.output]
            if len(v.type.tensor_type.shape.dim) == 4}


def _permute_with_gather(graph: Any, node: Any, r: int, channels: int) -> Any:
    """CRD DepthToSpace -> Gather(channels in DCR order) + DCR DepthToSpace; returns the Gather
    node, which the caller puts in front of ``node``."""
    from onnx import helper, numpy_helper

    if not channels or channels % (r * r):
        raise ConversionError(f"fit pixel_shuffle=dcr: the channel count of DepthToSpace {node.name!r}'s input is "
                              "not static; convert with --fit pixel_shuffle=crd")
    indices = f"{node.input[0]}__fit_dcr_perm"
    permuted = f"{node.input[0]}__fit_dcr"
    graph.initializer.append(numpy_helper.from_array(_perm_crd_to_dcr(channels, r), indices))
    gather = helper.make_node("Gather", [node.input[0], indices], [permuted], axis=1, name=f"{node.name}__fit_gather")
    node.input[0] = permuted
    attrs = {a.name: a for a in node.attribute}
    if "mode" in attrs:
        attrs["mode"].s = b"DCR"
    else:
        node.attribute.append(helper.make_attribute("mode", "DCR"))
    return gather


def one_hot_deconv_weights(channels_in: int, r: int, mode: str) -> Any:
    """ConvTranspose weights (C*r*r, C, r, r) that make it a DepthToSpace of ``mode`` (CRD/DCR)."""
    import numpy as np

    c_out = channels_in // (r * r)
    w = np.zeros((channels_in, c_out, r, r), np.float32)
    for c in range(c_out):
        for i in range(r):
            for j in range(r):
                k = c * r * r + i * r + j if mode == "CRD" else (i * r + j) * c_out + c
                w[k, c, i, j] = 1.0
    return w


def _depth_to_space_as_deconv(proto: Any) -> int:
    """Replace every DepthToSpace by an exact one-hot ConvTranspose; returns how many."""
    require("onnx", "fit options")
    from onnx import helper, numpy_helper

    graph = proto.graph
    channels = channel_counts(proto)
    nodes, count = [], 0
    for node in graph.node:
        if node.op_type != "DepthToSpace":
            nodes.append(node)
            continue
        attrs = {a.name: a for a in node.attribute}
        r = attrs["blocksize"].i
        mode = attrs["mode"].s.decode() if "mode" in attrs else "DCR"
        c_in = channels.get(node.input[0], 0)
        if not c_in or c_in % (r * r):
            raise ConversionError(f"fit pixel_shuffle=deconv: the channel count of DepthToSpace {node.name!r}'s "
                                  "input is not static; convert without this fit option")
        weight = f"{node.output[0]}__fit_d2s_weight"
        graph.initializer.append(numpy_helper.from_array(one_hot_deconv_weights(c_in, r, mode), weight))
        nodes.append(helper.make_node("ConvTranspose", [node.input[0], weight], list(node.output),
                                      name=f"{node.name}__deconv", kernel_shape=[r, r], strides=[r, r]))
        count += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return count


# Fits the TFLite route (onnx2tf) cannot take yet, and why.
TFLITE_UNSUPPORTED = {"resize_as_depth_to_space": "onnx2tf 1.29.24 mis-infers the layout of the rewritten graph"}


def require_supported(options: FitOptions, fmt: str) -> None:
    """Refuse, before any work, a fit the target's converter cannot take."""
    from edge_isp.converters.artifact_formats import get_format

    if get_format(fmt).tflite_based:
        for key, why in TFLITE_UNSUPPORTED.items():
            if getattr(options, key):
                raise InputError(f"fit option {key}=true does not reach TFLite yet ({why}); use it with onnx, "
                                 f"openvino or rknn targets, or convert for NNAPI API 30+ without it")


def _splits_to_slices(proto: Any, changed: dict[str, int]) -> None:
    """Replace each Split by one Slice per output (static shapes only)."""
    onnx = require("onnx", "fit options")
    import numpy as np
    from onnx import helper, numpy_helper

    graph = proto.graph
    inferred = onnx.shape_inference.infer_shapes(proto).graph
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in [*inferred.value_info, *inferred.input]}
    inits = {i.name: i for i in graph.initializer}
    nodes = []
    for node in graph.node:
        if node.op_type != "Split":
            nodes.append(node)
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if len(node.input) > 1 and node.input[1]:
            if node.input[1] not in inits:
                raise ConversionError(f"fit split_as_slice: Split {node.name!r} has runtime split sizes")
            sizes = [int(v) for v in numpy_helper.to_array(inits[node.input[1]])]
        else:
            shape = dims.get(node.input[0])
            if not shape or not shape[axis]:
                raise ConversionError(f"fit split_as_slice: the shape of Split {node.name!r}'s input is not static")
            n = len(node.output)
            if shape[axis] % n:
                raise ConversionError(f"fit split_as_slice: uneven Split {node.name!r}")
            sizes = [shape[axis] // n] * n
        start = 0
        for k, (out, size) in enumerate(zip(node.output, sizes)):
            names = [f"{out}__fit_start", f"{out}__fit_end", f"{out}__fit_axis"]
            for name, value in zip(names, ([start], [start + size], [axis])):
                graph.initializer.append(numpy_helper.from_array(np.array(value, np.int64), name))
            nodes.append(helper.make_node("Slice", [node.input[0], *names], [out], name=f"{node.name}__slice{k}"))
            start += size
        changed["splits_as_slices"] += 1
    del graph.node[:]
    graph.node.extend(nodes)


def fitted_export(options: FitOptions) -> Callable[..., Any]:
    """An ``export_onnx`` that applies the ONNX-level fit options right after exporting."""
    from edge_isp.converters.onnx_export import export_onnx

    def export(model: Any, input_shape: Any, path: Path, **kwargs: Any) -> Any:
        exported = export_onnx(model, input_shape, path, **kwargs)
        if not options.active:
            return exported
        rewrite_onnx(Path(path), options)
        onnx = require("onnx", "fit options")
        ops: dict[str, int] = {}
        for node in onnx.load(str(path)).graph.node:
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
        return dataclasses.replace(exported, op_types=dict(sorted(ops.items())))

    return export
