"""A global-context model as two exportable parts, so exact two-pass tiling survives conversion.

:mod:`edge_isp.models.global_context` runs a PyTorch model in exact two-pass tiles. An
artifact (TFLite, OpenVINO IR, ONNX) has no Python hooks, so the same idea is built into
two graphs whose global statistics are *extra inputs*:

- the **statistics part** takes a window of packed Bayer plus every global op's statistics
  and outputs the input map of every global op (the decoder after the last global op is
  not in it). Run once per global op, in run order: pass k feeds the statistics of ops
  before k, which is all op k's map depends on, and sums op k's map over each window's
  owned positions.
- the **tile part** takes the same inputs and outputs RGB, every global op reading the
  injected statistics instead of its window's own.

Inputs are (1, C, 1, 1) per statistic: ``g{k}_mean`` for a pooling, ``g{k}_mean`` and
``g{k}_inv_std`` (1/sqrt(var + eps), so the graph needs no RSQRT) for an instance norm.
Windows have the artifact's fixed size: each owned block's window is shifted inside the
frame instead of clamped, so a window edge is either the frame edge or at least a halo
away from what it owns. Photos are mirrored up to the global ops' alignment first (the
photo grid every path uses, :func:`edge_isp.models.global_context.photo_multiple`), so
every pixel is what the untiled model computes on that frame.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from edge_isp.errors import BundleError, InputError
from edge_isp.models.global_context import (
    GlobalInstanceNorm2d,
    GlobalPlan,
    _active,
    _Context,
    finish_statistics,
    global_modules,
    pad_to_multiple,
)

BAYER = "bayer"
RGB = "rgb"

# A part as the host runs it: named NCHW float32 inputs -> named NCHW float32 outputs.
PartFn = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class GlobalOpSpec:
    """One global op as a bundle records it (run order)."""

    kind: str                      # "mean" (pooling) or "norm" (instance norm)
    channels: int
    stride: tuple[int, int]        # packed px per position of its input map
    eps: float
    inputs: tuple[str, ...]        # the part inputs it reads
    map_output: str                # the statistics part output with its input map

    def placeholder(self) -> dict[str, np.ndarray]:
        """Statistics for a pass that does not read them yet (any value would do)."""
        shape = (1, self.channels, 1, 1)
        out = {self.inputs[0]: np.zeros(shape, np.float32)}
        if self.kind == "norm":
            out[self.inputs[1]] = np.ones(shape, np.float32)
        return out


@dataclass(frozen=True)
class SplitSpec:
    """How a two-pass bundle's parts are driven: what the manifest's ``two_pass`` holds."""

    ops: tuple[GlobalOpSpec, ...]
    window: tuple[int, int]        # the parts' fixed input (packed px)
    reach: int                     # context kept around an owned block (packed px, aligned)
    align: int                     # window origins and frame sizes are multiples of this
    output_scale: int

    @property
    def block(self) -> tuple[int, int]:
        return self.window[0] - 2 * self.reach, self.window[1] - 2 * self.reach

    @property
    def input_names(self) -> tuple[str, ...]:
        return (BAYER, *[n for op in self.ops for n in op.inputs])

    @property
    def map_names(self) -> tuple[str, ...]:
        return tuple(op.map_output for op in self.ops)

    def to_dict(self) -> dict[str, Any]:
        return {"window_packed": list(self.window), "reach_packed": self.reach, "align_packed": self.align,
                "block_packed": list(self.block), "output_scale": self.output_scale,
                "passes": len(self.ops) + 1, "ops": [asdict(op) for op in self.ops]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SplitSpec:
        """Read the manifest's section back, refusing what does not add up (it is a file).
        Keys of earlier versions (measured map extents, a finer tile grid) are ignored: every
        frame is now padded to ``align``."""
        try:
            ops = tuple(GlobalOpSpec(kind=str(o["kind"]), channels=int(o["channels"]),
                                     stride=(int(o["stride"][0]), int(o["stride"][1])), eps=float(o["eps"]),
                                     inputs=tuple(str(n) for n in o["inputs"]), map_output=str(o["map_output"]))
                        for o in d["ops"])
            spec = cls(ops, (int(d["window_packed"][0]), int(d["window_packed"][1])), int(d["reach_packed"]),
                       int(d["align_packed"]), int(d["output_scale"]))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise BundleError(f"the bundle's two_pass section is malformed ({exc!r}); re-run 'edge-isp convert'") from exc
        ok = (spec.ops and spec.align > 0 and spec.reach >= 0 and spec.output_scale > 0
              and all(op.kind in ("mean", "norm") and op.channels > 0 and len(op.inputs) == (2 if op.kind == "norm" else 1)
                      for op in spec.ops)
              and all(v > 0 and v % spec.align == 0 for v in (*spec.window, *spec.block)))
        if not ok:
            raise BundleError("the bundle's two_pass section does not add up (window, reach, alignment or ops); "
                              "re-run 'edge-isp convert'")
        return spec


def window_reach(plan: GlobalPlan) -> tuple[int, int]:
    """(context kept around an owned block, smallest window side), packed px on the plan's grid:
    the widest receptive reach of any pass, rounded up to the alignment."""
    reach = -(-max((*plan.halos, plan.output_halo)) // plan.align) * plan.align
    return reach, 2 * reach + plan.align


def split_spec(model: nn.Module, plan: GlobalPlan, window: tuple[int, int]) -> SplitSpec:
    """The spec of ``model`` (measured ``plan``) for parts taking ``window`` packed px."""
    mods = global_modules(model)
    channels = _channels(model, mods, window)
    reach, need = window_reach(plan)
    ops = []
    for k, idx in enumerate(plan.order):
        mod = mods[idx]
        norm = isinstance(mod, GlobalInstanceNorm2d)
        ops.append(GlobalOpSpec(
            kind="norm" if norm else "mean", channels=channels[idx], stride=plan.strides[k],
            eps=float(mod.eps) if norm else 0.0,
            inputs=(f"g{k}_mean", f"g{k}_inv_std") if norm else (f"g{k}_mean",), map_output=f"g{k}_map"))
    spec = SplitSpec(tuple(ops), window, reach, plan.align, plan.output_scale)
    if any(b < plan.align for b in spec.block) or any(w % plan.align for w in window):
        raise InputError(
            f"two-pass tiles of this model need a window that is a multiple of {plan.align} packed px and at "
            f"least {need} (its receptive reach is {max((*plan.halos, plan.output_halo))} px); use --input-size "
            f"{2 * max(need, -(-window[0] // plan.align) * plan.align)}x{2 * max(need, -(-window[1] // plan.align) * plan.align)}")
    return spec


def _channels(model: nn.Module, mods: list[nn.Module], window: tuple[int, int]) -> dict[int, int]:
    seen: dict[int, int] = {}

    def record(mod: nn.Module, x: torch.Tensor) -> None:
        seen[mods.index(mod)] = int(x.shape[1])

    with torch.no_grad(), _active(_Context(record=record)):
        model(torch.rand(1, 4, *window))
    return seen


# ----------------------------------------------------------------------- the two parts

class _Part(nn.Module):
    """``model`` with every global op reading injected statistics (positional inputs after
    the Bayer window, in ``spec.input_names`` order)."""

    def __init__(self, model: nn.Module, spec: SplitSpec, order: tuple[int, ...]) -> None:
        super().__init__()
        self.model = model
        self.spec = spec
        mods = global_modules(model)
        self._order = order
        self._ops_in_order = [mods[i] for i in order]

    def _stats(self, stats: tuple[torch.Tensor, ...]) -> dict[nn.Module, Any]:
        out: dict[nn.Module, Any] = {}
        it = iter(stats)
        for mod, op in zip(self._ops_in_order, self.spec.ops):
            out[mod] = (next(it), next(it)) if op.kind == "norm" else next(it)
        return out


class TilePart(_Part):
    """(bayer, statistics...) -> RGB: the tile pass."""

    def forward(self, bayer: torch.Tensor, *stats: torch.Tensor) -> torch.Tensor:
        with _active(_Context(stats=self._stats(stats))):
            return self.model(bayer)


class _Done(Exception):
    pass


class StatsPart(_Part):
    """(bayer, statistics...) -> every global op's input map: the statistics pass. The
    forward ends at the last global op, so the decoder is not part of the graph."""

    stop_early = True

    def traceable(self) -> StatsPart:
        """The same part without the early stop (an exception torch.export cannot trace
        through): the decoder runs, its result is unused and dead-code elimination drops it."""
        part = StatsPart(self.model, self.spec, self._order)
        part.stop_early = False
        return part.eval()

    def forward(self, bayer: torch.Tensor, *stats: torch.Tensor) -> tuple[torch.Tensor, ...]:
        maps: dict[nn.Module, torch.Tensor] = {}
        last = self._ops_in_order[-1]

        def record(mod: nn.Module, x: torch.Tensor) -> None:
            maps[mod] = x
            if mod is last and self.stop_early:
                raise _Done

        try:
            with _active(_Context(stats=self._stats(stats), record=record)):
                self.model(bayer)
        except _Done:
            pass
        return tuple(maps[m] for m in self._ops_in_order)


def make_parts(model: nn.Module, plan: GlobalPlan, spec: SplitSpec) -> tuple[StatsPart, TilePart]:
    model = model.eval()
    return StatsPart(model, spec, plan.order).eval(), TilePart(model, spec, plan.order).eval()


def torch_part_fn(part: _Part) -> PartFn:
    """A PyTorch part as the driver runs an artifact: named arrays in, named arrays out."""
    names = part.spec.input_names

    def run(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [torch.from_numpy(np.ascontiguousarray(inputs[n], np.float32)) for n in names]
        with torch.no_grad():
            y = part(*args)
        if isinstance(part, TilePart):
            return {RGB: y.numpy()}
        return {name: t.numpy() for name, t in zip(part.spec.map_names, y)}

    return run


def example_statistics(model: nn.Module, plan: GlobalPlan, spec: SplitSpec, packed: np.ndarray) -> dict[str, np.ndarray]:
    """The statistics each op sees when ``packed`` (N, 4, h, w) crops run untiled: what
    calibration and verification feed the parts next to each crop. Returns (N, C, 1, 1) arrays."""
    from edge_isp.models.global_context import global_statistics

    per_sample: list[dict[str, np.ndarray]] = []
    mods = global_modules(model)
    hw = (int(packed.shape[2]), int(packed.shape[3]))
    for x in packed:
        stats = global_statistics(model, x, hw, plan, block=max(hw) + plan.align)  # one block: the crop itself
        row: dict[str, np.ndarray] = {}
        for k, op in enumerate(spec.ops):
            value = stats[mods[plan.order[k]]]
            parts = value if op.kind == "norm" else (value,)
            for name, v in zip(op.inputs, parts):
                row[name] = v.numpy().reshape(1, -1, 1, 1).astype(np.float32)
        per_sample.append(row)
    return {name: np.concatenate([r[name] for r in per_sample]) for name in spec.input_names[1:]}


# ------------------------------------------------------------------------ host driver

@dataclass(frozen=True)
class Window:
    own: tuple[int, int, int, int]     # owned block: top, bottom, left, right (frame, packed px)
    top: int                           # the fixed-size window's origin
    left: int


def plan_windows(hw: tuple[int, int], spec: SplitSpec) -> list[Window]:
    """Owned blocks partitioning a frame padded to the alignment (at least one window a side),
    each with a window of ``spec.window`` shifted inside it."""
    h, w = hw
    align = spec.align
    (wh, ww), (bh, bw), reach = spec.window, spec.block, spec.reach
    if h < wh or w < ww or h % align or w % align:
        raise InputError(f"frame {h}x{w} is not padded for windows of {wh}x{ww} (align {align})")
    out = []
    for top in range(0, h, bh):
        for left in range(0, w, bw):
            own = (top, min(h, top + bh), left, min(w, left + bw))
            out.append(Window(own, min(max(0, top - reach), h - wh), min(max(0, left - reach), w - ww)))
    return out


def padded_hw(hw: tuple[int, int], spec: SplitSpec) -> tuple[int, int]:
    """A photo's packed size padded to the alignment and to at least one window: the frame
    :func:`pad_frame` makes."""
    a = spec.align
    return max(spec.window[0], -(-hw[0] // a) * a), max(spec.window[1], -(-hw[1] // a) * a)


def tile_windows(hw: tuple[int, int], spec: SplitSpec) -> list[Window]:
    """The windows over a photo of packed size ``hw`` (what the reports count)."""
    return plan_windows(padded_hw(hw, spec), spec)


def pad_frame(packed: np.ndarray, spec: SplitSpec) -> np.ndarray:
    """Pad a packed (4, h, w) frame at the bottom/right to :func:`padded_hw`."""
    padded = pad_to_multiple(packed, spec.align)
    h, w = padded.shape[1:]
    th, tw = padded_hw((h, w), spec)
    if th > h or tw > w:
        padded = np.pad(padded, ((0, 0), (0, th - h), (0, tw - w)), mode="symmetric")
    return padded


def _owned_map(m: np.ndarray, win: Window, stride: tuple[int, int]) -> np.ndarray:
    """The positions of an op's input map (window coords) that ``win`` owns."""
    sh, sw = stride
    t, b = win.own[0] - win.top, win.own[1] - win.top
    l, r = win.own[2] - win.left, win.own[3] - win.left
    r0, r1 = -(-t // sh), min(m.shape[2], -(-b // sh))
    c0, c1 = -(-l // sw), min(m.shape[3], -(-r // sw))
    return m[:, :, r0:max(r0, r1), c0:max(c0, c1)]


@dataclass
class SplitRun:
    """What a two-pass run did (for reports): window counts and seconds per pass."""

    windows: int = 0
    stats_runs: int = 0
    tile_runs: int = 0
    stats_s: float = 0.0
    tiles_s: float = 0.0


def run_split(stats_fn: PartFn, tile_fn: PartFn, spec: SplitSpec, packed: np.ndarray, *, out_dtype: Any = np.float32,
              progress: Callable[[int, int], None] | None = None, run: SplitRun | None = None) -> np.ndarray:
    """A whole packed photo (4, h, w) through the two parts: (h*s, w*s, 3) in ``out_dtype``."""
    import time

    h, w = packed.shape[1:]
    frame = pad_frame(np.asarray(packed, np.float32), spec)
    windows = plan_windows(frame.shape[1:], spec)
    run = run if run is not None else SplitRun()
    run.windows = len(windows)
    total, done = len(windows) * (len(spec.ops) + 1), 0
    wh, ww = spec.window

    def window_input(win: Window) -> np.ndarray:
        return np.ascontiguousarray(frame[None, :, win.top:win.top + wh, win.left:win.left + ww])

    stats: dict[str, np.ndarray] = {}
    for op in spec.ops:
        stats.update(op.placeholder())
    t0 = time.perf_counter()
    for op in spec.ops:
        s1 = s2 = None
        n = 0
        for win in windows:
            m = np.asarray(stats_fn({BAYER: window_input(win), **stats})[op.map_output], np.float64)
            part = _owned_map(m, win, op.stride)
            a, q = part.sum(axis=(0, 2, 3)), np.square(part).sum(axis=(0, 2, 3))
            s1, s2 = (a, q) if s1 is None else (s1 + a, s2 + q)
            n += part.shape[2] * part.shape[3]
            run.stats_runs += 1
            done += 1
            if progress is not None:
                progress(done, total)
        value = finish_statistics(_KIND_MODULE[op.kind](op), torch.from_numpy(s1), torch.from_numpy(s2), n)
        for name, v in zip(op.inputs, value if op.kind == "norm" else (value,)):
            stats[name] = v.numpy().reshape(1, -1, 1, 1).astype(np.float32)
    run.stats_s += time.perf_counter() - t0

    t0 = time.perf_counter()
    s = spec.output_scale
    out = np.empty((frame.shape[1] * s, frame.shape[2] * s, 3), dtype=np.dtype(out_dtype))
    for win in windows:
        y = np.asarray(tile_fn({BAYER: window_input(win), **stats})[RGB])[0]
        t, b = (win.own[0] - win.top) * s, (win.own[1] - win.top) * s
        l, r = (win.own[2] - win.left) * s, (win.own[3] - win.left) * s
        part = np.clip(np.transpose(y[:, t:b, l:r], (1, 2, 0)), 0, 1)
        dst = out[win.own[0] * s:win.own[1] * s, win.own[2] * s:win.own[3] * s]
        dst[...] = np.rint(part * np.iinfo(dst.dtype).max) if np.issubdtype(dst.dtype, np.integer) else part
        run.tile_runs += 1
        done += 1
        if progress is not None:
            progress(done, total)
    run.tiles_s += time.perf_counter() - t0
    return out[: h * s, : w * s]


def _norm_shim(op: GlobalOpSpec) -> nn.Module:
    """What finish_statistics needs of an instance norm: its type and eps."""
    return GlobalInstanceNorm2d(1, eps=op.eps)


_KIND_MODULE: dict[str, Callable[[GlobalOpSpec], nn.Module]] = {
    "mean": lambda op: nn.Identity(),
    "norm": _norm_shim,
}


__all__ = ["BAYER", "RGB", "GlobalOpSpec", "PartFn", "SplitRun", "SplitSpec", "StatsPart", "TilePart", "Window",
           "example_statistics", "make_parts", "pad_frame", "padded_hw", "plan_windows", "run_split", "split_spec", "tile_windows",
           "torch_part_fn", "window_reach"]
