"""Host benchmarks: measured figures, side-by-side runs, storage, and the pytest plugin."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_isp.bench import (
    RIGOURS,
    LatencyStats,
    Rigour,
    bench,
    bench_many,
    bench_runner,
    machine_info,
    quantile_ci,
    time_runs,
)
from edge_isp.cli import app
from edge_isp.errors import InputError
from edge_isp.results import ResultsStore

from test_runtimes import MOSAIC, converted

cli = CliRunner()


def test_latency_stats() -> None:
    s = LatencyStats.of([10.0, 20.0, 30.0, 40.0, 50.0])
    assert (s.mean, s.median, s.min, s.max) == (30.0, 30.0, 10.0, 50.0)
    assert s.p90 == pytest.approx(46.0) and s.p99 == pytest.approx(49.6)
    assert s.stdev == pytest.approx(15.8113883)
    assert LatencyStats.of([7.0]).stdev == 0.0
    with pytest.raises(InputError):
        LatencyStats.of([])


def test_time_runs_counts_and_budget() -> None:
    calls = []
    assert len(time_runs(lambda: calls.append(1), runs=7)) == 7 == len(calls)
    samples = time_runs(lambda: None, runs=None, time_budget_s=0.05, min_runs=3)
    assert len(samples) >= 3 and all(s >= 0 for s in samples)
    with pytest.raises(InputError):
        time_runs(lambda: None, runs=0)


def test_p90_confidence_interval_is_distribution_free_and_covers_the_true_value() -> None:
    # Exponential latencies (skewed, like real ones): true p90 = ln(10) * scale.
    true_p90 = np.log(10.0) * 5.0
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(400):
        lo, hi = quantile_ci(rng.exponential(5.0, 1024), 0.90)
        assert lo < hi
        covered += lo <= true_p90 <= hi
    assert 0.92 <= covered / 400 <= 0.99                 # a 95 % interval, not a 50 % or 100 % one
    assert quantile_ci(np.arange(10.0), 0.90) is None    # too few runs: no interval rather than a wrong one
    s = LatencyStats.of(list(rng.exponential(5.0, 1024)))
    assert s.p90_ci_low <= s.p90 <= s.p90_ci_high


def test_mlperf_rigour_sets_floors_on_runs_and_time() -> None:
    assert (RIGOURS["mlperf"].min_runs, RIGOURS["mlperf"].min_duration_s) == (1024, 60.0)
    import time

    floors = Rigour("test", min_runs=50, min_duration_s=0.2, summary="")
    t0 = time.perf_counter()
    samples = time_runs(lambda: None, runs=5, rigour=floors)          # asked 5: the floors win
    assert len(samples) >= 50 and time.perf_counter() - t0 >= 0.2
    assert len(time_runs(lambda: None, runs=5)) == 5                   # no rigour: as asked
    result = cli.invoke(app, ["bench", "pynet-v2-mobile", "--rigour", "mlperff", "--no-store"])
    assert result.exit_code != 0 and "unknown rigour 'mlperff'" in str(result.exception or result.output)


def test_machine_info() -> None:
    m = machine_info()
    assert m["cpu"] and m["logical_cores"] >= 1 and 1 <= m["usable_cores"] <= m["logical_cores"]


def test_bench_a_real_bundle_records_every_figure() -> None:
    r = bench(converted("onnx-fp32"), runs=4, warmup=1, threads=1)
    assert r.runtime == "onnxruntime" and r.target == "onnx-fp32" and r.mosaic_hw == MOSAIC
    assert r.runs == 4 and len(r.samples_ms) == 4 and r.threads == 1 and r.threads_used == 1
    m = r.metrics()
    for key in ("latency_ms.mean", "latency_ms.median", "latency_ms.p90", "latency_ms.p99", "latency_ms.min",
                "latency_ms.stdev", "throughput_fps", "load_time_ms", "peak_rss_mb", "first_run_ms"):
        assert key in m and np.isfinite(m[key]), key
    assert m["latency_ms.min"] <= m["latency_ms.median"] <= m["latency_ms.p99"]
    assert m["throughput_fps"] == pytest.approx(1000.0 / m["latency_ms.mean"], rel=1e-3)
    assert m["peak_rss_mb"] > 0 and m["load_time_ms"] > 0
    assert "onnxruntime" in r.tools and r.machine["cpu"]
    meas = r.to_measurement(commit="abc")
    assert meas.kind == "bench" and meas.device == "local" and meas.bundle_sha256 and meas.commit == "abc"


def test_bench_many_side_by_side_with_the_pytorch_reference() -> None:
    seen = []
    results = bench_many([converted("onnx-fp32"), converted("openvino-fp32"), "pynet-v2-mobile"],
                         runs=2, warmup=1, on_done=seen.append)
    assert [r.runtime for r in results] == ["onnxruntime", "openvino", "torch"] and seen == results
    assert results[2].mosaic_hw == MOSAIC          # the model runs at the bundles' size


def test_bench_runner_with_a_loaded_runner() -> None:
    from edge_isp.runtimes.bundle_runner import open_model

    r = bench_runner(open_model("pynet-v2-mobile", (64, 96)), runs=None, time_budget_s=0.01, warmup=1, min_runs=2)
    assert r.runs >= 2 and r.target == "torch-fp32"


def test_cli_bench_stores_results(tmp_path: Path) -> None:
    store = tmp_path / "r.sqlite"
    result = cli.invoke(app, ["bench", str(converted("onnx-fp32")), "--runs", "3", "--warmup", "1",
                              "--results", str(store), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["stored_ids"] == [1] and data["results"][0]["metrics"]["runs"] == 3
    (m,) = ResultsStore(store).query()
    assert m.target == "onnx-fp32" and m.runtime == "onnxruntime" and "latency_ms.p90" in m.metrics
    assert m.extra["machine"]["cpu"] and m.extra["threads"] is None
    table = cli.invoke(app, ["bench", str(converted("onnx-fp32")), "--runs", "2", "--no-store"])
    assert table.exit_code == 0 and "onnxruntime" in table.output and len(ResultsStore(store)) == 1
    bad = cli.invoke(app, ["bench", str(converted("onnx-fp32")), "--device", "pixel"])
    assert bad.exit_code != 0


def test_pytest_plugin_fixture(tmp_path: Path) -> None:
    bundle = converted("onnx-fp32")
    (tmp_path / "test_speed.py").write_text(textwrap.dedent(f"""
        def test_speed(isp_bench):
            r = isp_bench({str(bundle)!r}, rounds=3, warmup=1)
            assert r.runs == 3 and r.latency_ms.p90 > 0 and r.runtime == "onnxruntime"

        def test_runner_cache(isp_runner):
            assert isp_runner({str(bundle)!r}) is isp_runner({str(bundle)!r})
    """))
    store = tmp_path / "plugin.sqlite"
    from importlib.metadata import entry_points

    installed = any(ep.value.startswith("edge_isp.pytest_plugin") for ep in entry_points(group="pytest11"))
    load = [] if installed else ["-p", "edge_isp.pytest_plugin"]     # the pytest11 entry point, once installed
    for extra in (["--benchmark-disable"], ["--benchmark-json", str(tmp_path / "bm.json")]):
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", *load, "-p", "no:cacheprovider",
             "--isp-results", str(store), "--rootdir", str(tmp_path), "-c", "/dev/null", *extra,
             str(tmp_path / "test_speed.py")],
            capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = ResultsStore(store).query()
    assert len(rows) == 2 and all(r.target == "onnx-fp32" for r in rows)
    bm = json.loads((tmp_path / "bm.json").read_text())["benchmarks"][0]
    assert bm["extra_info"]["edge_isp"]["runtime"] == "onnxruntime" and bm["stats"]["rounds"] == 3


def test_bench_reports_gflops_and_the_share_of_the_machine_peak(tmp_path, monkeypatch):
    import edge_isp.machine_peak as mp
    from edge_isp.bench import bench
    from edge_isp.models.flops import model_flops

    monkeypatch.setenv("EDGE_ISP_CACHE", str(tmp_path))
    mp.measured_once.cache_clear()
    r = bench("microisp", input_size=(160, 192), runs=3, warmup=1)
    assert r.gflop_per_run == round(model_flops("microisp", (160, 192)).flops / 1e9, 3) > 0
    assert r.gflops == pytest.approx(r.gflop_per_run / (r.latency_ms.mean / 1000.0), rel=1e-2)
    assert r.peak_gflops > 0 and 0 < r.peak_share < 2 and r.metrics()["gflops"] == round(r.gflops, 4)
    mp.measured_once.cache_clear()


def test_the_machine_peak_keeps_the_best_measurement(tmp_path, monkeypatch):
    """A busy machine measures low: the cached peak only ever goes up."""
    import edge_isp.machine_peak as mp

    monkeypatch.setenv("EDGE_ISP_CACHE", str(tmp_path))
    for measured, expected in ((150.0, 150.0), (90.0, 150.0), (210.0, 210.0)):
        monkeypatch.setattr(mp, "measure_sgemm_gflops", lambda m=measured: m)
        assert mp.machine_peak().gflops == expected
    assert mp.machine_peak(measure=False).gflops == 210.0
    (tmp_path / "machine-peak.json").write_text("not json")
    assert mp.machine_peak(measure=False) is None                 # a damaged cache is ignored
