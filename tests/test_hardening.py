"""Regression tests for issue #13's "must never happen again" list (device-side injection
is in tests/test_devices_hardening.py) and for output a person and a CI log can read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from edge_isp._atomic import atomic_dir, guard_folder
from edge_isp.converters.bundle import is_bundle_dir
from edge_isp.converters.verify import compare_outputs, require_passed
from edge_isp.errors import InputError, OutputError, VerificationError


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_isp.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300, **kw)


# ------------------------------------------------------------ 1. no data loss

def _user_folder(path: Path) -> dict[str, bytes]:
    path.mkdir(parents=True)
    files = {"notes.txt": b"my notes", "IMG_0001.CR2": os.urandom(1000)}
    for name, data in files.items():
        (path / name).write_bytes(data)
    return files


def test_atomic_dir_never_replaces_a_user_folder(tmp_path):
    target = tmp_path / "mine"
    files = _user_folder(target)
    with pytest.raises(OutputError, match="holds other files"):
        with atomic_dir(target) as tmp:
            (tmp / "manifest.json").write_text("{}")
    assert {p.name: p.read_bytes() for p in target.iterdir()} == files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no .partial or .old left


def test_atomic_dir_fills_an_empty_folder_and_replaces_only_what_it_may(tmp_path):
    target = tmp_path / "b"
    target.mkdir()
    with atomic_dir(target) as tmp:
        (tmp / "manifest.json").write_text('{"schema": "edge-isp/bundle@1"}')
    assert is_bundle_dir(target)
    with atomic_dir(target, may_replace=is_bundle_dir) as tmp:
        (tmp / "manifest.json").write_text('{"schema": "edge-isp/bundle@1", "n": 2}')
    assert '"n": 2' in (target / "manifest.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_guard_folder_rules(tmp_path):
    guard_folder(tmp_path / "new", kind="bundle", is_ours=is_bundle_dir, overwrite=False)
    assert not (tmp_path / "new").exists()  # a check creates nothing
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        guard_folder(tmp_path / "file", kind="bundle", is_ours=is_bundle_dir, overwrite=True)
    _user_folder(tmp_path / "mine")
    with pytest.raises(OutputError, match="not an edge-isp bundle"):
        guard_folder(tmp_path / "mine", kind="bundle", is_ours=is_bundle_dir, overwrite=True)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "mine")
    with pytest.raises(OutputError):
        guard_folder(link, kind="bundle", is_ours=is_bundle_dir, overwrite=True)


def test_process_refuses_to_replace_images_unless_asked(tmp_path):
    from edge_isp.process import plan_outputs

    src = tmp_path / "a.dng"
    src.write_bytes(b"x")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"mine")
    with pytest.raises(InputError, match="--overwrite"):
        plan_outputs([src], out, ".png")
    assert plan_outputs([src], out, ".png", overwrite=True) == [(src, out / "a.png")]
    assert (out / "a.png").read_bytes() == b"mine"  # planning writes nothing


def test_training_refuses_a_folder_that_is_not_a_run(tmp_path):
    from edge_isp.training import TrainConfig
    from edge_isp.training.trainer import Trainer

    files = _user_folder(tmp_path / "mine")
    with pytest.raises(OutputError, match="not an edge-isp training run"):
        Trainer(TrainConfig(model="microisp", out=str(tmp_path / "mine"), steps=1))
    assert {p.name: p.read_bytes() for p in (tmp_path / "mine").iterdir()} == files


# ------------------------------------------------ 4. INT8 bar on the worst sample

def test_the_bar_applies_to_the_worst_held_out_sample():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 1, (4, 3, 32, 32)).astype(np.float32)
    out = ref.copy()
    out[:3] += rng.normal(0, 0.005, out[:3].shape).astype(np.float32)   # ~46 dB
    out[3] += rng.normal(0, 0.045, out[3].shape).astype(np.float32)     # ~27 dB
    v = compare_outputs(ref, out, 30.0, "litert")
    assert v.psnr_db >= 30 > v.min_sample_psnr_db  # the mean alone would have passed
    assert not v.passed
    with pytest.raises(VerificationError, match=r"worst held-out sample 2\d\.\d dB PSNR \(mean"):
        require_passed(v, "the cpu-int8 artifact")


# --------------------------------------------------- readable output, one line

def test_tables_keep_every_value_when_not_a_terminal(tmp_path):
    proc = _cli("targets", cwd=tmp_path, env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout
    assert "pixel_shuffle=deconv" in proc.stdout and "litert-npu-google-tensor" in proc.stdout


_NOISY_APP = textwrap.dedent('''
    import os, sys, typer
    from edge_isp.commands._common import run_app, err
    from edge_isp.errors import ConversionError
    app = typer.Typer()
    @app.command()
    def go(fail: bool = False) -> None:
        os.write(2, b"E0000 cuda_dnn.cc:8579] Unable to register cuDNN factory\\n")
        err.print("progress line")
        if fail:
            raise ConversionError("onnx2tf failed")
    run_app(app)
''')


def test_native_log_noise_stays_off_stderr_unless_verbose(tmp_path):
    script = tmp_path / "noisy.py"
    script.write_text(_NOISY_APP)
    quiet = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0 and quiet.stderr == "progress line\n"
    failed = subprocess.run([sys.executable, str(script), "--fail"], capture_output=True, text=True, timeout=60)
    lines = failed.stderr.splitlines()
    assert failed.returncode == 5 and lines[0] == "progress line" and len(lines) == 2
    kept = Path(lines[1].split("converter log: ")[1].rstrip(")"))
    assert "cuDNN" in kept.read_text()
    kept.unlink()
    loud = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "EDGE_ISP_VERBOSE": "1"})
    assert "cuDNN" in loud.stderr


def test_unexpected_exceptions_are_one_line_with_exit_8(tmp_path):
    script = tmp_path / "buggy.py"
    script.write_text("import typer\nfrom edge_isp.commands._common import run_app\napp = typer.Typer()\n"
                      "@app.command()\ndef go() -> None:\n    {}['missing']\nrun_app(app)\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 8 and len(proc.stderr.splitlines()) == 1
    assert "internal error (KeyError" in proc.stderr and "EDGE_ISP_DEBUG=1" in proc.stderr
    debug = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "EDGE_ISP_DEBUG": "1"})
    assert "Traceback" in debug.stderr


def test_ctrl_c_prints_one_line_exits_130_and_leaves_nothing(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "edge_isp.cli", "convert", "microisp", "--target", "onnx-fp32",
                             "--input-size", "192x192", "-o", "b"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(4)  # inside the work (imports, model, export)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    if proc.returncode == 0:
        pytest.fail("the conversion finished before the interrupt; make it slower")
    assert proc.returncode == 130, stderr
    assert lines == ["interrupted; nothing half-written was left behind"], stderr
    assert not (tmp_path / "b").exists() and list(tmp_path.iterdir()) == []
