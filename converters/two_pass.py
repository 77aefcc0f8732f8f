"""Converting a global-context model as two parts (statistics + tile) for exact tiling.

The model, its measured plan and the fixed window decide a :class:`SplitSpec`
(:mod:`edge_isp.models.split_parts`); this module turns that into what the conversion
pipeline needs: the window to convert at, calibration/verification inputs with the
statistics each crop's own untiled run sees, both ONNX exports, and the end-to-end check
(held-out crops through both artifacts, two passes, against PyTorch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge_isp.errors import InputError

TILING_MODES = ("auto", "two-pass", "blended")
# Owned block per side (packed px) a default window aims at, as the PyTorch path measured
# (models.global_context.DEFAULT_BLOCK): halos are a fixed cost per window.
DEFAULT_BLOCK = 288

# auto picks two-pass up to this many global ops: the statistics part runs once per global
# op per window (PyNET-V2 Mobile: 2 or 12; MicroISP 12; PyNET 124 would be 125 passes).
MAX_AUTO_GLOBAL_OPS = 16


def choose_tiling(requested: str, model: Any, target: Any) -> str:
    """'two-pass' for a model with global ops on a format that can run it, else 'blended'."""
    # Formats whose entry names a statistics part (artifact_formats: the host runs them with
    # named inputs); vendor-compiler formats keep one artifact until their runners take several.
    from edge_isp.converters.artifact_formats import get_format, two_pass_formats
    from edge_isp.models.global_context import global_modules

    if requested not in TILING_MODES:
        raise InputError(f"--tiling {requested!r}: choose one of {', '.join(TILING_MODES)}")
    has_global = bool(global_modules(model))
    if requested == "blended":
        return "blended"
    if requested == "two-pass":
        if not has_global:
            raise InputError("--tiling two-pass: the model has no global ops (pooling over the image, instance "
                             "norm); its tiles are exact with one pass: drop the flag")
        if not get_format(target.format).two_pass:
            raise InputError(f"--tiling two-pass: {target.name} ({target.format}) artifacts take one input; two-pass "
                             f"bundles are built for {', '.join(two_pass_formats())} formats; use --tiling blended")
        return "two-pass"
    many = len(global_modules(model)) > MAX_AUTO_GLOBAL_OPS
    return "two-pass" if has_global and not many and get_format(target.format).two_pass else "blended"


@dataclass
class TwoPassSetup:
    plan: Any
    spec: Any
    note: str                       # how the window was chosen


def setup(model: Any, input_multiple: int, input_size: tuple[int, int] | None,
          max_memory_mb: float | None = None) -> TwoPassSetup:
    """The plan and fixed window: the asked mosaic size rounded up to a valid window, the
    largest window within ``max_memory_mb`` (measured, see edge_isp.tile_planner), or by
    default a window whose owned block is ``DEFAULT_BLOCK`` px."""
    from edge_isp.models.global_context import plan_for
    from edge_isp.models.split_parts import split_spec, window_reach

    plan = plan_for(model, input_multiple)
    reach, least = window_reach(plan)

    def up(v: int) -> int:
        return max(least, -(-v // plan.align) * plan.align)

    if max_memory_mb is not None:
        from edge_isp.tile_planner import choose_window, measure_memory

        choice = choose_window(max_memory_mb, measure_memory(model), align=plan.align, least=least)
        window, note = choice.window, f"two-pass window: {choice.reason}"
    elif input_size is None:
        side = up(DEFAULT_BLOCK + 2 * reach)
        window = (side, side)
        note = (f"default two-pass window {2 * side}x{2 * side} (owned block {side - 2 * reach} px + reach "
                f"{reach} px each side, packed)")
    else:
        window = (up(input_size[0] // 2), up(input_size[1] // 2))
        asked = (input_size[0] // 2, input_size[1] // 2)
        note = (f"two-pass window {2 * window[0]}x{2 * window[1]}" +
                ("" if window == asked else f" (asked {input_size[0]}x{input_size[1]}, rounded up to a multiple of "
                                            f"{2 * plan.align} and at least {2 * least})"))
    return TwoPassSetup(plan, split_spec(model, plan, window), note)


def with_statistics(model: Any, setup_: TwoPassSetup, inputs: Any) -> Any:
    """An InputSet whose crops carry the statistics their own untiled run sees."""
    from edge_isp.models.split_parts import example_statistics

    return replace(inputs, extra=example_statistics(model, setup_.plan, setup_.spec, inputs.data))


def export_parts(export: Callable[..., Any], model: Any, setup_: TwoPassSetup, work: Path) -> tuple[Any, Any]:
    """(statistics part, tile part) as ONNX in ``work``: stats.onnx and model.onnx."""
    from edge_isp.models.split_parts import BAYER, RGB, make_parts

    spec = setup_.spec
    stats_part, tile_part = make_parts(model, setup_.plan, spec)
    shapes = {BAYER: (1, 4, *spec.window), **{n: (1, op.channels, 1, 1) for op in spec.ops for n in op.inputs}}
    stats = export(stats_part, shapes, work / "stats.onnx", output_names=list(spec.map_names))
    tile = export(tile_part, shapes, work / "model.onnx", output_names=[RGB])
    return stats, tile


@dataclass(frozen=True)
class PartsCheck:
    """The two artifacts checked one by one (besides the end-to-end PSNR)."""

    tile_psnr_db: float            # tile part fed PyTorch's exact statistics, worst sample
    stats_max_rel_err: float       # statistics part vs PyTorch: worst |error| / the input's largest |statistic|

    def to_dict(self) -> dict[str, Any]:
        return {"tile_part_worst_psnr_db": round(self.tile_psnr_db, 3),
                "stats_part_max_rel_err": float(f"{self.stats_max_rel_err:.3g}")}


def run_held_out(stats_runner: Any, tile_runner: Any, spec: Any,
                 held_out: Any) -> tuple[np.ndarray, list[dict[str, np.ndarray]]]:
    """Every held-out crop through both artifacts in two passes (one window each): NCHW RGB,
    and the statistics the statistics part found for each crop (what the tile part was fed)."""
    from edge_isp.models.split_parts import BAYER, run_split

    outs, found = [], []
    for x in held_out.data:
        fed: dict[str, np.ndarray] = {}

        def tile(feeds: Any, fed: dict[str, np.ndarray] = fed) -> Any:
            fed.update({k: v for k, v in feeds.items() if k != BAYER})
            return tile_runner.run_named(feeds)

        outs.append(run_split(stats_runner.run_named, tile, spec, x))
        found.append(fed)
    return np.stack([np.transpose(o, (2, 0, 1)) for o in outs]).astype(np.float32), found


def check_parts(tile_runner: Any, held_out: Any, reference: np.ndarray,
                found: list[dict[str, np.ndarray]]) -> PartsCheck:
    """Each part alone: the tile part fed PyTorch's statistics, and the statistics the
    statistics part ``found`` (see :func:`run_held_out`) against PyTorch's."""
    from edge_isp.converters.verify import compare_outputs
    from edge_isp.models.split_parts import BAYER, RGB

    tiles = np.concatenate([tile_runner.run_named(held_out.sample(i, BAYER))[RGB] for i in range(len(held_out))])
    tile_v = compare_outputs(reference, tiles, 0.0, "tile part")
    worst = 0.0
    for i, fed in enumerate(found):
        for name, got in fed.items():
            want = held_out.extra[name][i:i + 1]
            # Relative to the largest statistic of the same input: a near-zero channel mean
            # would make a per-channel ratio meaningless.
            worst = max(worst, float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-6)))
    return PartsCheck(tile_v.min_sample_psnr_db, worst)


__all__ = ["DEFAULT_BLOCK", "PartsCheck", "TILING_MODES", "TwoPassSetup", "check_parts", "choose_tiling",
           "export_parts", "run_held_out", "setup", "with_statistics"]
