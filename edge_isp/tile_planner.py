"""Tile sizes from a memory budget: how large a window fits ``--max-memory``.

A window's working memory (its activations: what grows with the tile) is measured, not
guessed: the PyTorch model runs at two probe sizes, the peak of its live tensor bytes is
fitted as ``fixed + per-pixel x pixels``, and the planner takes the largest window on the
model's alignment grid whose prediction fits the budget, and says why. Measured on the
default model: 159 MB of live tensors at a 432 px window vs 238 MB of process peak RSS
growth (allocator and oneDNN scratch on top); runtimes that plan their buffers (XNNPACK,
OpenVINO) need less than PyTorch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from edge_isp.errors import InputError, UsageError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNIT_MB = {"": 1.0, "k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0 ** 2}


def parse_memory(text: str, flag: str = "--max-memory") -> float:
    """'512MB', '1.5G', '800' (MB) -> MiB."""
    m = _SIZE.match(str(text))
    if not m or float(m.group(1)) <= 0:
        raise UsageError(f"{flag} {text!r} is not a memory size; write e.g. 512MB or 1.5GB")
    return float(m.group(1)) * _UNIT_MB[m.group(2).lower()]


@dataclass(frozen=True)
class MemoryModel:
    """Working memory of one forward pass: ``fixed_mb + mb_per_kpx * packed kilopixels``."""

    fixed_mb: float
    mb_per_kpx: float
    probes: tuple[tuple[int, float], ...]      # (packed pixels, measured MiB)

    def predict_mb(self, hw: tuple[int, int]) -> float:
        return self.fixed_mb + self.mb_per_kpx * hw[0] * hw[1] / 1000.0

    def describe(self) -> str:
        return (f"{self.fixed_mb:.0f} MB + {self.mb_per_kpx * 1000:.0f} MB per packed megapixel of live tensors, "
                f"fitted to PyTorch forward passes at {' and '.join(f'{px / 1000:.0f} kpx ({mb:.0f} MB)' for px, mb in self.probes)}")


def measure_memory(model: Any, sides: tuple[int, int] = (144, 288)) -> MemoryModel:
    """Fit the working memory of ``model`` from forward passes at two square probe sizes.

    Counted as the peak of live tensor bytes during the pass (every op's outputs, freed when
    the last reference goes), so the figure does not depend on what the allocator kept from
    earlier work in this process.
    """
    import torch

    probes = []
    for side in sides:
        meter = _live_bytes_meter()
        with torch.no_grad(), meter:
            model(torch.rand(1, 4, side, side))
        probes.append((side * side, meter.peak / 2**20))
    (p1, m1), (p2, m2) = probes
    per = max(1e-6, (m2 - m1) / ((p2 - p1) / 1000.0))
    return MemoryModel(max(0.0, m1 - per * p1 / 1000.0), per, tuple(probes))


def _live_bytes_meter() -> Any:
    import weakref

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class LiveBytes(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.live = self.peak = 0
            self.seen: set[int] = set()

        def _free(self, key: int, n: int) -> None:
            self.live -= n
            self.seen.discard(key)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
            out = func(*args, **(kwargs or {}))
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    storage = t.untyped_storage()
                    key = storage.data_ptr()
                    if key and key not in self.seen:         # views and in-place results: counted once
                        n = storage.nbytes()
                        self.seen.add(key)
                        self.live += n
                        self.peak = max(self.peak, self.live)
                        weakref.finalize(t, self._free, key, n)
            return out

    return LiveBytes()


@dataclass(frozen=True)
class WindowChoice:
    window: tuple[int, int]         # packed px
    predicted_mb: float
    reason: str


def choose_window(budget_mb: float, memory: MemoryModel, *, align: int, least: int) -> WindowChoice:
    """The largest square window (a multiple of ``align``, at least ``least``) whose predicted
    working memory fits ``budget_mb``."""
    least = -(-least // align) * align
    if memory.predict_mb((least, least)) > budget_mb:
        raise InputError(f"--max-memory {budget_mb:.0f} MB is below what the smallest valid window needs "
                         f"({2 * least}x{2 * least} RAW px: about {memory.predict_mb((least, least)):.0f} MB; "
                         f"{memory.describe()}); raise the budget")
    side = least
    while memory.predict_mb((side + align, side + align)) <= budget_mb and side < 8192:
        side += align
    predicted = memory.predict_mb((side, side))
    return WindowChoice((side, side), predicted,
                        f"largest window within --max-memory {budget_mb:.0f} MB: {2 * side}x{2 * side} RAW px, about "
                        f"{predicted:.0f} MB ({memory.describe()})")


def two_pass_block(model: Any, input_multiple: int, budget_mb: float) -> tuple[int, str]:
    """The owned block (packed px) of PyTorch two-pass tiling whose window fits ``budget_mb``."""
    from edge_isp.models.global_context import plan_for
    from edge_isp.models.split_parts import window_reach

    plan = plan_for(model, input_multiple)
    reach, least = window_reach(plan)
    choice = choose_window(budget_mb, measure_memory(model), align=plan.align, least=least)
    block = choice.window[0] - 2 * reach
    return block, f"owned block {2 * block} RAW px + reach {2 * reach} each side: {choice.reason}"


__all__ = ["MemoryModel", "WindowChoice", "choose_window", "measure_memory", "parse_memory", "two_pass_block"]
