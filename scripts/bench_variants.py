"""PyNET-V2 Mobile and its NoNorm / Slim / Slim+ variants side by side: our latency and
compute ratios next to the paper's (issue 22, item 5).

    .venv/bin/python scripts/bench_variants.py                      # table, FullHD tile, ~4 min on 2 cores
    .venv/bin/python scripts/bench_variants.py --json --out variants.json
    .venv/bin/python scripts/bench_variants.py --size 544x960 --runtimes torch --rounds 3

The paper's figures: Ignatov et al., "PyNET-V2 Mobile: Efficient On-Device Photo Processing
With Neural Networks" (ICPR 2022), Table IV: one 12 MP photo on the MediaTek Dimensity
1000+ GPU (Mali-G77, TFLite GPU delegate): NoNorm 1227 ms, Slim 961 ms, Slim+ 808 ms, the
original model 1492 ms (the same 1492 ms as its Table I on that GPU).

Ours: every variant runs at one fixed RAW tile size (default 1088x1920, the MAI 2021
FullHD deployment shape) in FP32 on the host: PyTorch (CPU), and the model exported once
to ONNX (``edge_isp.converters.onnx_export``) run by ONNX Runtime (CPU EP) and by OpenVINO
(CPU, f32 inference precision). The ONNX runs are checked against PyTorch on the timed
input (max abs error in the report).

Timing on a shared machine: runs are taken in rounds, each round running every variant
once (in a rotated order). During every run the CPU taken by *other* processes is read
from /proc/stat (busy time minus this process's CPU time); a round is quiet when no run
in it saw more than ``--quiet-cores`` (0.25) of a core taken. Rounds go on until
``--rounds`` quiet ones were collected (at most ``--max-rounds``, 3x); figures come from
the quiet rounds, and the report says how many there were and how loaded the machine was
(on a 2-core box another process's load slows these runs 2-3x; when one other job keeps
a core busy, ``--threads 1 --quiet-cores 1.1`` measures on the free core). Latency is the median
over the rounds used; a ratio is the median of the per-round ratios (a variant's time over
NoNorm's in the same round). Ratios are relative to NoNorm, as in the paper's comparison.
GFLOP/MP is counted on the graph (``edge_isp.models.flops``: 2 x MACs of every conv /
linear, per megapixel of RAW).

Slim and Slim+ have no public code; ours is a reading of the paper's section IV-E (see
``edge_isp/models/pynet_v2.py``), so their ratios test that reading as much as the runtimes.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BASELINE = "pynet-v2-mobile-nonorm"
VARIANTS: tuple[str, ...] = ("pynet-v2-mobile-nonorm", "pynet-v2-mobile-slim", "pynet-v2-mobile-slim-plus",
                             "pynet-v2-mobile")
SHORT = {"pynet-v2-mobile-nonorm": "NoNorm", "pynet-v2-mobile-slim": "Slim", "pynet-v2-mobile-slim-plus": "Slim+",
         "pynet-v2-mobile": "PyNET-V2 Mobile"}
RUNTIMES: tuple[str, ...] = ("torch", "onnxruntime", "openvino")
DEFAULT_SIZE = (1088, 1920)
# A timed round counts as quiet when no run in it saw more than this much CPU taken by
# other processes (in cores); the README's figures come from quiet rounds.
QUIET_CORES = 0.25
TWELVE_MP = 12e6

PAPER: dict[str, Any] = {
    "source": "Ignatov et al., PyNET-V2 Mobile (ICPR 2022), Table IV",
    "device": "MediaTek Dimensity 1000+ GPU (Mali-G77), TFLite GPU delegate",
    "photo": "12 MP",
    "latency_ms": {"pynet-v2-mobile-nonorm": 1227, "pynet-v2-mobile-slim": 961, "pynet-v2-mobile-slim-plus": 808,
                   "pynet-v2-mobile": 1492},
}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _open_runners(runtime: str, variants: Sequence[str], size: tuple[int, int], threads: int, padding: str,
                  workdir: Path) -> dict[str, Any]:
    """One ready runner (``.run(packed) -> rgb``) per variant; all nets built with seed 0."""
    from edge_isp.models import create
    from edge_isp.runtimes.base import open_runner
    from edge_isp.runtimes.torch_rt import TorchRunner

    shape = (1, 4, size[0] // 2, size[1] // 2)
    runners: dict[str, Any] = {}
    for name in variants:
        net = create(name, seed=0, padding=padding)
        if runtime == "torch":
            runners[name] = TorchRunner(net, shape, threads=threads)
            continue
        onnx_path = workdir / f"{name}_{size[0]}x{size[1]}_{padding}.onnx"
        if not onnx_path.exists():
            from edge_isp.converters.onnx_export import export_onnx

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                export_onnx(net, shape, onnx_path)
        options = {"precision_hint": "f32"} if runtime == "openvino" else {}
        runners[name] = open_runner(runtime, onnx_path, threads=threads, **options)
    return runners


class _CpuMeter:
    """CPU used by *other* processes (and the hypervisor's steal) while one run was timed.

    Linux /proc/stat busy time minus this process's own CPU time (all its threads), over
    the wall time: 0.0 = the machine was ours, 1.0 = another process took a whole core.
    ``None`` where /proc/stat is missing.
    """

    def __init__(self) -> None:
        import os

        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _busy_s(self) -> float | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)     # idle + iowait
        return (sum(fields[:8]) - idle) / self._tick                  # user..steal

    def start(self) -> tuple[float | None, float, float]:
        return self._busy_s(), time.process_time(), time.perf_counter()

    def foreign_cores(self, mark: tuple[float | None, float, float]) -> float | None:
        busy0, own0, wall0 = mark
        busy1, own1, wall1 = self._busy_s(), time.process_time(), time.perf_counter()
        if busy0 is None or busy1 is None or wall1 <= wall0:
            return None
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / (wall1 - wall0))


def _time_round_robin(runners: dict[str, Any], x: Any, rounds: int, warmup: int, max_rounds: int,
                      quiet_cores: float) -> list[dict[str, tuple[float, float | None]]]:
    """Timed rounds, each running every variant once (rotated order): [{name: (ms, foreign cores)}].

    Rounds go on until ``rounds`` of them were quiet (no run saw more than ``quiet_cores``
    of other load) or ``max_rounds`` were run.
    """
    names = list(runners)
    for name in names:
        for _ in range(warmup):
            runners[name].run(x)
    meter = _CpuMeter()
    done: list[dict[str, tuple[float, float | None]]] = []
    while len(done) < max_rounds and len(_quiet(done, quiet_cores)) < rounds:
        r = len(done)
        one: dict[str, tuple[float, float | None]] = {}
        for name in names[r % len(names):] + names[:r % len(names)]:
            mark = meter.start()
            t0 = time.perf_counter_ns()
            runners[name].run(x)
            ms = (time.perf_counter_ns() - t0) / 1e6
            one[name] = (ms, meter.foreign_cores(mark))
        done.append(one)
    return done


def _quiet(rounds: list[dict[str, tuple[float, float | None]]], quiet_cores: float) -> list[int]:
    return [i for i, one in enumerate(rounds)
            if all(f is not None and f <= quiet_cores for _, f in one.values())]


def run(size: tuple[int, int] = DEFAULT_SIZE, runtimes: Sequence[str] = RUNTIMES, rounds: int = 5, warmup: int = 1,
        threads: int = 2, padding: str = "reflect", variants: Sequence[str] = VARIANTS,
        workdir: Path | None = None, log: Callable[[str], None] = _log, max_rounds: int | None = None,
        quiet_cores: float = QUIET_CORES) -> dict[str, Any]:
    """Measure every variant on every runtime; the report as a JSON-ready dict.

    Up to ``max_rounds`` (default 3 x ``rounds``) are run to collect ``rounds`` quiet ones
    (see ``_time_round_robin``); the figures come from the quiet rounds, or from all rounds
    (flagged ``"quiet": false``) when there were too few. A variant's ratio is the median
    over those rounds of its time / NoNorm's time *in the same round*, so load that comes
    and goes between rounds cancels.
    """
    import numpy as np

    from edge_isp.bench import LatencyStats, machine_info
    from edge_isp.models import resolve_input_size
    from edge_isp.errors import EdgeIspError, InputError
    from edge_isp.models import model_info, params_of
    from edge_isp.models.flops import model_flops

    if BASELINE not in variants:
        raise InputError(f"the variants must include the baseline {BASELINE}")
    max_rounds = 3 * rounds if max_rounds is None else max_rounds
    if rounds < 1 or warmup < 0 or max_rounds < rounds:
        raise InputError("rounds must be >= 1, warmup >= 0 and max_rounds >= rounds")
    unknown = sorted(set(runtimes) - set(RUNTIMES))
    if unknown:
        raise InputError(f"unknown runtime(s) {', '.join(unknown)}; choose from {', '.join(RUNTIMES)}")
    size = tuple(int(v) for v in size)  # type: ignore[assignment]
    for name in variants:
        model_info(name)
        resolve_input_size(name, size)  # every variant must accept the one tile size

    rows: dict[str, dict[str, Any]] = {}
    for name in variants:
        cost = model_flops(name, size, padding=padding)
        rows[name] = {"model": name, "variant": SHORT.get(name, name), "params": params_of(name, padding=padding),
                      "gflop_per_raw_mp": cost.gflop_per_raw_mp, "gflop_per_tile": cost.flops / 1e9,
                      "paper_ms": PAPER["latency_ms"].get(name), "runtimes": {}}
    base = rows[BASELINE]
    for row in rows.values():
        row["flop_ratio"] = row["gflop_per_raw_mp"] / base["gflop_per_raw_mp"]
        row["paper_ratio"] = (row["paper_ms"] / base["paper_ms"]) if row["paper_ms"] is not None else None

    x = np.random.default_rng(0).random((1, 4, size[0] // 2, size[1] // 2), dtype=np.float32)
    reference_out: dict[str, Any] = {}
    runtime_status: dict[str, dict[str, Any]] = {}
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="edge-isp-variants-")
        workdir = Path(tmp.name)
    try:
        for runtime in runtimes:
            log(f"[{runtime}] loading {len(variants)} variants at {size[0]}x{size[1]} ...")
            t0 = time.perf_counter()
            try:
                runners = _open_runners(runtime, variants, size, threads, padding, Path(workdir))
            except EdgeIspError as exc:
                if runtime == "torch":
                    raise
                runtime_status[runtime] = {"status": "skipped", "reason": str(exc)}
                log(f"[{runtime}] skipped: {exc}")
                continue
            load_s = time.perf_counter() - t0
            log(f"[{runtime}] loaded in {load_s:.1f} s; {warmup} warm-up, then timed rounds until {rounds} "
                f"are quiet (at most {max_rounds})")
            timed = _time_round_robin(runners, x, rounds, warmup, max_rounds, quiet_cores)
            quiet = _quiet(timed, quiet_cores)
            used = quiet if len(quiet) >= rounds else list(range(len(timed)))
            foreign = [f for i in used for _, f in timed[i].values() if f is not None]
            for name, runner in runners.items():
                out = runner.run(x)
                entry: dict[str, Any] = {}
                if runtime == "torch":
                    reference_out[name] = out
                elif name in reference_out:
                    entry["max_abs_err_vs_torch"] = float(np.abs(out - reference_out[name]).max())
                ms = [timed[i][name][0] for i in used]
                stats = LatencyStats.of(ms)
                entry.update({"median_ms": stats.median, "min_ms": stats.min, "mean_ms": stats.mean,
                              "ratio": float(np.median([timed[i][name][0] / timed[i][BASELINE][0] for i in used])),
                              "samples_ms": [round(v, 2) for v in ms],
                              "ms_per_12mp_est": stats.median * TWELVE_MP / (size[0] * size[1])})
                rows[name]["runtimes"][runtime] = entry
            runtime_status[runtime] = {
                "status": "ok", "load_s": round(load_s, 2), "rounds_run": len(timed), "rounds_used": len(used),
                "quiet": len(quiet) >= rounds,
                "foreign_cores_mean": round(float(np.mean(foreign)), 3) if foreign else None,
                "foreign_cores_max": round(float(np.max(foreign)), 3) if foreign else None}
            log(f"[{runtime}] {len(quiet)} of {len(timed)} round(s) quiet (other load <= {quiet_cores} core); "
                f"figures from {len(used)}")
            log("  " + ", ".join(f"{SHORT.get(n, n)} {rows[n]['runtimes'][runtime]['median_ms']:.0f} ms"
                                 for n in variants))
            del runners
            gc.collect()
    finally:
        if tmp is not None:
            tmp.cleanup()

    return {
        "tile_mosaic_hw": list(size), "tile_megapixels": size[0] * size[1] / 1e6, "threads": threads,
        "rounds": rounds, "warmup": warmup, "padding": padding, "precision": "fp32", "baseline": BASELINE,
        "quiet_cores": quiet_cores, "max_rounds": max_rounds,
        "latency": f"one {size[0]}x{size[1]} RAW tile; median over the rounds used (quiet ones if {rounds} were "
                   "quiet); ratio = median over those rounds of time / NoNorm's time in the same round",
        "flops": "2 x multiply-accumulates of every conv / linear in one forward pass, per megapixel of RAW "
                 "mosaic (edge_isp.models.flops)",
        "ms_per_12mp_est": "median_ms x 12 MP / tile MP (no tiling overhead)",
        "paper": PAPER, "runtimes": runtime_status, "variants": list(rows.values()), "machine": machine_info(),
    }


def format_table(report: dict[str, Any]) -> str:
    """The report as a plain-text table (ratios vs NoNorm)."""
    done = [r for r, s in report["runtimes"].items() if s["status"] == "ok"]
    h, w = report["tile_mosaic_hw"]
    lines = [
        (f"PyNET-V2 Mobile variants: ours on this host ({report['machine']['cpu']}, {report['threads']} thread(s), "
         f"FP32, {h}x{w} RAW tile, medians over {report['rounds']}+ round-robin rounds) vs the paper "
         f"({report['paper']['device']}, 12 MP). Ratios are relative to NoNorm (ours: median of the "
         "per-round ratios)."),
    ]
    head = ["variant", "params", "GFLOP/MP", "FLOP ratio", "paper ms", "paper ratio"]
    for rt in done:
        head += [f"{rt} ms", f"{rt} ratio"]
    table = [head]
    for row in report["variants"]:
        cells = [row["variant"], f"{row['params']:,}", f"{row['gflop_per_raw_mp']:.1f}", f"{row['flop_ratio']:.3f}",
                 "-" if row["paper_ms"] is None else str(row["paper_ms"]),
                 "-" if row["paper_ratio"] is None else f"{row['paper_ratio']:.3f}"]
        for rt in done:
            e = row["runtimes"][rt]
            cells += [f"{e['median_ms']:.0f}", f"{e['ratio']:.3f}"]
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    for i, r in enumerate(table):
        lines.append("  ".join(c.ljust(wd) if j == 0 else c.rjust(wd) for j, (c, wd) in enumerate(zip(r, widths))))
        if i == 0:
            lines.append("  ".join("-" * wd for wd in widths))
    for rt, s in report["runtimes"].items():
        if s["status"] != "ok":
            lines.append(f"{rt}: skipped ({s['reason']})")
        else:
            load = "n/a" if s["foreign_cores_mean"] is None else f"{s['foreign_cores_mean']:.2f} core mean, " \
                f"{s['foreign_cores_max']:.2f} max"
            lines.append(f"{rt}: figures from {s['rounds_used']} of {s['rounds_run']} rounds "
                         f"({'quiet' if s['quiet'] else 'NOT quiet: too few quiet rounds, all used'}: other load <= "
                         f"{report['quiet_cores']:g} core in every quiet run); "
                         f"other processes' CPU during them: {load}")
    errs = {rt: max(r["runtimes"][rt].get("max_abs_err_vs_torch", 0.0) for r in report["variants"])
            for rt in done if rt != "torch"}
    if errs:
        lines.append("ONNX outputs vs PyTorch, worst max abs error: "
                     + ", ".join(f"{rt} {e:.1e}" for rt, e in errs.items()))
    if "torch" in done:
        base = next(r for r in report["variants"] if r["model"] == report["baseline"])
        lines.append(f"PyTorch NoNorm at this tile -> ~{base['runtimes']['torch']['ms_per_12mp_est'] / 1000:.1f} s "
                     "per 12 MP photo (scaled by pixels, no tiling overhead)")
    lines.append("GFLOP/MP = 2 x MACs per megapixel of RAW mosaic (instance norm, activations and resizes "
                 "are not counted, so NoNorm and the reference count the same).")
    return "\n".join(lines)


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW (RAW mosaic), e.g. 1088x1920, got {text!r}") from None
    return h, w


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=_size, default=DEFAULT_SIZE, help="RAW mosaic tile HxW (default 1088x1920)")
    ap.add_argument("--runtimes", default=",".join(RUNTIMES), help=f"comma list of {', '.join(RUNTIMES)}")
    ap.add_argument("--rounds", type=int, default=5, help="quiet timed round-robin rounds wanted (default 5)")
    ap.add_argument("--max-rounds", type=int, help="stop after this many rounds, quiet or not (default 3 x rounds)")
    ap.add_argument("--quiet-cores", type=float, default=QUIET_CORES,
                    help=f"a round is quiet if other processes took at most this many cores (default {QUIET_CORES})")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs per variant first (default 1)")
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads per runtime (default 2)")
    ap.add_argument("--padding", choices=("reflect", "zero"), default="reflect",
                    help="model padding option for all variants (default reflect, the reference)")
    ap.add_argument("--json", action="store_true", help="print the report as JSON instead of the table")
    ap.add_argument("--out", type=Path, help="also write the JSON report to this file")
    args = ap.parse_args(argv)

    from edge_isp.errors import EdgeIspError

    try:
        report = run(args.size, [r for r in args.runtimes.split(",") if r], args.rounds, args.warmup, args.threads,
                     args.padding, max_rounds=args.max_rounds, quiet_cores=args.quiet_cores)
    except EdgeIspError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code if hasattr(exc, "exit_code") else 1
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
