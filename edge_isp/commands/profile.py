"""``edge-isp profile``: run bundles on a phone or board; latency, memory, power, fps/W."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from edge_isp.commands._common import JsonFlag, err, out, print_json
from edge_isp.errors import InputError

app = typer.Typer()


@app.command()
def profile(
    bundles: list[Path] = typer.Argument(..., help="Bundle folders made by 'edge-isp convert'."),
    device: Optional[str] = typer.Option(None, "--device", "-d", help="Profile name or alias (pixel, jetson, ...) or 'local'."),
    serial: Optional[str] = typer.Option(None, "--serial", "-s", help="ADB device: USB serial or HOST:PORT."),
    host: Optional[str] = typer.Option(None, "--host", help="SSH board: [USER@]HOST[:PORT]."),
    transport: str = typer.Option("auto", "--transport", help="auto | adb-shell | adb | ssh | local."),
    benchmark_binary: Optional[Path] = typer.Option(None, "--benchmark-binary", help="LiteRT benchmark_model for the device's ABI (wins over the remembered one; remembered once it has run)."),
    runner: str = typer.Option("auto", "--runner", help="auto | benchmark_model | python (litert_runner.py on boards)."),
    python: Optional[str] = typer.Option(None, "--python", help="Python on the board: runs litert_runner.py with it instead of a benchmark_model (default python3 for --runner python)."),
    runs: int = typer.Option(50, "--runs", help="Timed runs (benchmark_model --num_runs)."),
    warmup: int = typer.Option(1, "--warmup", help="Warm-up runs."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU/XNNPACK threads."),
    min_secs: Optional[float] = typer.Option(None, "--min-secs", help="Run for at least this long (power needs a few seconds)."),
    max_secs: float = typer.Option(150.0, "--max-secs", help="Stop the timed runs after this long."),
    sample_hz: float = typer.Option(10.0, "--sample-hz", help="Power/memory sampling rate."),
    idle_s: float = typer.Option(3.0, "--idle-s", help="Idle baseline measured right before each run (s)."),
    baseline: str = typer.Option("report", "--baseline", help="report: power_w is the gross draw; subtract: power_w is above idle."),
    power_source: Optional[str] = typer.Option(None, "--power-source", help="odpm | battery | hwmon (default: profile order)."),
    cooldown_s: float = typer.Option(0.0, "--cooldown-s", help="Wait up to this long between models."),
    cooldown_temp: Optional[float] = typer.Option(None, "--cooldown-temp", help="... until the hottest zone is <= this (C)."),
    nnapi_accelerator: Optional[str] = typer.Option(None, "--nnapi-accelerator", help="Override the profile's NNAPI accelerator name."),
    nnapi_preference: Optional[str] = typer.Option(None, "--nnapi-preference", help="fast_single_answer | sustained_speed | low_power."),
    require_full: bool = typer.Option(False, "--require-full-delegation", help="Fail when the delegate does not take the whole model."),
    workdir: Optional[str] = typer.Option(None, "--workdir", help="Folder on the device (default /data/local/tmp/edge-isp)."),
    device_id: Optional[str] = typer.Option(None, "--device-id", help="Device name stored with the results (default: the profile)."),
    results: Optional[Path] = typer.Option(None, "--results", "-r", help="Results store (default $EDGE_ISP_RESULTS or ./edge-isp-results.sqlite)."),
    store: bool = typer.Option(True, "--store/--no-store", help="Write the results to the store."),
    adb_server_port: Optional[int] = typer.Option(None, "--adb-server-port", help="adb server port (adb -P)."),
    as_json: bool = JsonFlag,
) -> None:
    """Push bundles to a device, run them with the target's delegate and report latency, memory, power, fps/W."""
    from edge_isp.devices.discovery import select_device
    from edge_isp.devices.harness import ProfileOptions, profile_bundles

    if baseline not in ("report", "subtract"):
        raise InputError(f"--baseline {baseline!r} is not 'report' or 'subtract'")
    if runner not in ("auto", "benchmark_model", "python"):
        raise InputError(f"--runner {runner!r} is not auto, benchmark_model or python")
    opts = ProfileOptions(
        runs=runs, warmup_runs=warmup, threads=threads, min_secs=min_secs, max_secs=max_secs, sample_hz=sample_hz,
        idle_s=idle_s, baseline=baseline, power_source=power_source, cooldown_s=cooldown_s,
        cooldown_temp_c=cooldown_temp, nnapi_accelerator=nnapi_accelerator, nnapi_preference=nnapi_preference,
        require_full_delegation=require_full, runner=runner, benchmark_binary=benchmark_binary, workdir=workdir,
        device_id=device_id, python=python,
    )
    results_store = commit = None
    if store:
        from edge_isp.results import ResultsStore, detect_commit

        results_store = ResultsStore(results)
        commit = detect_commit()
    dev = select_device(device, serial=serial, host=host, transport=transport, adb_server_port=adb_server_port)
    say = (lambda m: err.print(f"[dim]{m}[/]", highlight=False)) if not as_json else (lambda m: None)
    say(f"device: {dev.info.label} via {dev.info.transport}, profile {dev.profile.name if dev.profile else '-'}")
    progress = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                        TransferSpeedColumn(), console=err, transient=True, disable=as_json)
    task = {"id": None}

    def on_push(done: int, total: int) -> None:
        if task["id"] is None:
            task["id"] = progress.add_task("pushing", total=total)
        progress.update(task["id"], completed=done, total=total)
        if done >= total:
            progress.remove_task(task["id"])
            task["id"] = None

    def on_result(run) -> None:
        for w in run.warnings:
            err.print(f"[yellow]warning:[/] {run.model}/{run.target}: {w}", highlight=False)

    try:
        with progress:
            report = profile_bundles(dev, bundles, opts, store=results_store, commit=commit, log=say,
                                     progress=on_push, on_result=on_result)
    finally:
        dev.close()
    if as_json:
        print_json([{"model": r.model, "target": r.target, "runtime": r.runtime, "runner": r.runner,
                     "device": r.device_id, "metrics": r.metrics, "warnings": r.warnings, "stored_id": r.stored_id,
                     "extra": r.extra}
                    for r in report.runs])
        return
    table = Table(title=f"{dev.info.label}: profile {dev.profile.name if dev.profile else '-'}")
    for col in ("model", "target", "runner", "latency ms", "init ms", "peak RSS MB", "power W", "idle W",
                "J/frame", "fps/W", "temp C"):
        table.add_column(col, justify="left" if col in ("model", "target", "runner") else "right")

    def f(m: dict, key: str, fmt: str = ".2f") -> str:
        return format(m[key], fmt) if key in m else "-"

    for r in report.runs:
        m = r.metrics
        lat = f"{m['latency_ms.mean']:.2f} ± {m.get('latency_ms.std', 0):.2f}" if "latency_ms.mean" in m else "-"
        temp = (f"{m['temp_c.before']:.1f}->{m['temp_c.after']:.1f}" if "temp_c.before" in m and "temp_c.after" in m
                else "-")
        table.add_row(r.model, r.target, r.runtime, lat, f(m, "init_ms", ".1f"), f(m, "peak_rss_mb", ".1f"),
                      f(m, "power_w", ".3f"), f(m, "power_w.idle", ".3f"), f(m, "energy_j_per_frame", ".4g"),
                      f(m, "fps_per_w", ".3g"), temp)
    out.print(table, width=None if out.is_terminal else 200)
    for label in dict.fromkeys(r.runner for r in report.runs):
        out.print(f"runner: {label}", highlight=False, markup=False, soft_wrap=True)
    for r in report.runs:
        m = r.metrics
        if "window_latency_ms.mean" in m:
            out.print(f"{r.model}: two-pass bundle, latency is the tile part's; per window "
                      f"{m['window_latency_ms.mean']:.2f} ms (tile part + {r.extra['two_pass']['stats_runs_per_window']} "
                      f"x statistics part {m['stats_part.latency_ms.mean']:.2f} ms)", highlight=False, markup=False,
                      soft_wrap=True)
    if report.runs:
        p = report.runs[0].extra.get("power", {})
        out.print(f"power source: {p.get('source')} ({p.get('description')}), {p.get('sample_hz')} Hz, "
                  f"idle baseline {'subtracted' if opts.baseline == 'subtract' else 'reported'}")
    if report.stored:
        out.print(f"stored {len(report.stored)} result(s) in {report.results_path} (rows {', '.join(map(str, report.stored))})")
