"""Shared fixtures: where the real RAW samples live, and cached conversions per session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The user's cache folder (measured model plans) stays out of the suite: one per test session,
# inherited by the CLI subprocesses the tests start.
os.environ.setdefault("EDGE_ISP_CACHE", tempfile.mkdtemp(prefix="edge-isp-test-cache-"))
# The real RAW captures, kept in the repository (tests/data/raw, with their licences) so
# the suite runs on a bare clone (copies of the project's shared samples).
SHARED_RAW = Path(__file__).resolve().parent / "data" / "raw"


@pytest.fixture(scope="session")
def shared_raw() -> Path:
    """The real RAW captures in tests/data/raw."""
    if not SHARED_RAW.is_dir():
        pytest.fail(f"{SHARED_RAW} is missing: the repository is incomplete")
    return SHARED_RAW


@pytest.fixture(scope="session")
def toolchain_env(tmp_path_factory):
    """``toolchain_env("rknn")`` -> the toolchain's env: the user's if installed, else installed
    once into a session temp folder (where the installed ones stay visible through links)."""
    import os

    from edge_isp import toolchains

    root: list[Path] = []

    def get(name: str) -> Path:
        st = toolchains.status(name)
        if st.installed:
            return st.path
        if not root:
            root.append(tmp_path_factory.mktemp("toolchains"))
            for other in toolchains.list_toolchains():
                if other.installed:
                    (root[0] / other.name).symlink_to(other.path, target_is_directory=True)
            os.environ["EDGE_ISP_TOOLCHAINS"] = str(root[0])
        st = toolchains.install(name)
        assert st.installed and st.version, st
        return st.path

    return get


@pytest.fixture()
def config(tmp_path, monkeypatch):
    """A private edge-isp config folder (ADB keys, remembered binaries) for one test."""
    monkeypatch.setenv("EDGE_ISP_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path / "config"


@pytest.fixture(scope="session", autouse=True)
def _conversion_log():
    """With EDGE_ISP_TEST_CONVERT_LOG=FILE, one JSON line per conversion the suite makes (test,
    model, target, size, seconds): how the suite finds conversions it makes twice."""
    path = os.environ.get("EDGE_ISP_TEST_CONVERT_LOG")
    if not path:
        yield
        return
    import json
    import time

    from edge_isp.converters import pipeline

    real = pipeline.convert

    def logged(opts, *args, **kwargs):
        t0 = time.perf_counter()
        ok = False
        try:
            result = real(opts, *args, **kwargs)
            ok = True
            return result
        finally:
            row = {"test": os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0], "model": opts.model,
                   "target": opts.target, "size": opts.input_size, "tiling": opts.tiling, "route": opts.route,
                   "fit": opts.fit, "keep_float": opts.keep_float, "calib": opts.calib_samples,
                   "verify": opts.verify_samples, "ok": ok, "s": round(time.perf_counter() - t0, 1)}
            with open(path, "a") as f:
                f.write(json.dumps(row, default=str) + "\n")

    pipeline.convert = logged
    yield
    pipeline.convert = real
