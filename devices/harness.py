"""Profile a converted bundle on a device: push, run with the target's delegate, measure.

Android: LiteRT's ``benchmark_model`` for the device's ABI (path given once, remembered
per ABI in the config folder, ELF machine checked against the device). Linux boards: the
same binary for linux_aarch64, or ``litert_runner.py`` (this package's stand-in that
prints benchmark_model's output) with the board's own ai-edge-litert / OpenVINO.

One shell script on the device samples the power source at a fixed rate (idle baseline
first, then during the run), the benchmark process's VmHWM, thermal zones before and
after, and whether the device is on external power. Each measured model is written to
the results store at once, so a device that disconnects later keeps what was measured.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_isp.converters.bundle import Bundle, stats_files
from edge_isp.devices.benchmark import (
    BenchmarkOutput,
    BenchOptions,
    benchmark_flags,
    parse_benchmark_output,
    target_delegate,
)
from edge_isp.devices.config import remember_binary
from edge_isp.devices.device_runner import Runner, push_if_changed, setup_runner
from edge_isp.devices.discovery import ConnectedDevice
from edge_isp.devices.errors import DeviceCommandError, DeviceDisconnectedError, DeviceError
from edge_isp.devices.power import (
    CHARGING,
    CPUFREQ,
    THERMAL,
    PowerSource,
    RunLog,
    charging_warning,
    find_power_source,
    parse_run_log,
    power_over,
    sampler_functions,
)
from edge_isp.devices.transport import Progress, one_line, quote

@dataclass(frozen=True)
class CheckedBundle:
    """A bundle whose file names and model hash were checked: safe to name in a device shell."""

    bundle: Bundle
    sha256: str                          # of the model file, as computed here


def check_bundle(path: Path) -> CheckedBundle:
    """Load a bundle for a device, refusing (BundleError, before any push) a manifest whose
    names leave the folder, whose hashes are malformed or do not match its files, or whose
    target is unknown. The name and hash rules live in ``converters.bundle``."""
    from edge_isp.converters.bundle import load_bundle, verify_bundle_files
    from edge_isp.converters.targets import get_target

    bundle = load_bundle(Path(path))
    sha = verify_bundle_files(bundle)
    get_target(bundle.target)                              # an unknown target: refused now, not mid-way
    return CheckedBundle(bundle, sha)


@dataclass(frozen=True)
class ProfileOptions:
    runs: int = 50
    warmup_runs: int = 1
    threads: int | None = None
    min_secs: float | None = None
    max_secs: float | None = 150.0
    sample_hz: float = 10.0
    idle_s: float = 3.0
    baseline: str = "report"               # report | subtract
    power_source: str | None = None        # odpm | battery | hwmon (default: the profile's order)
    cooldown_s: float = 0.0                # wait between models (max), when asked
    cooldown_temp_c: float | None = None   # ... until the hottest zone is at or below this
    nnapi_accelerator: str | None = None
    nnapi_preference: str | None = None
    require_full_delegation: bool = False
    runner: str = "auto"                   # auto | benchmark_model | python
    benchmark_binary: Path | None = None   # given: wins over the remembered binary
    python: str | None = None              # given: the Python runner with this interpreter (default python3)
    workdir: str | None = None
    device_id: str | None = None
    extra_flags: tuple[str, ...] = ()
    run_timeout_s: float = 900.0


@dataclass
class DeviceRun:
    """One model measured on one device."""

    model: str
    target: str
    runtime: str
    device_id: str
    metrics: dict[str, float]
    extra: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    bundle_sha256: str | None = None
    bench_log: str = ""
    stored_id: int | None = None
    runner: str = ""                       # what produced the figures, e.g. "benchmark_model (/p, remembered)"

    def to_measurement(self, commit: str | None = None):
        from edge_isp.results import Measurement

        return Measurement(model=self.model, target=self.target, runtime=self.runtime, device=self.device_id,
                           kind="profile", metrics={k: float(v) for k, v in self.metrics.items()},
                           bundle_sha256=self.bundle_sha256, commit=commit,
                           extra={**self.extra, "warnings": self.warnings})


def _peak_rss_mb(runlog: RunLog, bench: BenchmarkOutput) -> float | None:
    """The benchmark process's peak memory: its sampled VmHWM, else the tool's own figure."""
    return runlog.vm_hwm_kb / 1024.0 if runlog.vm_hwm_kb else bench.peak_memory_mb


class Harness:
    """Runs bundles on one connected device."""

    def __init__(self, dev: ConnectedDevice, opts: ProfileOptions | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.dev = dev
        self.t = dev.transport
        self.opts = opts or ProfileOptions()
        self.log = log or (lambda _msg: None)
        android = dev.info.os == "android"
        default_wd = "/data/local/tmp/edge-isp" if android else (dev.profile.linux.get("workdir") if dev.profile
                                                                 and dev.profile.linux else "/tmp/edge-isp")
        self.workdir = self.opts.workdir or default_wd
        self._power: PowerSource | None = None
        self._runner: Runner | None = None
        self._binary_ran = False

    # -- setup ---------------------------------------------------------------------
    def prepare(self, progress: Progress | None = None) -> None:
        self.t.check(f"mkdir -p {quote(self.workdir)}/models", what=f"creating {self.workdir} on the device")
        self._runner = setup_runner(self.dev, self.workdir, self.opts, progress, self.log)
        self.log(f"runner: {self._runner.label()}")
        self._power = find_power_source(self.t, self.dev.profile, self.opts.power_source)
        self.log(f"power source: {self._power.kind} ({self._power.description})")

    def _ran(self, runner: Runner) -> None:
        """Remember a --benchmark-binary only now that it has produced figures."""
        if runner.source == "--benchmark-binary" and not self._binary_ran:
            remember_binary(runner.family, Path(runner.path))
        self._binary_ran = True

    # -- measuring -------------------------------------------------------------------
    def _script(self, bench_cmd: str) -> str:
        assert self._power is not None
        interval = 1.0 / self.opts.sample_hz
        n_idle = max(0, int(round(self.opts.idle_s * self.opts.sample_hz)))
        d = quote(self.workdir)
        return "\n".join([
            f"cd {d} || exit 90",
            sampler_functions(self._power, interval) + THERMAL + CHARGING + CPUFREQ,
            "rm -f bench.rc bench.pid bench.log",
            "charging; thermal before; cpufreq",
            f"i=0; while [ $i -lt {n_idle} ]; do sample; nap; i=$((i+1)); done",
            "read up _ < /proc/uptime",
            f"( {bench_cmd} > bench.log 2>&1 & echo $! > bench.pid; wait $!; echo $? > bench.rc ) &",
            "n=0; while [ ! -s bench.pid ] && [ $n -lt 100 ]; do sleep 0.05 2>/dev/null || sleep 1; n=$((n+1)); done",
            "pid=$(cat bench.pid 2>/dev/null)",
            "echo \"@B start $up $pid\"",
            "while [ ! -f bench.rc ]; do sample; h=$(grep VmHWM /proc/$pid/status 2>/dev/null); "
            "[ -n \"$h\" ] && echo \"@H ${h#VmHWM:}\"; nap; done",
            "read up _ < /proc/uptime",
            "echo \"@B end $up $(cat bench.rc)\"",
            "sample; nap; sample",
            "thermal after; charging",
            "echo @LOG-BEGIN; cat bench.log; echo; echo @LOG-END",
        ])

    def run_bundle(self, bundle_path: Path | CheckedBundle, progress: Progress | None = None) -> DeviceRun:
        from edge_isp.converters.targets import get_target

        # checked before anything reaches the device: names and hash end up in shell commands
        checked = bundle_path if isinstance(bundle_path, CheckedBundle) else check_bundle(Path(bundle_path))
        bundle, sha = checked.bundle, checked.sha256
        target = get_target(bundle.target)
        if self._runner is None:
            self.prepare(progress)
        assert self._runner is not None and self._power is not None
        manifest = bundle.manifest
        model = manifest.get("model")
        model_name = str((model if isinstance(model, dict) else {}).get("name", bundle.model_file.stem))
        warnings: list[str] = list(self.dev.notes)
        prof = self.dev.profile
        if prof is not None and not prof.fallback and bundle.target not in prof.targets:
            warnings.append(f"profile {prof.name} lists no accelerator for target {bundle.target} "
                            f"(it lists {', '.join(prof.targets)})")
        runner = self._runner
        runtime_name = runner.runtime
        if runtime_name.startswith("python") and bundle.model_file.suffix == ".xml":
            runtime_name = "python-openvino"          # litert_runner.py runs IR with the board's OpenVINO
        elif bundle.model_file.suffix != ".tflite" and not runtime_name.startswith("python"):
            raise DeviceCommandError(f"{bundle.model_file.name} is not a TFLite model: benchmark_model cannot run "
                                     "it; use --runner python on a board with OpenVINO")
        if runtime_name.startswith("python") and target.delegate in ("nnapi", "gpu"):
            warnings.append(f"the Python runner has no {target.delegate} delegate: {bundle.target} ran on the CPU")
        remote_dir = f"{self.workdir}/models/{sha[:12]}"        # content-addressed: pushed once
        remote_model = f"{remote_dir}/{bundle.model_file.name}"
        self.t.check(f"mkdir -p {quote(remote_dir)}")
        if push_if_changed(self.t, bundle.model_file, remote_model, progress, sha=sha):
            self.log(f"pushed {bundle.model_file.name} ({bundle.model_file.stat().st_size / 1e6:.2f} MB)")
        stats_names = stats_files(manifest)          # a two-pass bundle's statistics part (checked names)
        for name in [*manifest["artifact"].get("extra_files", []), *stats_names]:   # e.g. OpenVINO .bin weights
            push_if_changed(self.t, bundle.path / name, f"{remote_dir}/{name}", progress)
        delegate = target_delegate(target.delegate)
        what = f"{model_name} ({bundle.target}, {delegate})"
        self.log(f"running {what} on {self.dev.info.label}")
        flags, bench, runlog, bench_text = self._measure(remote_model, target, what, runtime_name)
        self._ran(runner)
        run = self._result(model_name, bundle, runtime_name, flags, bench, runlog, warnings, sha, bench_text)
        if stats_names:
            self.log(f"running the statistics part of {what}")
            part = self._measure(f"{remote_dir}/{stats_names[0]}", target, f"the statistics part of {what}",
                                 runtime_name)
            self._add_statistics_part(run, manifest, part[1], part[2])
        run.runner = runner.label(runtime_name)
        run.extra["runner_detail"] = {"label": run.runner, "source": runner.source, "path": runner.path}
        return run

    def _measure(self, remote_model: str, target: Any, what: str,
                 runtime_name: str) -> tuple[list[str], BenchmarkOutput, RunLog, str]:
        """One model file benchmarked under the power/memory sampler: (flags, output, run log, text)."""
        assert self._runner is not None
        runner = self._runner
        bopts = BenchOptions(num_runs=self.opts.runs, warmup_runs=self.opts.warmup_runs, threads=self.opts.threads,
                             min_secs=self.opts.min_secs, max_secs=self.opts.max_secs,
                             nnapi_accelerator=self.opts.nnapi_accelerator,
                             nnapi_preference=self.opts.nnapi_preference,
                             require_full_delegation=self.opts.require_full_delegation,
                             extra_flags=self.opts.extra_flags)
        flags = benchmark_flags(remote_model, target_delegate(target.delegate), target.precision,
                                self.dev.profile, bopts)
        bench_cmd = runner.prefix + " " + " ".join(shlex.quote(f) for f in flags)
        res = self.t.run(self._script(bench_cmd), timeout=self.opts.run_timeout_s + self.opts.idle_s)
        text = res.stdout
        if "@LOG-BEGIN" not in text:
            raise DeviceCommandError(f"the measuring script on {self.dev.info.label} stopped early (exit status "
                                     f"{res.exit_code}): {one_line((res.stderr or text).strip()[-300:])}",
                                     exit_code=res.exit_code, stdout=res.stdout, stderr=res.stderr)
        runlog_text, _, rest = text.partition("@LOG-BEGIN")
        bench_text = rest.rpartition("@LOG-END")[0].strip("\n")
        runlog = parse_run_log(runlog_text)
        bench = parse_benchmark_output(bench_text)
        if runlog.bench_rc not in (0, None) or not bench.complete:
            tail = one_line("\n".join((bench.errors or bench_text.strip().splitlines())[-3:]))
            hint = (f"; this is the remembered {runner.path}: pass --benchmark-binary to use another"
                    if runner.source == "remembered" else "")
            raise DeviceCommandError(f"benchmark of {what} with {runner.label(runtime_name)} "
                                     f"failed on {self.dev.info.label} (exit status {runlog.bench_rc}): {tail}{hint}",
                                     exit_code=runlog.bench_rc, stdout=bench_text)
        return flags, bench, runlog, bench_text

    def _add_statistics_part(self, run: DeviceRun, manifest: dict[str, Any], bench: BenchmarkOutput,
                             runlog: RunLog) -> None:
        """A two-pass bundle costs, per window, one tile-part run and one statistics-part run per
        global op: the window figures combine both measurements."""
        m = run.metrics
        stats = bench.metrics()
        runs_per_window = int(manifest["tiling"].get("passes", 2)) - 1
        stats_peak = _peak_rss_mb(runlog, bench)
        for key in ("latency_ms.mean", "latency_ms.min", "latency_ms.max", "latency_ms.std", "init_ms"):
            if key in stats:
                m[f"stats_part.{key}"] = stats[key]
        if stats_peak is not None:
            m["stats_part.peak_rss_mb"] = stats_peak
            m["peak_rss_mb"] = max(m.get("peak_rss_mb", 0.0), stats_peak)
        if "latency_ms.mean" in m and "latency_ms.mean" in stats:
            window = m["latency_ms.mean"] + runs_per_window * stats["latency_ms.mean"]
            m["window_latency_ms.mean"] = window
            if m.get("power_w", 0) > 0:
                m["window_energy_j"] = m["power_w"] * window / 1000.0
        if bench.delegation in ("none", "partial"):
            run.warnings.append(f"statistics part: {bench.delegation} delegation "
                                f"({bench.delegate_kernels} delegate kernels): part of it ran on the CPU")
        run.extra["two_pass"] = {"stats_runs_per_window": runs_per_window,
                                 "window_packed": manifest["tiling"].get("window_packed"),
                                 "stats_delegation": bench.delegation}

    def _result(self, model_name: str, bundle, runtime_name: str, flags: list[str], bench: BenchmarkOutput,
                runlog: RunLog, warnings: list[str], sha: str, bench_text: str) -> DeviceRun:
        assert self._power is not None
        metrics = bench.metrics()
        if runlog.vm_hwm_kb:
            metrics["vm_hwm_mb"] = runlog.vm_hwm_kb / 1024.0
        peak = _peak_rss_mb(runlog, bench)
        if peak is not None:
            metrics["peak_rss_mb"] = peak
        warnings += [f"benchmark: {e}" for e in bench.errors[:3]]
        if bench.delegation == "none":
            warnings.append(f"the {target_delegate(bundle.manifest['target'].get('delegate', ''))} delegate ran "
                            "nothing: the whole model fell back to the CPU")
        elif bench.delegation == "partial":
            warnings.append(f"partial delegation ({bench.delegate_kernels} delegate kernels): part of the model "
                            "ran on the CPU")
        if bench.peak_memory_mb and runlog.vm_hwm_kb:
            rel = abs(bench.peak_memory_mb - runlog.vm_hwm_kb / 1024.0) / max(bench.peak_memory_mb, 1e-6)
            if rel > 0.25:
                warnings.append(f"peak memory disagrees: benchmark_model {bench.peak_memory_mb:.1f} MB, "
                                f"VmHWM {runlog.vm_hwm_kb / 1024:.1f} MB")
        power_extra: dict[str, Any] = {"source": self._power.kind, "description": self._power.description,
                                       "sample_hz": self.opts.sample_hz, "baseline_mode": self.opts.baseline,
                                       "idle_samples": len(runlog.idle), "active_samples": len(runlog.active)}
        charge = charging_warning(runlog.charging)
        if charge:
            warnings.append(charge)
            power_extra["charging"] = True
        if self._power.available:
            active_window = self._timed_window(runlog, bench)
            active = power_over(self._power, active_window)
            idle = power_over(self._power, runlog.idle)
            warnings += [f"power: {n}" for n in active.notes + idle.notes]
            if active.power_w is not None and not (charge and self._power.kind == "battery"):
                gross = active.power_w
                net = gross - idle.power_w if idle.power_w is not None else None
                metrics["power_w.gross"] = gross
                if idle.power_w is not None:
                    metrics["power_w.idle"] = idle.power_w
                    metrics["power_w.net"] = net
                    if net is not None and net <= 0:
                        warnings.append("power during the run is not above the idle baseline: the reading is "
                                        "too coarse or noisy for this model; use a longer run (--min-secs)")
                use = net if self.opts.baseline == "subtract" and net is not None and net > 0 else gross
                metrics["power_w"] = use
                lat_s = metrics.get("latency_ms.mean", 0.0) / 1000.0
                if use > 0 and lat_s > 0:
                    metrics["energy_j_per_frame"] = use * lat_s
                    metrics["fps_per_w"] = (1.0 / lat_s) / use
                power_extra["rails_w"] = active.rails_w
                power_extra["window_samples"] = active.samples
            elif charge and self._power.kind == "battery":
                power_extra["skipped"] = "battery current is meaningless while on external power"
        else:
            warnings.append(f"no power figures: {self._power.description}")
        zones = list(self.dev.profile.thermal.get("zones", [])) if self.dev.profile else []

        def hottest(temps: dict[str, float]) -> float | None:
            chosen = {k: v for k, v in temps.items() if k in zones} or temps
            return max(chosen.values()) if chosen else None

        tb, ta = hottest(runlog.temps_before), hottest(runlog.temps_after)
        if tb is not None:
            metrics["temp_c.before"] = tb
        if ta is not None:
            metrics["temp_c.after"] = ta
        info = self.dev.info
        extra = {
            "device": self.dev.identity(), "runner": runtime_name, "flags": flags,
            "delegate": target_delegate(bundle.manifest["target"].get("delegate", "cpu")),
            "bundle": str(bundle.path), "power": power_extra,
            "temps_before": runlog.temps_before, "temps_after": runlog.temps_after,
            "cpufreq_khz": runlog.cpufreq_khz, "nnapi_accelerators": bench.accelerators,
            "delegation": bench.delegation, "input": bundle.manifest.get("input", {}),
            "api_level": info.api_level,
        }
        return DeviceRun(model=model_name, target=bundle.target, runtime=runtime_name,
                         device_id=self.opts.device_id or self.dev.device_id, metrics=metrics, extra=extra,
                         warnings=warnings, bundle_sha256=sha, bench_log=bench_text)

    @staticmethod
    def _timed_window(runlog: RunLog, bench: BenchmarkOutput):
        """Samples of the timed runs only: the last count x avg seconds before the benchmark ended."""
        if runlog.bench_end is None or bench.runs is None:
            return runlog.active
        start = runlog.bench_end - bench.runs.count * bench.runs.avg_us / 1e6
        window = [s for s in runlog.active if s.t >= start]
        # cumulative counters (ODPM) need the reading just before the window too
        before = [s for s in runlog.active if s.t < start]
        if before:
            window = [before[-1]] + window
        after = runlog.after[:1]
        return window + after if len(window) < 2 else window

    def cooldown(self) -> float:
        """Wait (bounded by cooldown_s) until the hottest zone is at or below cooldown_temp_c."""
        if self.opts.cooldown_s <= 0:
            return 0.0
        start = time.monotonic()
        script = THERMAL + "thermal now"
        while time.monotonic() - start < self.opts.cooldown_s:
            if self.opts.cooldown_temp_c is None:
                time.sleep(min(1.0, self.opts.cooldown_s - (time.monotonic() - start)))
                continue
            temps = parse_run_log(self.t.run(script).stdout).temps_after
            if not temps or max(temps.values()) <= self.opts.cooldown_temp_c:
                break
            time.sleep(max(0.0, min(2.0, self.opts.cooldown_s - (time.monotonic() - start))))
        return time.monotonic() - start


@dataclass
class ProfileReport:
    runs: list[DeviceRun]
    stored: list[int]
    results_path: str | None
    failed: str | None = None


def profile_bundles(dev: ConnectedDevice, bundles: Iterable[Path], opts: ProfileOptions | None = None, *,
                    store: Any = None, commit: str | None = None, log: Callable[[str], None] | None = None,
                    progress: Progress | None = None,
                    on_result: Callable[[DeviceRun], None] | None = None) -> ProfileReport:
    """Measure each bundle in turn, storing each result as soon as it exists.

    A disconnect (or any device error) after some models keeps their stored results and
    raises with a message saying which were kept.
    """
    harness = Harness(dev, opts, log)
    runs: list[DeviceRun] = []
    stored: list[int] = []
    checked = [check_bundle(Path(p)) for p in bundles]     # every bundle refused or accepted before any push
    for i, bundle in enumerate(checked):
        try:
            run = harness.run_bundle(bundle, progress)
        except DeviceError as exc:
            if runs:
                kept = ", ".join(f"{r.model}/{r.target}" + (f" (row {r.stored_id})" if r.stored_id else "")
                                 for r in runs)
                where = f" in {store.path}" if store is not None else ""
                msg = f"{exc} -- results measured before this were kept{where}: {kept}"
                if isinstance(exc, DeviceDisconnectedError):
                    raise DeviceDisconnectedError(msg, stage=exc.stage) from exc
                raise type(exc)(msg) from exc  # type: ignore[call-arg]
            raise
        if store is not None:
            run.stored_id = store.add(run.to_measurement(commit))
            stored.append(run.stored_id)
        runs.append(run)
        if on_result:
            on_result(run)
        if i + 1 < len(checked):
            waited = harness.cooldown()
            if waited:
                harness.log(f"cool-down: waited {waited:.1f} s")
    return ProfileReport(runs, stored, str(store.path) if store is not None else None)
