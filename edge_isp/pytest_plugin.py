"""pytest plugin: benchmark edge-isp bundles and models inside a project's own test suite.

Registered as a ``pytest11`` entry point, so installing edge-isp makes the fixtures
available everywhere::

    def test_fp32_speed(isp_bench):
        result = isp_bench("edge-isp-out/pynet-v2-mobile_cpu-fp32", threads=2, rounds=10)
        assert result.latency_ms.p90 < 700        # or leave limits to 'edge-isp gate'

``isp_bench`` loads the bundle (or registry model) once, warms it up, and times
``runner.run`` through pytest-benchmark's ``benchmark`` fixture when that plugin is
installed and enabled (so ``--benchmark-compare``, ``--benchmark-json`` etc. work), else
with edge-isp's own timer (also under ``--benchmark-disable``: the figures are still
measured and returned). Each call returns an :class:`edge_isp.bench.BenchResult`; with
``--isp-results PATH`` every result is also stored in the results store for ``gate``.

Options: ``--isp-results PATH``, ``--isp-device NAME`` (default ``local``),
``--isp-threads N``. Fixtures: ``isp_bench``, ``isp_runner`` (a factory that opens and
caches bundles/models for the session).

This module imports nothing heavy at import time: it is loaded in every pytest session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("edge-isp", "edge-isp benchmarks")
    group.addoption("--isp-results", default=None, metavar="PATH",
                    help="store every isp_bench result in this edge-isp results store (SQLite)")
    group.addoption("--isp-device", default="local", metavar="NAME", help="device name recorded with results")
    group.addoption("--isp-threads", default=None, type=int, metavar="N", help="default CPU threads for isp_bench")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "isp_bench: a test that benchmarks an edge-isp model (uses isp_bench)")


class _RunnerCache:
    def __init__(self) -> None:
        self._cache: dict[tuple, Any] = {}

    def __call__(self, what: Path | str | None, *, threads: int | None = None, runtime: str | None = None,
                 input_size: tuple[int, int] | None = None) -> Any:
        from edge_isp.runtimes.subject import open_subject

        key = (str(what), threads, runtime, input_size)
        if key not in self._cache:
            self._cache[key] = open_subject(what, threads=threads, runtime=runtime, input_size=input_size)
        return self._cache[key]


@pytest.fixture(scope="session")
def isp_runner() -> _RunnerCache:
    """Factory: ``isp_runner(bundle_checkpoint_or_model, threads=..., runtime=..., input_size=...)``, cached per
    session (resolved by :func:`edge_isp.runtimes.subject.open_subject`)."""
    return _RunnerCache()


@pytest.fixture
def isp_bench(request: pytest.FixtureRequest, isp_runner: _RunnerCache):
    """Benchmark a bundle or model: ``isp_bench(what, rounds=10, warmup=3, threads=None)`` -> BenchResult."""
    config = request.config
    store_path = config.getoption("--isp-results")
    device = config.getoption("--isp-device")
    default_threads = config.getoption("--isp-threads")
    try:
        benchmark = request.getfixturevalue("benchmark")
    except pytest.FixtureLookupError:
        benchmark = None
    used = {"n": 0}

    def run(what: Any, *, rounds: int = 10, warmup: int = 3, threads: int | None = None,
            runtime: str | None = None, input_size: tuple[int, int] | None = None, seed: int = 0):
        from edge_isp.bench import LatencyStats, bench_runner

        threads = threads if threads is not None else default_threads
        loaded = what if hasattr(what, "run") and hasattr(what, "input_spec") else \
            isp_runner(what, threads=threads, runtime=runtime, input_size=input_size)
        if benchmark is not None and not getattr(benchmark, "disabled", False) and used["n"] == 0:
            # pytest-benchmark allows one measurement per test: time it there, then
            # take our figures from its samples so both reports agree.
            x = loaded.example_input(seed)
            for _ in range(max(0, warmup)):
                loaded.run(x)
            benchmark.extra_info.update({"edge_isp": {"model": loaded.model, "target": loaded.target,
                                                      "runtime": loaded.runtime, "threads": loaded.threads,
                                                      "mosaic_hw": list(loaded.mosaic_hw)}})
            benchmark.pedantic(loaded.run, args=(x,), rounds=rounds, iterations=1, warmup_rounds=0)
            result = bench_runner(loaded, runs=1, warmup=0, name=str(what))
            samples = [1000.0 * s for s in benchmark.stats.stats.data] if benchmark.stats else result.samples_ms
            result.samples_ms, result.runs, result.warmup_runs = samples, len(samples), warmup
            result.latency_ms = LatencyStats.of(samples)
            result.throughput_fps = 1000.0 * result.batch / result.latency_ms.mean
        else:
            result = bench_runner(loaded, runs=rounds, warmup=warmup, name=str(what))
        used["n"] += 1
        if store_path:
            from edge_isp.bench import store_results

            store_results([result], store_path, device=device)
        return result

    return run
