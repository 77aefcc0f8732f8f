"""``edge-isp bench``: host benchmarks of one or more bundles, side by side, stored."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from edge_isp.commands._common import JsonFlag, err, out, parse_hw, print_json
from edge_isp.errors import InputError

app = typer.Typer()


@app.command()
def bench(
    bundles: Optional[list[str]] = typer.Argument(None, help="Bundle folders (or registry model names, run in PyTorch); default: every bundle under edge-isp-out/."),
    device: str = typer.Option("local", "--device", "-d", help="Where to run: 'local' (this host)."),
    runs: Optional[int] = typer.Option(None, "--runs", "-n", help="Timed runs (default 20, or as many as fit in --time-budget)."),
    time_budget: Optional[float] = typer.Option(None, "--time-budget", help="Seconds of timed runs per bundle."),
    warmup: int = typer.Option(3, "--warmup", help="Untimed runs first."),
    rigour: str = typer.Option("quick", "--rigour", help="quick (--runs / --time-budget) | mlperf (MLPerf Mobile single-stream: >= 1024 runs and >= 60 s per bundle, p90 with a 95% confidence interval)."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", help="CPU threads (XNNPACK / OpenVINO / ORT / torch)."),
    runtime: Optional[str] = typer.Option(None, "--runtime", help="Override the bundle's runtime (e.g. tflite-runtime)."),
    input_size: Optional[str] = typer.Option(None, "--input-size", help="RAW HxW for model names (default: the bundles')."),
    results: Optional[Path] = typer.Option(None, "--results", help="Results store (default $EDGE_ISP_RESULTS or ./edge-isp-results.sqlite)."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not record the results."),
    as_json: bool = JsonFlag,
) -> None:
    """Benchmark bundles on this host: latency stats, fps, load time, peak RSS; stored for 'gate'."""
    from edge_isp._names import lookup
    from edge_isp.bench import RIGOURS, bench_many, machine_info, store_results

    lookup(RIGOURS, rigour, "rigour")         # before any work

    if device != "local":
        raise InputError(f"--device {device!r}: 'bench' runs on this host only (--device local); "
                         "use 'edge-isp profile --device ...' for phones and boards")
    if not bundles:
        bundles = sorted(str(p.parent) for p in Path("edge-isp-out").glob("*/manifest.json"))
        if not bundles:
            raise InputError("nothing to benchmark: pass bundle folders, or make one with 'edge-isp convert' "
                             "(bundles under ./edge-isp-out are found by default)")
    if runs is None and time_budget is None:
        runs = 20
    kwargs = dict(runs=runs, time_budget_s=time_budget, warmup=warmup, threads=threads, runtime=runtime,
                  input_size=parse_hw(input_size, "--input-size"), rigour=rigour)
    if as_json:
        found = bench_many(bundles, **kwargs)
    else:
        with err.status("benchmarking") as status:
            status.update(f"benchmarking {bundles[0]}")
            found = bench_many(bundles, on_done=lambda r: status.update(f"done {r.name}"), **kwargs)
    ids = [] if no_store else store_results(found, results, device=device)
    if as_json:
        print_json({"machine": machine_info(), "results": [r.to_dict() for r in found], "stored_ids": ids})
        return
    m = found[0].machine
    table = Table(title=f"host bench: {m['cpu']} ({m['usable_cores']}/{m['logical_cores']} cores)")
    for col in ("bundle", "runtime", "prec", "input", "thr", "load ms", "mean", "median", "p90", "p90 95% CI", "p99",
                "min", "stdev", "fps", "GFLOP/s", "% peak", "peak RSS MB", "runs"):
        table.add_column(col, justify="left" if col in ("bundle", "runtime", "prec", "input") else "right")
    for r in found:
        s = r.latency_ms
        table.add_row(Path(r.name).name, r.runtime, r.precision or "",
                      f"{r.mosaic_hw[0]}x{r.mosaic_hw[1]}", str(r.threads or f"{r.threads_used}*"),
                      f"{r.load_time_ms:.0f}", f"{s.mean:.1f}", f"{s.median:.1f}", f"{s.p90:.1f}",
                      f"{s.p90_ci_low:.1f}-{s.p90_ci_high:.1f}" if s.p90_ci_low is not None else "-", f"{s.p99:.1f}",
                      f"{s.min:.1f}", f"{s.stdev:.1f}", f"{r.throughput_fps:.1f}",
                      f"{r.gflops:.1f}" if r.gflops is not None else "-",
                      f"{100 * r.peak_share:.0f}" if r.peak_share is not None else "-", f"{r.peak_rss_mb:.0f}", str(r.runs))
    out.print(table)
    peak = next((r.peak_gflops for r in found if r.peak_gflops), None)
    if rigour != "quick":
        out.print(f"rigour {rigour}: {RIGOURS[rigour].summary}; timed {', '.join(f'{r.timed_s:.0f} s' for r in found)}",
                  style="dim")
    out.print("latency in ms; thr* = the runtime's default thread count; GFLOP/s = 2 x MACs counted on the graph"
              + (f" / mean latency; % peak of this machine's measured SGEMM peak ({peak:.0f} GFLOP/s, best seen)"
                 if peak else ""), style="dim")
    if ids:
        from edge_isp.results import ResultsStore

        out.print(f"stored {len(ids)} result(s) in {ResultsStore(results).path}", style="dim")
