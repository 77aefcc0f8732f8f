"""Exact tiling for models that read the whole image (channel attention, instance norm).

A tile of a global-context model computes its *own* global statistics: channel attention
pools over the tile, InstanceNorm normalises by the tile's mean and variance, so tiles
disagree and seams show. Here every op that reads the whole image is a marked module
(:class:`GlobalPool`, :class:`GlobalInstanceNorm2d`), and a photo runs in passes:

1. **statistics**, one pass per global op in execution order: the photo is cut into
   non-overlapping *owned* blocks aligned to every stride of the graph; each block runs
   with a halo (its receptive field) and with the statistics found so far injected, and
   adds the op's input summed over the positions it owns. Owned blocks partition the
   frame, so the sums are the full frame's, exactly; the forward pass stops at the op.
2. **tiles**: every block runs with all statistics injected and a halo as wide as the
   output's receptive field; the owned part of its output is kept. Each pixel is then
   computed exactly as the untiled model computes it.

Strides, receptive fields and the pass order are measured on the model (probe runs and
autograd), not written down per architecture. Without an active context the marked
modules compute as plain PyTorch does (and export to ONNX the same).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from edge_isp.errors import InputError
from edge_isp.models import global_plan_cache as plan_cache

# Owned block, packed px (rounded to the graph's alignment). Measured on a 12 MP photo with
# the default model on 2 cores: 288 -> 22 s, 1.18 GB peak RSS; 360 -> 22 s, 1.65 GB;
# 512 -> 25 s, 1.92 GB (halos are a fixed cost per block, activations grow with its area).
DEFAULT_BLOCK = 288

# --------------------------------------------------------------------- marked modules

_ACTIVE: list[_Context] = []


class _Stop(Exception):
    """Ends a forward pass once the op being measured has been reached."""


class GlobalPool(nn.Module):
    """Mean over height and width: the global read of a channel attention."""

    def __init__(self, keepdim: bool = True) -> None:
        super().__init__()
        self.keepdim = keepdim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _ACTIVE:
            y = _ACTIVE[-1].pool(self, x)
            return y if self.keepdim else y[:, :, 0, 0]
        return x.mean(dim=(2, 3), keepdim=self.keepdim)


class GlobalInstanceNorm2d(nn.InstanceNorm2d):
    """InstanceNorm2d whose statistics can come from the whole photo (same parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _ACTIVE:
            return super().forward(x)
        mean, inv_std = _ACTIVE[-1].norm(self, x)
        y = (x - mean) * inv_std
        if self.affine:
            # "- (-bias)", not "+ bias": the same bits (IEEE), but onnx2tf 1.29 lays an Add of a
            # per-channel constant out as NCHW when a PReLU follows (two TRANSPOSEs, the PReLU
            # as ABS + RELU, which NNAPI refuses in INT8); a Sub it keeps NHWC.
            y = y * self.weight.view(1, -1, 1, 1) - (-self.bias).view(1, -1, 1, 1)
        return y


GLOBAL_TYPES = (GlobalPool, GlobalInstanceNorm2d)


def global_modules(model: nn.Module) -> list[nn.Module]:
    """The model's global ops (in registration order; the run order is measured)."""
    return [m for m in model.modules() if isinstance(m, GLOBAL_TYPES)]


def has_global_context(model: nn.Module) -> bool:
    return bool(global_modules(model)) or any(
        isinstance(m, nn.InstanceNorm2d) for m in model.modules())


# ------------------------------------------------------------------------- contexts

@dataclass
class _Context:
    """How the marked modules behave during one forward pass."""

    stats: dict[nn.Module, Any] = field(default_factory=dict)       # injected
    collect: nn.Module | None = None                               # the op being measured
    owned: tuple[int, int, int, int] = (0, 0, 0, 0)                # packed px, tile-local
    strides: dict[nn.Module, tuple[int, int]] = field(default_factory=dict)
    record: Callable[[nn.Module, torch.Tensor], None] | None = None  # probes
    sums: Any = None

    def _owned_view(self, mod: nn.Module, x: torch.Tensor) -> torch.Tensor:
        sh, sw = self.strides[mod]
        top, bottom, left, right = self.owned
        r0, r1 = -(-top // sh), min(x.shape[2], -(-bottom // sh))
        c0, c1 = -(-left // sw), min(x.shape[3], -(-right // sw))
        return x[:, :, r0:max(r0, r1), c0:max(c0, c1)]

    def _reach(self, mod: nn.Module, x: torch.Tensor) -> None:
        if self.record is not None:
            self.record(mod, x)
        if mod is self.collect:
            part = self._owned_view(mod, x).double()
            self.sums = (part.sum(dim=(0, 2, 3)), (part * part).sum(dim=(0, 2, 3)), part.shape[2] * part.shape[3])
            raise _Stop
        if mod not in self.stats and self.record is None:
            raise RuntimeError("a global op ran before its statistics were measured")

    def pool(self, mod: nn.Module, x: torch.Tensor) -> torch.Tensor:
        self._reach(mod, x)
        if mod in self.stats:
            return _per_channel(self.stats[mod], x)
        return x.mean(dim=(2, 3), keepdim=True)

    def norm(self, mod: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._reach(mod, x)
        if mod in self.stats:
            mean, inv_std = self.stats[mod]
            return _per_channel(mean, x), _per_channel(inv_std, x)
        var = x.var(dim=(2, 3), keepdim=True, unbiased=False)
        return x.mean(dim=(2, 3), keepdim=True), torch.rsqrt(var + mod.eps)


def _per_channel(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """An injected per-channel vector as (N, C, 1, 1) for ``x``. Batch 1 (what exported parts
    take) adds no op: a broadcast op would be one more op for accelerators to refuse."""
    v = v if v.dim() == 4 else v.to(x.dtype).view(1, -1, 1, 1)
    return v if x.shape[0] == 1 else v.expand(x.shape[0], -1, 1, 1)


@contextlib.contextmanager
def _active(ctx: _Context) -> Iterator[_Context]:
    _ACTIVE.append(ctx)
    try:
        yield ctx
    finally:
        _ACTIVE.pop()


# ------------------------------------------------------------------------- analysis

@dataclass(frozen=True)
class GlobalPlan:
    """What was measured about a model's global ops (packed-pixel units)."""

    order: tuple[int, ...]                          # indices into global_modules(), run order
    strides: tuple[tuple[int, int], ...]            # per op (run order): input map stride
    halos: tuple[int, ...]                          # per op: receptive reach of its input
    output_halo: int                                # receptive reach of the output
    align: int                                      # block origins are multiples of this
    output_scale: int                               # output px per packed px

    def to_dict(self) -> dict[str, Any]:
        return {"global_ops": len(self.order), "strides": [list(s) for s in self.strides],
                "halos_packed_px": list(self.halos), "output_halo_packed_px": self.output_halo,
                "align_packed_px": self.align, "passes": len(self.order) + 1}


def _probe_shapes(model: nn.Module, mods: list[nn.Module], hw: tuple[int, int]) -> list[tuple[int, tuple[int, int]]]:
    seen: list[tuple[int, tuple[int, int]]] = []

    def record(mod: nn.Module, x: torch.Tensor) -> None:
        seen.append((mods.index(mod), (int(x.shape[2]), int(x.shape[3]))))

    with torch.no_grad(), _active(_Context(record=record)):
        model(torch.rand(1, 4, *hw))
    return seen


def _reach_of(fn: Callable[[torch.Tensor], torch.Tensor], hw: tuple[int, int], anchor: tuple[int, int]) -> int:
    """How far (packed px) from ``anchor`` the input pixels reach that one position of
    ``fn``'s result at ``anchor`` depends on (autograd: nonzero gradient extent)."""
    x = torch.rand(1, 4, *hw, requires_grad=True)
    y = fn(x)
    i, j = y.shape[2] // 2, y.shape[3] // 2
    y[0, :, i, j].sum().backward()
    g = x.grad[0].abs().sum(dim=0)
    rows = torch.nonzero(g.sum(dim=1)).flatten()
    cols = torch.nonzero(g.sum(dim=0)).flatten()
    ai, aj = anchor[0](i) if callable(anchor[0]) else i, anchor[1](j) if callable(anchor[1]) else j
    return int(max(ai - rows.min(), rows.max() - ai, aj - cols.min(), cols.max() - aj))


def analyse(model: nn.Module, *, probe_hw: tuple[int, int] = (288, 288), multiple: int = 4) -> GlobalPlan:
    """Measure run order, strides and receptive reaches of the model's global ops."""
    mods = global_modules(model)
    if not mods:
        raise InputError("the model has no marked global ops (GlobalPool / GlobalInstanceNorm2d)")
    step = 72 * multiple // math.gcd(72, multiple)
    small = _probe_shapes(model, mods, probe_hw)
    large = _probe_shapes(model, mods, (probe_hw[0] + step, probe_hw[1] + step))
    order = tuple(i for i, _ in small)
    if len(set(order)) != len(order):
        raise InputError("a global op runs more than once per forward pass; two-pass tiling cannot order it")
    strides = []
    for (_, (h1, w1)), (_, (h2, w2)) in zip(small, large):
        sh, sw = step / max(1, h2 - h1), step / max(1, w2 - w1)
        if sh != int(sh) or sw != int(sw):
            raise InputError(f"a global op's input has a fractional stride ({sh}, {sw}); cannot align tiles")
        strides.append((int(sh), int(sw)))
    align = multiple
    for sh, sw in strides:
        align = align * sh // math.gcd(align, sh)
        align = align * sw // math.gcd(align, sw)

    model = model.eval()
    halos = []
    zeros: dict[nn.Module, Any] = {}
    for k, idx in enumerate(order):
        mod = mods[idx]
        box: dict[str, torch.Tensor] = {}

        def to_op(x: torch.Tensor, mod: nn.Module = mod) -> torch.Tensor:
            def record(m: nn.Module, t: torch.Tensor) -> None:
                if m is mod:
                    box["x"] = t
                    raise _Stop

            with _active(_Context(stats=dict(zeros), record=record)):
                try:
                    model(x)
                except _Stop:
                    pass
            return box["x"]

        sh, sw = strides[k]
        halos.append(_reach_of(to_op, probe_hw, (lambda i, s=sh: i * s, lambda j, s=sw: j * s)))
        c = _probe_shapes_channels(model, mods, mod, probe_hw, zeros)
        zeros[mod] = (torch.zeros(c), torch.ones(c)) if isinstance(mod, GlobalInstanceNorm2d) else torch.zeros(c)

    with torch.no_grad():
        out_hw = model(torch.rand(1, 4, *probe_hw)).shape[2:]
    scale = out_hw[0] // probe_hw[0] if out_hw[0] >= probe_hw[0] else 1

    def full(x: torch.Tensor) -> torch.Tensor:
        with _active(_Context(stats=dict(zeros))):
            return model(x)

    output_halo = _reach_of(full, probe_hw, (lambda i: i // scale, lambda j: j // scale))
    return GlobalPlan(order, tuple(strides), tuple(halos), output_halo, align, scale)


def plan_for(model: nn.Module, multiple: int = 4) -> GlobalPlan:
    """:func:`analyse`, once per model and alignment: the plan depends on the architecture
    only, and measuring it costs probe runs (9-18 s for the default model here) that every
    process / verify / convert run would repeat. Kept on the model for this process and on
    disk (the user's cache folder) across runs, keyed by the architecture and its code."""
    cache = model.__dict__.setdefault("_edge_isp_global_plans", {})
    if multiple not in cache:
        path = plan_cache.cache_file(model, multiple)
        fields = plan_cache.read(path)
        cache[multiple] = GlobalPlan(**fields) if fields is not None else None
        if cache[multiple] is None:
            cache[multiple] = analyse(model, multiple=multiple)
            plan_cache.write(path, dataclasses.asdict(cache[multiple]))   # replaces a damaged file too
    return cache[multiple]


def _probe_shapes_channels(model: nn.Module, mods: list[nn.Module], mod: nn.Module, hw: tuple[int, int],
                           stats: dict[nn.Module, Any]) -> int:
    box: dict[str, int] = {}

    def record(m: nn.Module, t: torch.Tensor) -> None:
        if m is mod:
            box["c"] = int(t.shape[1])
            raise _Stop

    with torch.no_grad(), _active(_Context(stats=dict(stats), record=record)):
        try:
            model(torch.rand(1, 4, *hw))
        except _Stop:
            pass
    return box["c"]


# --------------------------------------------------------------------------- running

@dataclass(frozen=True)
class Block:
    """One owned block and the window (owned + halo, clamped to the frame) that computes it."""

    own: tuple[int, int, int, int]      # top, bottom, left, right (packed px, frame coords)
    win: tuple[int, int, int, int]


def plan_blocks(hw: tuple[int, int], block: int, halo: int, align: int) -> list[Block]:
    """Owned blocks of ``block`` px (a multiple of ``align``) partitioning the frame, each
    with a window reaching ``halo`` px (rounded up to ``align``) beyond it."""
    h, w = hw
    block = max(align, block // align * align)
    reach = -(-halo // align) * align
    blocks = []
    for top in range(0, h, block):
        for left in range(0, w, block):
            own = (top, min(h, top + block), left, min(w, left + block))
            win = (max(0, top - reach), min(h, own[1] + reach), max(0, left - reach), min(w, own[3] + reach))
            blocks.append(Block(own, win))
    return blocks


def _window(packed: Any, win: tuple[int, int, int, int]) -> torch.Tensor:
    t, b, l, r = win
    return torch.from_numpy(packed(t, b, l, r) if callable(packed) else packed[:, t:b, l:r].copy())[None].float()


def global_statistics(model: nn.Module, packed: Any, hw: tuple[int, int], plan: GlobalPlan, *,
                      block: int = DEFAULT_BLOCK, progress: Callable[[int, int], None] | None = None) -> dict[nn.Module, Any]:
    """Pass 1: the full frame's statistics of every global op, exactly, block by block.

    ``packed`` is a (4, H, W) float32 array or a ``read(top, bottom, left, right)`` callable.
    """
    mods = global_modules(model)
    stats: dict[nn.Module, Any] = {}
    strides = {mods[i]: s for i, s in zip(plan.order, plan.strides)}
    total = len(plan.order) * len(plan_blocks(hw, block, 0, plan.align))
    done = 0
    for k, idx in enumerate(plan.order):
        mod = mods[idx]
        s1, s2, n = None, None, 0
        for blk in plan_blocks(hw, block, plan.halos[k], plan.align):
            t, b, l, r = blk.win
            ctx = _Context(stats=dict(stats), collect=mod, strides=strides,
                           owned=(blk.own[0] - t, blk.own[1] - t, blk.own[2] - l, blk.own[3] - l))
            with torch.no_grad(), _active(ctx):
                try:
                    model(_window(packed, blk.win))
                except _Stop:
                    pass
            a, q, m = ctx.sums
            s1, s2, n = (a, q, m) if s1 is None else (s1 + a, s2 + q, n + m)
            done += 1
            if progress is not None:
                progress(done, total)
        stats[mod] = finish_statistics(mod, s1, s2, n)
    return stats


def finish_statistics(mod: nn.Module, s1: torch.Tensor, s2: torch.Tensor, n: int) -> Any:
    """Per-channel sums of a global op's input (and of its squares) over ``n`` positions ->
    what the op is given: the mean (pooling), or the mean and 1/sqrt(var + eps) (norm)."""
    mean = s1.double() / n
    if isinstance(mod, GlobalInstanceNorm2d):
        var = (s2.double() / n - mean * mean).clamp_min(0)
        return mean.float(), torch.rsqrt(var + mod.eps).float()
    return mean.float()


def run_blocks(model: nn.Module, packed: Any, hw: tuple[int, int], plan: GlobalPlan, stats: dict[nn.Module, Any], *,
               block: int = DEFAULT_BLOCK, out: Any = None, progress: Callable[[int, int], None] | None = None) -> Any:
    """Pass 2: every owned block with all statistics injected; returns (H*s, W*s, 3) float32."""
    import numpy as np

    s = plan.output_scale
    h, w = hw
    if out is None:
        out = np.empty((h * s, w * s, 3), dtype=np.float32)
    blocks = plan_blocks(hw, block, plan.output_halo, plan.align)
    for n, blk in enumerate(blocks, 1):
        t, b, l, r = blk.win
        with torch.no_grad(), _active(_Context(stats=stats)):
            y = model(_window(packed, blk.win))[0].clamp(0, 1)
        ot, ob, ol, orr = ((v - o) * s for v, o in zip(blk.own, (t, t, l, l)))
        part = y[:, ot:ob, ol:orr].permute(1, 2, 0).numpy()
        dst = out[blk.own[0] * s:blk.own[1] * s, blk.own[2] * s:blk.own[3] * s]
        if np.issubdtype(dst.dtype, np.integer):
            top = np.iinfo(dst.dtype).max
            dst[...] = np.rint(part * top)
        else:
            dst[...] = part
        if progress is not None:
            progress(n, len(blocks))
    return out


def run_two_pass(model: nn.Module, packed: Any, hw: tuple[int, int], *, block: int = DEFAULT_BLOCK,
                 plan: GlobalPlan | None = None, out: Any = None) -> tuple[Any, GlobalPlan]:
    """Statistics pass then block pass: the untiled model's output, in bounded memory."""
    plan = plan or plan_for(model)
    stats = global_statistics(model, packed, hw, plan, block=block)
    return run_blocks(model, packed, hw, plan, stats, block=block, out=out), plan


def photo_multiple(model: nn.Module, input_multiple: int) -> int:
    """The grid a whole photo is mirrored up to before this model sees it.

    A model with global ops takes any multiple of ``input_multiple``, but its global ops
    average maps of a coarser stride (36 packed px for PyNET-V2 Mobile: two 2x2 and two 3x3
    stride convolutions), so the same photo padded to 4 or to 36 gives different
    statistics (measured: 37.7 dB apart on a bright synthetic sky) - the padding is part of
    what the model computes. Fixed-size artifact windows can only be exact on frames of the
    global alignment, so the exact paths (untiled reference, PyTorch two-pass, two-pass
    bundles) pad a photo to this one grid: they then all compute the same picture.
    """
    if not global_modules(model):
        return input_multiple
    return plan_for(model, input_multiple).align


def pad_to_multiple(packed: Any, multiple: int) -> Any:
    """Mirror-pad a packed (4, h, w) frame at the bottom/right up to ``multiple``: the
    graph's strides need it; callers crop the output back to the photo."""
    import numpy as np

    h, w = packed.shape[1:]
    ph, pw = -h % multiple, -w % multiple
    if not ph and not pw:
        return packed
    return np.pad(packed, ((0, 0), (0, ph), (0, pw)), mode="reflect" if ph < h and pw < w else "edge")


def run_photo(model: nn.Module, packed: Any, *, multiple: int, block: int = DEFAULT_BLOCK, plan: GlobalPlan | None = None,
              out_dtype: Any = None, progress: Callable[[int, int], None] | None = None) -> tuple[Any, GlobalPlan]:
    """A whole packed photo (4, h, w) through a global-context model, exactly as untiled:
    (2h, 2w, 3) for a full-resolution ISP, in ``out_dtype`` (float32, uint8, uint16)."""
    import numpy as np

    h, w = packed.shape[1:]
    plan = plan or plan_for(model, multiple)
    padded = pad_to_multiple(packed, plan.align)   # the photo grid (see photo_multiple)
    s = plan.output_scale
    hw = (int(padded.shape[1]), int(padded.shape[2]))
    out = np.empty((hw[0] * s, hw[1] * s, 3), dtype=np.dtype(out_dtype or np.float32))
    stats_blocks = len(plan.order) * len(plan_blocks(hw, block, 0, plan.align))
    tile_blocks = len(plan_blocks(hw, block, 0, plan.align))
    total = stats_blocks + tile_blocks

    def stats_progress(done: int, _total: int) -> None:
        if progress is not None:
            progress(done, total)

    def tiles_progress(done: int, _total: int) -> None:
        if progress is not None:
            progress(stats_blocks + done, total)

    stats = global_statistics(model, padded, hw, plan, block=block, progress=stats_progress)
    run_blocks(model, padded, hw, plan, stats, block=block, out=out, progress=tiles_progress)
    return out[: h * s, : w * s], plan


__all__ = ["GLOBAL_TYPES", "Block", "GlobalInstanceNorm2d", "GlobalPlan", "GlobalPool", "analyse",
           "finish_statistics", "global_modules", "global_statistics", "has_global_context", "pad_to_multiple", "photo_multiple", "plan_blocks", "plan_for",
           "run_blocks",
           "run_photo", "run_two_pass"]
