"""Compute cost of the ISP models, measured on the graph: FLOPs per megapixel of RAW.

    >>> from edge_isp.models.flops import model_flops
    >>> c = model_flops("pynet-v2-mobile-slim-plus")
    >>> c.gflop_per_raw_mp, c.mosaic_hw, c.by_op
    (42.7, (1088, 1920), {'convolution': ...})

What is counted
    One forward pass is run under ``torch.utils.flop_counter.FlopCounterMode``, which
    sees every convolution (plain, grouped, depthwise, transposed), linear layer and
    matrix product at the aten level, however the model calls it. FLOPs = 2 x
    multiply-accumulates (one multiply and one add per MAC), the convention of that
    counter and of most papers' "GFLOPs". Bias adds, normalisation, activations,
    bilinear resizing, pooling and other elementwise ops are *not* counted (they are a
    few FLOPs per activation, not per weight), so PyNET-V2 Mobile and its NoNorm variant
    count the same.

Per megapixel of what
    Of the RAW mosaic (the sensor's pixels; the packed 4-channel input has a quarter as
    many). Every registry model at its reference options outputs RGB at the mosaic's
    resolution (``output_scale`` 1.0), so this is also per megapixel of the output photo.

Cheap and size-independent
    The model is built and run on PyTorch's ``meta`` device: shapes only, no weights
    allocated, no arithmetic, so the probe can be deployment-sized (the MAI 2021 shape, a
    1088x1920 mosaic, aligned to the model's stride) and all nine registry models take
    about a second in all. These nets are fully convolutional, so FLOPs grow with the
    pixel count; the only size-dependent parts are global pooling and the stride-3
    valid convs of channel attention (rounding at the borders), below 0.1% at this
    probe size (tests check two sizes).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from edge_isp.errors import InputError
from edge_isp.models._registry import model_info

# The MAI 2021 deployment mosaic (packed 544x960), rounded to each model's alignment.
PROBE_MOSAIC_HW: tuple[int, int] = (1088, 1920)
FLOPS_PER_MAC = 2


@dataclass(frozen=True)
class FlopCount:
    """FLOPs (2 x MACs) of one forward pass of ``model`` on a ``mosaic_hw`` RAW mosaic."""

    model: str
    options: dict[str, Any]
    mosaic_hw: tuple[int, int]
    flops: int
    by_op: dict[str, int] = field(default_factory=dict)  # aten op name -> FLOPs

    @property
    def macs(self) -> int:
        return self.flops // FLOPS_PER_MAC

    @property
    def raw_megapixels(self) -> float:
        return self.mosaic_hw[0] * self.mosaic_hw[1] / 1e6

    @property
    def gflop_per_raw_mp(self) -> float:
        """GFLOP per megapixel of the RAW mosaic (= of the output photo at output_scale 1)."""
        return self.flops / 1e9 / self.raw_megapixels

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "options": dict(self.options), "mosaic_hw": list(self.mosaic_hw),
                "flops": self.flops, "macs": self.macs, "gflop_per_raw_mp": self.gflop_per_raw_mp,
                "by_op": dict(self.by_op)}


def count_flops(model: Any, input_shape: tuple[int, ...]) -> tuple[int, dict[str, int]]:
    """FLOPs (2 x MACs) of one forward pass of ``model`` (an ``nn.Module``) on ``input_shape``.

    Returns (total, per aten op). The input is made on the model's device: a model built
    on ``meta`` is counted without any arithmetic. Works for any module, not only the
    registry's.
    """
    from edge_isp._deps import require

    torch = require("torch", "counting FLOPs")
    from torch.utils.flop_counter import FlopCounterMode

    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.zeros(input_shape, device=device) if device.type != "meta" else torch.empty(input_shape, device=device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    by_op: dict[str, int] = {}
    for op, n in counter.get_flop_counts().get("Global", {}).items():
        key = str(getattr(op, "__name__", op)).split(".")[0]
        by_op[key] = by_op.get(key, 0) + int(n)
    return int(counter.get_total_flops()), dict(sorted(by_op.items()))


def probe_size(name: str, target: tuple[int, int] = PROBE_MOSAIC_HW) -> tuple[int, int]:
    """``target`` (a RAW mosaic H, W) rounded down to what model ``name`` accepts."""
    info = model_info(name)
    step = 2 * max(1, info.input_multiple)
    smallest = 2 * info.min_packed_size
    smallest += -smallest % step
    return tuple(max(smallest, t // step * step) for t in target)  # type: ignore[return-value]


def model_flops(name: str, mosaic_hw: tuple[int, int] | None = None, **options: Any) -> FlopCount:
    """FLOPs of registry model ``name`` on a ``mosaic_hw`` RAW mosaic (default: the probe size).

    ``options`` are the model's ``-O`` options (default: the registry defaults). The
    result is cached per (name, size, options) for the life of the process.
    """
    info = model_info(name)
    hw = probe_size(name) if mosaic_hw is None else (int(mosaic_hw[0]), int(mosaic_hw[1]))
    if hw[0] % 2 or hw[1] % 2 or hw[0] <= 0 or hw[1] <= 0:
        raise InputError(f"mosaic size {hw[0]}x{hw[1]} must be positive and even (2x2 Bayer cells)")
    opts = {**info.default_options, **options}
    try:
        key = tuple(sorted(opts.items()))
        hash(key)
    except TypeError:  # an unhashable option value: count without the cache
        return _count(name, hw, opts)
    return _cached(name, hw, key)


@functools.lru_cache(maxsize=128)
def _cached(name: str, hw: tuple[int, int], key: tuple[tuple[str, Any], ...]) -> FlopCount:
    return _count(name, hw, dict(key))


def _count(name: str, hw: tuple[int, int], opts: dict[str, Any]) -> FlopCount:
    from edge_isp._deps import require
    from edge_isp.models._registry import check_options

    torch = require("torch", "counting FLOPs")
    info = model_info(name)
    check_options(name, opts)
    with torch.device("meta"):
        net = info.builder(**opts).eval()
    try:
        flops, by_op = count_flops(net, (1, 4, hw[0] // 2, hw[1] // 2))
    except (RuntimeError, ValueError) as exc:  # a size the graph refuses (too small, misaligned)
        raise InputError(f"model {name} cannot run on a {hw[0]}x{hw[1]} mosaic: {str(exc).splitlines()[0]}") from exc
    return FlopCount(model=name, options=opts, mosaic_hw=hw, flops=flops, by_op=by_op)


def gflop_per_raw_mp(name: str, **options: Any) -> float:
    """GFLOP (2 x MACs) per megapixel of RAW mosaic of registry model ``name``."""
    return model_flops(name, **options).gflop_per_raw_mp


__all__ = ["FLOPS_PER_MAC", "PROBE_MOSAIC_HW", "FlopCount", "count_flops", "gflop_per_raw_mp", "model_flops",
           "probe_size"]
