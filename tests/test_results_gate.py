"""Results store (SQLite, concurrent writers), export, budgets and the CI gate."""

from __future__ import annotations

import json
import multiprocessing as mp
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_isp.budgets import Check, evaluate, gate, load_budgets, parse_budgets
from edge_isp.cli import app
from edge_isp.errors import InputError
from edge_isp.results import Measurement, ResultsStore, default_path, from_json, to_csv, to_json

cli = CliRunner()


def _m(target: str = "cpu-fp32", created: str | None = None, kind: str = "bench", device: str = "local",
       runtime: str = "litert", model: str = "pynet-v2-mobile", commit: str | None = None, **metrics: float) -> Measurement:
    kw = {"created": created} if created else {}
    return Measurement(model=model, target=target, runtime=runtime, device=device, kind=kind,
                       metrics={k.replace("__", "."): v for k, v in metrics.items()}, commit=commit, **kw)


# ------------------------------------------------------------------------------ store

def test_store_round_trip_filters_and_latest(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "sub" / "r.sqlite")
    assert store.query() == [] and len(store) == 0
    a = _m(created="2026-01-01T00:00:00+00:00", latency_ms__p90=100.0)
    b = _m(created="2026-01-02T00:00:00+00:00", latency_ms__p90=90.0, commit="abc123")
    c = _m("openvino-int8", runtime="openvino", created="2026-01-03T00:00:00+00:00", latency_ms__p90=50.0)
    d = _m("cpu-fp32", kind="profile", device="pixel-7", created="2026-01-04T00:00:00+00:00", power_w=2.5)
    store.add(a)
    ids = store.add_many([b, c, d])
    assert a.id == 1 and ids == [2, 3, 4] and len(store) == 4
    assert [m.id for m in store.query(target="cpu-fp32")] == [1, 2, 4]
    assert [m.id for m in store.query(target="cpu-fp32", latest=True)] == [2, 4]
    assert [m.id for m in store.query(kind="profile")] == [4] and store.query(device="pixel-7")[0].metrics == {"power_w": 2.5}
    assert [m.id for m in store.query(commit="abc123")] == [2]
    assert [m.id for m in store.query(since="2026-01-03")] == [3, 4]
    assert [m.id for m in store.query(limit=2)] == [3, 4]
    got = store.get(2)
    assert got.metrics == {"latency_ms.p90": 90.0} and got.commit == "abc123" and got.created == b.created
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_measurement_validation() -> None:
    with pytest.raises(InputError, match="kind"):
        Measurement("m", "t", "r", "d", kind="guess")
    with pytest.raises(InputError, match="not a number"):
        Measurement("m", "t", "r", "d", metrics={"latency_ms.p90": "fast"})
    import datetime as dt

    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert Measurement("m", "t", "r", "d", created=when).created == "2026-01-02T03:04:05.000000+00:00"
    m = Measurement("m", "t", "r", "d", metrics={"peak_rss_mb": 12})
    assert m.metrics["peak_rss_mb"] == 12.0 and isinstance(m.metrics["peak_rss_mb"], float)


def test_default_path_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGE_ISP_RESULTS", str(tmp_path / "x.sqlite"))
    assert default_path() == tmp_path / "x.sqlite" and ResultsStore().path == tmp_path / "x.sqlite"
    monkeypatch.delenv("EDGE_ISP_RESULTS")
    assert default_path() == Path("edge-isp-results.sqlite")


def _writer(args: tuple[str, int, int]) -> int:
    path, worker, n = args
    store = ResultsStore(path)
    for i in range(n):
        store.add(_m(device=f"ci-{worker}", latency_ms__p90=float(i)))
    return n


def test_concurrent_writers_do_not_corrupt_or_lose_rows(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")      # created by the racing writers themselves
    with mp.get_context("spawn").Pool(3) as pool:
        assert sum(pool.map(_writer, [(path, w, 40) for w in range(3)])) == 120
    store = ResultsStore(path)
    assert len(store) == 120
    latest = store.query(latest=True)
    assert sorted(m.device for m in latest) == ["ci-0", "ci-1", "ci-2"]
    assert all(m.metrics["latency_ms.p90"] == 39.0 for m in latest)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_export_csv_json(tmp_path: Path) -> None:
    rows = [_m(latency_ms__p90=1.5, peak_rss_mb=10.0), _m("openvino-int8", psnr_db=41.0)]
    rows[0].extra = {"threads": 2}
    text = to_csv(rows)
    header, first, second = text.strip().splitlines()
    assert header.split(",")[-4:] == ["latency_ms.p90", "peak_rss_mb", "psnr_db", "extra"]
    assert ",1.5,10.0,," in first and second.split(",")[-2] == "41.0"
    back = from_json(to_json(rows))
    assert [m.metrics for m in back] == [m.metrics for m in rows] and back[0].extra == {"threads": 2}


def test_cli_results_list_filter_export(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "r.sqlite")
    store.add_many([_m(latency_ms__median=10.0), _m("openvino-int8", runtime="openvino", latency_ms__median=5.0)])
    listed = cli.invoke(app, ["results", "--results", str(store.path), "--target", "openvino-int8"])
    assert listed.exit_code == 0 and "openvino-int8" in listed.output and "cpu-fp32" not in listed.output
    as_json = cli.invoke(app, ["results", "--results", str(store.path), "--json"])
    assert [d["target"] for d in json.loads(as_json.stdout)] == ["cpu-fp32", "openvino-int8"]
    out = tmp_path / "export.csv"
    exported = cli.invoke(app, ["results", "--results", str(store.path), "--export", "csv", "-o", str(out)])
    assert exported.exit_code == 0 and out.read_text().count("\n") == 3
    empty = cli.invoke(app, ["results", "--results", str(tmp_path / "none.sqlite")])
    assert empty.exit_code == 0 and "no results store" in empty.output
    bad = cli.invoke(app, ["results", "--results", str(store.path), "--kind", "nope"])
    assert isinstance(bad.exception, InputError)       # main() turns it into one line + exit 2


# ---------------------------------------------------------------------------- budgets

def test_check_parsing() -> None:
    c = Check.parse("latency_ms.p90 <= 700")
    assert (c.metric, c.op, c.value, c.uses_baseline) == ("latency_ms.p90", "<=", 700.0, False)
    r = Check.parse("latency_ms.median <= baseline * 1.10")
    assert r.uses_baseline and r.limit(100.0) == pytest.approx(110.0)
    assert Check.parse("psnr_db >= baseline - 0.5").limit(40.0) == 39.5
    assert Check.parse("x < 1.1 * baseline").limit(10.0) == pytest.approx(11.0)
    assert Check.parse("x == baseline").limit(3.0) == 3.0
    for bad in ("latency fast", "latency_ms.p90 <= soon", "<= 3"):
        with pytest.raises(InputError):
            Check.parse(bad)


def test_budget_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no budgets"):
        parse_budgets({})
    with pytest.raises(InputError, match="unknown key"):
        parse_budgets({"budget": [{"model": "m", "chekcs": ["a <= 1"]}]})
    with pytest.raises(InputError, match="no checks"):
        parse_budgets({"budget": [{"model": "m"}]})
    bad = tmp_path / "b.toml"
    bad.write_text("[[budget]\n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_budgets(bad)
    with pytest.raises(InputError, match="no such budgets"):
        load_budgets(tmp_path / "missing.toml")


BUDGETS = """
[defaults]
device = "local"

[[budget]]
name = "fp32 host"
model = "pynet-v2-mobile"
target = "cpu-fp32"
checks = [
  "latency_ms.p90 <= {p90}",
  "peak_rss_mb <= 900",
  "latency_ms.median <= baseline * 1.10",
]

[[budget]]
model = "pynet-v2-mobile"
target = "openvino-int8"
checks = ["psnr_db >= 40"]
optional = {optional}
"""


def _store_with_history(path: Path) -> ResultsStore:
    store = ResultsStore(path)
    store.add_many([
        _m(created="2026-01-01T00:00:00+00:00", latency_ms__p90=600.0, latency_ms__median=500.0, peak_rss_mb=400.0),
        _m(created="2026-01-02T00:00:00+00:00", latency_ms__p90=650.0, latency_ms__median=520.0, peak_rss_mb=410.0),
        _m(device="pixel-7", created="2026-01-03T00:00:00+00:00", latency_ms__p90=9999.0),   # other device
    ])
    return store


def test_gate_passes_and_fails_on_budgets_written_here(tmp_path: Path) -> None:
    store = _store_with_history(tmp_path / "r.sqlite")
    ok_file = tmp_path / "ok.toml"
    ok_file.write_text(BUDGETS.format(p90=700, optional="true"))
    report = gate(ok_file, results=store.path, junit=tmp_path / "ok.xml", json_path=tmp_path / "ok.json")
    assert report.passed, report.to_json()
    statuses = {(r.target, r.check): r.status for r in report.results}
    assert statuses[("openvino-int8", "psnr_db >= 40")] == "skipped"
    p90 = next(r for r in report.results if r.metric == "latency_ms.p90")
    assert (p90.value, p90.limit, p90.margin) == (650.0, 700.0, 50.0) and p90.margin_pct == pytest.approx(7.142857, 1e-4)
    base = next(r for r in report.results if r.metric == "latency_ms.median")
    assert base.baseline_value == 500.0 and base.limit == pytest.approx(550.0) and base.status == "pass"
    assert json.loads((tmp_path / "ok.json").read_text())["passed"] is True

    tight = tmp_path / "tight.toml"
    tight.write_text(BUDGETS.format(p90=640, optional="false"))
    report = gate(tight, results=store.path, junit=tmp_path / "t.xml", json_path=tmp_path / "t.json")
    assert not report.passed
    assert report.counts == {"pass": 2, "fail": 1, "missing": 1, "skipped": 0}
    failed = next(r for r in report.results if r.status == "fail")
    assert failed.metric == "latency_ms.p90" and failed.margin == -10.0 and "breaks" in failed.message
    missing = next(r for r in report.results if r.status == "missing")
    assert missing.target == "openvino-int8" and "no stored result matches" in missing.message
    suite = ET.parse(tmp_path / "t.xml").getroot()
    assert suite.get("tests") == "4" and suite.get("failures") == "1" and suite.get("errors") == "1"
    assert len(suite.findall("testcase/failure")) == 1 and len(suite.findall("testcase/error")) == 1


def test_gate_regression_against_the_previous_run_and_a_baseline_file(tmp_path: Path) -> None:
    store = _store_with_history(tmp_path / "r.sqlite")
    store.add(_m(created="2026-01-05T00:00:00+00:00", latency_ms__p90=690.0, latency_ms__median=600.0,
                 peak_rss_mb=420.0))            # median +15% over the previous run
    budgets = parse_budgets({"budget": [{"model": "pynet-v2-mobile", "target": "cpu-fp32", "device": "local",
                                         "checks": ["latency_ms.median <= baseline * 1.10"]}]})
    (r,) = evaluate(budgets, store.query()).results
    assert r.status == "fail" and r.baseline_value == 520.0 and r.value == 600.0
    # A baseline exported from main (JSON) instead of the previous run.
    baseline = tmp_path / "main.json"
    baseline.write_text(to_json([_m(latency_ms__median=580.0)]))
    (r,) = evaluate(budgets, store.query(), baseline=str(baseline)).results
    assert r.status == "pass" and r.baseline_value == 580.0
    # No baseline at all: says so, and fails.
    only = ResultsStore(tmp_path / "one.sqlite")
    only.add(_m(latency_ms__median=1.0))
    (r,) = evaluate(budgets, only.query()).results
    assert r.status == "missing" and "no baseline" in r.message
    (r,) = evaluate(budgets, store.query(), baseline=str(tmp_path / "absent.json")).results
    assert r.status == "missing" and "does not exist" in r.message


def test_gate_with_wildcard_filters_checks_every_series(tmp_path: Path) -> None:
    rows = [_m("cpu-fp32", latency_ms__p90=100.0), _m("gpu-fp16", latency_ms__p90=300.0),
            _m("cpu-fp32", kind="profile", device="pixel", power_w=3.0)]
    budgets = parse_budgets({"budget": [{"model": "pynet-v2-mobile", "kind": "bench",
                                         "checks": ["latency_ms.p90 <= 200"]}]})
    results = evaluate(budgets, rows).results
    assert sorted((r.target, r.status) for r in results) == [("cpu-fp32", "pass"), ("gpu-fp16", "fail")]


def test_cli_gate_exit_codes_and_reports(tmp_path: Path) -> None:
    store = _store_with_history(tmp_path / "r.sqlite")
    ok_file, bad_file = tmp_path / "ok.toml", tmp_path / "bad.toml"
    ok_file.write_text(BUDGETS.format(p90=700, optional="true"))
    bad_file.write_text(BUDGETS.format(p90=640, optional="false"))
    ok = cli.invoke(app, ["gate", "--budgets", str(ok_file), "--results", str(store.path),
                          "--junit", str(tmp_path / "j.xml"), "--json-out", str(tmp_path / "g.json")])
    assert ok.exit_code == 0, ok.output
    assert "PASSED" in ok.output and "PASS" in ok.output and (tmp_path / "j.xml").is_file()
    bad = cli.invoke(app, ["gate", "--budgets", str(bad_file), "--results", str(store.path)])
    assert bad.exit_code == 1 and "FAILED" in bad.output and "FAIL" in bad.output
    assert "no stored result matches" in bad.output                # says clearly what had no result
    as_json = cli.invoke(app, ["gate", "--budgets", str(bad_file), "--results", str(store.path), "--json"])
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["counts"]["fail"] == 1
    nostore = cli.invoke(app, ["gate", "--budgets", str(ok_file), "--results", str(tmp_path / "none.sqlite")])
    assert isinstance(nostore.exception, InputError) and "no such results store" in str(nostore.exception)
