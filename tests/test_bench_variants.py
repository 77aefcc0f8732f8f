"""scripts/bench_variants.py: the PyNET-V2 Mobile variants side by side with the paper's
Table IV, run small. No timed assertions (latency on a busy 2-core box flakes): the
structure, the arithmetic of the ratios, the outputs of the ONNX runs, and the compute
order of the variants are checked."""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_variants.py"
SMALL = (128, 192)          # the smallest tile every variant takes (Slim: packed >= 56, multiple of 8)


def _script():
    spec = importlib.util.spec_from_file_location("bench_variants", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_variant_benchmark_small(benchmark, tmp_path):
    bv = _script()
    rounds = 2
    report = benchmark.pedantic(bv.run, kwargs={"size": SMALL, "rounds": rounds, "max_rounds": rounds, "warmup": 1,
                                                "workdir": tmp_path, "log": lambda _msg: None},
                                rounds=1, iterations=1)
    benchmark.extra_info["variants"] = {r["model"]: {rt: e["median_ms"] for rt, e in r["runtimes"].items()}
                                        for r in report["variants"]}

    assert report["tile_mosaic_hw"] == list(SMALL) and report["baseline"] == "pynet-v2-mobile-nonorm"
    assert report["runtimes"]["torch"]["status"] == "ok"
    ran = [rt for rt, s in report["runtimes"].items() if s["status"] == "ok"]
    assert {"torch", "onnxruntime", "openvino"} <= set(ran), report["runtimes"]   # all installed in the venv
    rows = {r["model"]: r for r in report["variants"]}
    assert list(rows) == list(bv.VARIANTS)
    base = rows["pynet-v2-mobile-nonorm"]

    # the paper's Table IV, normalised to NoNorm
    assert [rows[n]["paper_ms"] for n in bv.VARIANTS] == [1227, 961, 808, 1492]
    assert rows["pynet-v2-mobile-slim"]["paper_ratio"] == pytest.approx(961 / 1227)
    assert rows["pynet-v2-mobile-slim-plus"]["paper_ratio"] == pytest.approx(808 / 1227)

    # compute: ordered as the paper's latencies (NoNorm > Slim > Slim+), the reference equal to
    # NoNorm (instance norm is no MAC), ratios consistent with the counts
    g = {n: rows[n]["gflop_per_raw_mp"] for n in rows}
    assert g["pynet-v2-mobile-nonorm"] > g["pynet-v2-mobile-slim"] > g["pynet-v2-mobile-slim-plus"] > 0
    assert g["pynet-v2-mobile"] == pytest.approx(g["pynet-v2-mobile-nonorm"])
    paper_order = sorted(bv.VARIANTS[:3], key=lambda n: -rows[n]["paper_ms"])
    assert sorted(bv.VARIANTS[:3], key=lambda n: -rows[n]["flop_ratio"]) == paper_order
    for n, r in rows.items():
        assert r["flop_ratio"] == pytest.approx(g[n] / g["pynet-v2-mobile-nonorm"])
        assert r["gflop_per_tile"] == pytest.approx(g[n] * SMALL[0] * SMALL[1] / 1e6)
        assert r["params"] > 900_000

    for rt in ran:
        status = report["runtimes"][rt]
        assert status["rounds_run"] == status["rounds_used"] == rounds      # max_rounds == rounds: no retries
        assert status["foreign_cores_mean"] is None or 0 <= status["foreign_cores_mean"] <= status["foreign_cores_max"]
        assert base["runtimes"][rt]["ratio"] == 1.0
        for n, r in rows.items():
            e = r["runtimes"][rt]
            assert len(e["samples_ms"]) == rounds and all(s > 0 for s in e["samples_ms"])
            assert e["min_ms"] <= e["median_ms"]
            # the ratio pairs each round's time with NoNorm's in the same round
            per_round = [a / b for a, b in zip(e["samples_ms"], base["runtimes"][rt]["samples_ms"])]
            assert e["ratio"] == pytest.approx(statistics.median(per_round), rel=1e-3)
            if rt != "torch":   # the exported graph computes what PyTorch computes
                assert e["max_abs_err_vs_torch"] < 1e-4, (rt, n)

    table = bv.format_table(report)
    for word in ("NoNorm", "Slim+", "paper ratio", "torch ratio", "onnxruntime ratio", "1227", "0.783", "0.659"):
        assert word in table
    json.dumps(report)   # JSON-ready


def test_script_cli_json(tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--size", "128x192", "--runtimes", "torch", "--rounds", "1",
                           "--warmup", "0", "--json", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert json.loads(out.read_text()) == report
    assert set(report["runtimes"]) == {"torch"}
    assert [r["variant"] for r in report["variants"]] == ["NoNorm", "Slim", "Slim+", "PyNET-V2 Mobile"]
    assert all(set(r["runtimes"]) == {"torch"} for r in report["variants"])


@pytest.mark.parametrize(("args", "words"), [
    (["--size", "136x192", "--runtimes", "torch"], "multiples of 16"),   # Slim's alignment, said up front
    (["--size", "64x96", "--runtimes", "torch"], "too small"),
    (["--runtimes", "tensorrt"], "unknown runtime"),
])
def test_script_refuses_what_it_cannot_run(args, words, capsys):
    assert _script().main(args) == 3
    assert words in capsys.readouterr().err


def test_rounds_go_on_until_enough_are_quiet(monkeypatch):
    """Fake runners and a fake load meter: loaded rounds are retried, up to max_rounds."""
    bv = _script()
    calls: list[str] = []

    class Runner:
        def __init__(self, name):
            self.name = name

        def run(self, x):
            calls.append(self.name)

    loads = iter([0.0, 0.9, 0.0,   # round 0: one run saw another process take 0.9 core
                  0.1, 0.0, 0.2,   # round 1: quiet
                  None, 0.0, 0.0,  # round 2: unknown load is not quiet
                  0.0, 0.0, 0.0])  # round 3: quiet
    monkeypatch.setattr(bv._CpuMeter, "start", lambda self: None)
    monkeypatch.setattr(bv._CpuMeter, "foreign_cores", lambda self, mark: next(loads))
    runners = {n: Runner(n) for n in ("a", "b", "c")}
    timed = bv._time_round_robin(runners, None, rounds=2, warmup=1, max_rounds=10, quiet_cores=0.25)
    assert len(timed) == 4 and bv._quiet(timed, 0.25) == [1, 3]
    assert calls[:3] == ["a", "b", "c"]                           # warm-up
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]   # rotated rounds
    assert timed[0]["b"][1] == 0.9 and all(ms >= 0 for one in timed for ms, _ in one.values())

    loads = iter([1.0] * 6)
    capped = bv._time_round_robin(runners, None, rounds=1, warmup=0, max_rounds=2, quiet_cores=0.25)
    assert len(capped) == 2 and bv._quiet(capped, 0.25) == []


def test_cpu_meter_reads_this_machine():
    bv = _script()
    meter = bv._CpuMeter()
    mark = meter.start()
    sum(i * i for i in range(200_000))                              # our own CPU is not "foreign"
    f = meter.foreign_cores(mark)
    if Path("/proc/stat").exists():
        # /proc/stat counts in jiffies: over a short window one tick is a large fraction of a
        # core, so only the sign and the order of magnitude are checkable here.
        assert f is not None and 0.0 <= f <= 4 * (os.cpu_count() or 1)
