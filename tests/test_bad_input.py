"""Bad input, as a new user gives it: every verb, run as a real subprocess.

Each case writes its own corpus (truncated, empty and random files, broken and misspelt
TOML, a non-SQLite store, hostile manifests and file names, unwritable destinations) into
a fresh working folder, runs one command, and asserts the contract of issue #13:

- a non-zero exit with the code of the documented table (edge_isp.errors);
- exactly one line on stderr, saying what was wrong, and no traceback;
- nothing left behind and nothing of the user's deleted or changed (the folder is
  hashed before and after);
- no command ran from a file name (a canary file is never created).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge_isp.errors import EXIT_BAD_INPUT, EXIT_USAGE

# A directory where nothing can be created, even by root (CI runs as root, which ignores
# permission bits): procfs refuses new files.
UNWRITABLE = "/proc/1/edge-isp-cannot-write-here"
CANARY = "CANARY"
HOSTILE = f"a;touch {CANARY};#$(touch {CANARY})`touch {CANARY}`'\""


# ------------------------------------------------------------------------------ corpus

def _random(path: Path, size: int = 4096, seed: int = 0) -> None:
    import random

    path.write_bytes(random.Random(seed).randbytes(size))


def _user_files(folder: Path) -> None:
    """Files a user cares about: they must survive every command."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("my notes\n")
    _random(folder / "IMG_0001.CR2", 2048, seed=1)


def _bundle(folder: Path, **artifact_overrides) -> Path:
    """A structurally valid bundle (manifest + model file) with a junk model file."""
    from edge_isp.converters.bundle import SCHEMA, file_sha256

    folder.mkdir(parents=True, exist_ok=True)
    _random(folder / "model.tflite", 512, seed=2)
    artifact = {"file": "model.tflite", "extra_files": [], "sha256": file_sha256(folder / "model.tflite")}
    artifact.update(artifact_overrides)
    manifest = {"schema": SCHEMA, "model": {"name": "microisp"},
                "target": {"name": "gpu-fp16", "format": "tflite", "precision": "fp16", "runtime": "litert"},
                "artifact": artifact, "input": {}, "output": {}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _store(path: Path) -> None:
    from edge_isp.results import Measurement, ResultsStore

    ResultsStore(path).add(Measurement(model="m", target="t", runtime="litert", device="local", kind="bench",
                                       metrics={"latency_ms.median": 12.5}))


_BUDGETS_OK = '[[budget]]\nmodel = "m"\nchecks = ["latency_ms.median <= 20"]\n'


@dataclass
class Case:
    args: list[str]
    code: int
    words: str                                  # must appear in the error line (case-insensitive)
    setup: Callable[[Path], None] = lambda cwd: None
    env: dict[str, str] = field(default_factory=dict)


CASES: dict[str, Case] = {
    # --- convert: destinations (data loss), before any work
    "convert-into-user-folder": Case(["convert", "-o", "mine"], EXIT_BAD_INPUT, "not an edge-isp bundle",
                                     lambda d: _user_files(d / "mine")),
    "convert-onto-a-file": Case(["convert", "-o", "notes.txt"], EXIT_BAD_INPUT, "is a file",
                                lambda d: (d / "notes.txt").write_text("keep me\n")),
    "convert-onto-a-bundle-without-overwrite": Case(["convert", "-o", "b"], EXIT_BAD_INPUT, "--overwrite",
                                                    lambda d: _bundle(d / "b")),
    "convert-unwritable": Case(["convert", "-o", UNWRITABLE], EXIT_BAD_INPUT, "cannot write"),
    "convert-under-a-file": Case(["convert", "-o", "notes.txt/b"], EXIT_BAD_INPUT, "is a file",
                                 lambda d: (d / "notes.txt").write_text("keep me\n")),
    # --- convert: values
    "convert-unknown-model-option": Case(["convert", "-O", "bogus=1"], EXIT_BAD_INPUT, "no option 'bogus'"),
    "convert-misspelt-model-option": Case(["convert", "pynet-v2-mobile", "-O", "paddin=zero"], EXIT_BAD_INPUT,
                                          "did you mean 'padding'"),
    "convert-bad-option-value": Case(["convert", "-O", "padding=bogus"], EXIT_BAD_INPUT, "padding"),
    "convert-option-wrong-type": Case(["convert", "-O", "level=high"], EXIT_BAD_INPUT, "should be a int"),
    "convert-option-not-key-value": Case(["convert", "-O", "level"], EXIT_BAD_INPUT, "key=value"),
    "convert-keep-float-on-fp16": Case(["convert", "--target", "gpu-fp16", "--keep-float", "norm"], EXIT_BAD_INPUT,
                                       "int8 targets"),
    "convert-size-not-hxw": Case(["convert", "--input-size", "big"], EXIT_BAD_INPUT, "not HxW"),
    "convert-size-odd": Case(["convert", "--input-size", "7x7"], EXIT_BAD_INPUT, "multiples"),
    "convert-unknown-target": Case(["convert", "--target", "nnapi-int9"], EXIT_BAD_INPUT, "did you mean"),
    "convert-unknown-model": Case(["convert", "pynet-v3"], EXIT_BAD_INPUT, "unknown model"),
    "convert-io-dtype": Case(["convert", "--io-dtype", "int4"], EXIT_BAD_INPUT, "int8 or uint8"),
    "convert-zero-samples": Case(["convert", "--calib-samples", "0"], EXIT_BAD_INPUT, "at least 1"),
    "convert-soc-on-wrong-target": Case(["convert", "--soc", "SM8650"], EXIT_BAD_INPUT, "--soc"),
    "convert-empty-calib-folder": Case(["convert", "--calib", "empty"], EXIT_BAD_INPUT, "no RAW files",
                                       lambda d: (d / "empty").mkdir()),
    "convert-missing-weights": Case(["convert", "microisp", "--weights", "nope.pt"], EXIT_BAD_INPUT, "does not exist"),
    "convert-random-weights-file": Case(["convert", "microisp", "--weights", "w.pt"], EXIT_BAD_INPUT, "state dict",
                                        lambda d: _random(d / "w.pt")),
    "convert-empty-weights-file": Case(["convert", "microisp", "--weights", "w.pt"], EXIT_BAD_INPUT, "state dict",
                                       lambda d: (d / "w.pt").write_bytes(b"")),
    "convert-unknown-flag": Case(["convert", "--bogus"], EXIT_USAGE, "no such option"),
    "convert-flag-wrong-type": Case(["convert", "--calib-samples", "many"], EXIT_USAGE, "--calib-samples"),
    # --- process
    "process-output-is-a-file": Case(["process", "-o", "notes.txt"], EXIT_BAD_INPUT, "is a file",
                                     lambda d: (d / "notes.txt").write_text("keep me\n")),
    "process-unwritable": Case(["process", "-o", UNWRITABLE], EXIT_BAD_INPUT, "cannot write"),
    "process-would-overwrite": Case(["process", "-o", "out"], EXIT_BAD_INPUT, "--overwrite",
                                    lambda d: ((d / "out").mkdir(),
                                               (d / "out" / "halide_bayer_small_grbg.png").write_text("mine"))),
    "process-missing-photo": Case(["process", "nope.dng", "-o", "out"], EXIT_BAD_INPUT, "not found"),
    "process-photo-is-a-folder": Case(["process", "mine", "-o", "out"], EXIT_BAD_INPUT, "not a file",
                                      lambda d: _user_files(d / "mine")),
    "process-format": Case(["process", "-f", "gif"], EXIT_BAD_INPUT, "gif"),
    "process-bits": Case(["process", "--bits", "12"], EXIT_BAD_INPUT, "12-bit"),
    "process-not-a-bundle": Case(["process", "--bundle", "mine"], EXIT_BAD_INPUT, "not an edge-isp bundle",
                                 lambda d: _user_files(d / "mine")),
    "process-bundle-and-model": Case(["process", "--bundle", "b", "--model", "microisp"], EXIT_USAGE, "not both",
                                     lambda d: _bundle(d / "b")),
    # --- bundles: broken and hostile manifests (check, bench)
    "check-manifest-not-json": Case(["check", "b"], EXIT_BAD_INPUT, "json",
                                    lambda d: (_bundle(d / "b"), (d / "b" / "manifest.json").write_text("{oops"))),
    "check-manifest-empty": Case(["check", "b"], EXIT_BAD_INPUT, "json",
                                 lambda d: (_bundle(d / "b"), (d / "b" / "manifest.json").write_text(""))),
    "check-manifest-a-list": Case(["check", "b"], EXIT_BAD_INPUT, "schema",
                                  lambda d: (_bundle(d / "b"), (d / "b" / "manifest.json").write_text("[1, 2]"))),
    "check-manifest-wrong-schema": Case(["bench", "b"], EXIT_BAD_INPUT, "schema",
                                        lambda d: (_bundle(d / "b"), (d / "b" / "manifest.json").write_text(
                                            json.dumps({"schema": "other@9"})))),
    "check-extra-file-leaves-bundle": Case(["check", "b"], EXIT_BAD_INPUT, "plain file name",
                                           lambda d: (_bundle(d / "b", extra_files=["../notes.txt"]),
                                                      (d / "notes.txt").write_text("x"))),
    "check-absolute-extra-file": Case(["bench", "b"], EXIT_BAD_INPUT, "plain file name",
                                      lambda d: _bundle(d / "b", extra_files=["/etc/passwd"])),
    "check-hostile-model-name": Case(["check", "b"], EXIT_BAD_INPUT, "plain file name",
                                     lambda d: _bundle(d / "b", file=f"m;touch {CANARY};#\n.tflite")),
    "check-hostile-sha": Case(["bench", "b"], EXIT_BAD_INPUT, "sha-256",
                              lambda d: _bundle(d / "b", sha256=f"0000;touch {CANARY};#")),
    "check-model-missing": Case(["bench", "b"], EXIT_BAD_INPUT, "missing",
                                lambda d: (_bundle(d / "b"), (d / "b" / "model.tflite").unlink())),
    "check-junk-tflite": Case(["check", "junk.tflite", "--target", "gpu-fp16"], EXIT_BAD_INPUT, "not a TFLite model",
                              lambda d: _random(d / "junk.tflite", 64)),
    "check-empty-tflite": Case(["check", "e.tflite", "--target", "gpu-fp16"], EXIT_BAD_INPUT, "tflite",
                               lambda d: (d / "e.tflite").write_bytes(b"")),
    "check-bad-api-level": Case(["check", "b", "--target", "nnapi-fp16", "--api-level", "99"], EXIT_BAD_INPUT,
                                "api level", lambda d: _bundle(d / "b")),
    # --- results store and gate
    "results-not-sqlite": Case(["results", "-r", "store.sqlite"], EXIT_BAD_INPUT, "not an edge-isp results store",
                               lambda d: (d / "store.sqlite").write_text("not a database, my data\n" * 50)),
    "results-since": Case(["results", "--since", "banana"], EXIT_BAD_INPUT, "iso date"),
    "results-metric": Case(["results", "-r", "s.sqlite", "--metric", "latency_ms.medain"], EXIT_BAD_INPUT,
                           "did you mean 'latency_ms.median'", lambda d: _store(d / "s.sqlite")),
    "results-kind": Case(["results", "--kind", "banana"], EXIT_BAD_INPUT, "--kind"),
    "results-export-format": Case(["results", "--export", "xml"], EXIT_BAD_INPUT, "csv or json"),
    "results-export-unwritable": Case(["results", "--export", "csv", "-o", UNWRITABLE + "/x.csv"], EXIT_BAD_INPUT,
                                      "cannot write"),
    "results-export-to-a-folder": Case(["results", "--export", "csv", "-o", "mine"], EXIT_BAD_INPUT, "is a folder",
                                       lambda d: _user_files(d / "mine")),
    "results-output-without-export": Case(["results", "-o", "x.csv"], EXIT_USAGE, "--export"),
    "gate-missing-budgets": Case(["gate", "-b", "nope.toml"], EXIT_BAD_INPUT, "no such budgets file"),
    "gate-broken-toml": Case(["gate", "-b", "b.toml"], EXIT_BAD_INPUT, "not valid TOML",
                             lambda d: (d / "b.toml").write_text("[[budget]\nmodel = ")),
    "gate-misspelt-key": Case(["gate", "-b", "b.toml"], EXIT_BAD_INPUT, "chekcs",
                              lambda d: (d / "b.toml").write_text('[[budget]]\nmodel = "m"\nchekcs = ["x < 1"]\n')),
    "gate-binary-budgets": Case(["gate", "-b", "b.toml"], EXIT_BAD_INPUT, "b.toml",
                                lambda d: _random(d / "b.toml")),
    "gate-junit-unwritable": Case(["gate", "-b", "b.toml", "-r", "s.sqlite", "--junit", UNWRITABLE + "/g.xml"],
                                  EXIT_BAD_INPUT, "cannot write",
                                  lambda d: ((d / "b.toml").write_text(_BUDGETS_OK), _store(d / "s.sqlite"))),
    "gate-store-not-sqlite": Case(["gate", "-b", "b.toml", "-r", "s.sqlite"], EXIT_BAD_INPUT, "s.sqlite",
                                  lambda d: ((d / "b.toml").write_text(_BUDGETS_OK), _random(d / "s.sqlite"))),
    # --- train and eval
    "train-into-user-folder": Case(["train", "microisp", "--out", "mine", "--steps", "1"], EXIT_BAD_INPUT,
                                   "not an edge-isp training run", lambda d: _user_files(d / "mine")),
    "train-unknown-model": Case(["train", "nosuch", "--out", "run"], EXIT_BAD_INPUT, "unknown model"),
    "train-unknown-option": Case(["train", "microisp", "-O", "bogus=2", "--out", "run"], EXIT_BAD_INPUT,
                                 "no option 'bogus'"),
    "eval-missing-checkpoint": Case(["eval", "nope.pt"], EXIT_BAD_INPUT, "nope.pt"),
    # --- RAW files (more in test_raw*.py)
    "raw-info-hostile-name": Case(["raw-info", HOSTILE + ".dng"], EXIT_BAD_INPUT, ".dng",
                                  lambda d: _random(d / (HOSTILE + ".dng"))),
    "raw-info-empty-dng": Case(["raw-info", "e.dng"], EXIT_BAD_INPUT, "e.dng", lambda d: (d / "e.dng").write_bytes(b"")),
    "render-unwritable": Case(["render", "-o", UNWRITABLE + "/r.png"], EXIT_BAD_INPUT, "cannot write"),
    "render-onto-a-folder": Case(["render", "-o", "mine"], EXIT_BAD_INPUT, "folder",
                                 lambda d: _user_files(d / "mine")),
    # --- verify
    "verify-missing-photo": Case(["verify", "nope.dng"], EXIT_BAD_INPUT, "not found"),
    "verify-bundle-without-photo": Case(["verify", "b"], EXIT_BAD_INPUT, "at least one RAW photo",
                                        lambda d: _bundle(d / "b")),
    "verify-unwritable": Case(["verify", "x.dng", "-o", UNWRITABLE], EXIT_BAD_INPUT, "cannot write",
                              lambda d: _random(d / "x.dng")),
    "verify-random-photo": Case(["verify", "x.dng", "-o", "v"], EXIT_BAD_INPUT, "x.dng",
                                lambda d: _random(d / "x.dng")),
    # --- devices and toolchains (device transports: tests/test_devices_*.py)
    "devices-broken-profile-toml": Case(["devices", "--profiles"], EXIT_BAD_INPUT, "bad.toml",
                                        lambda d: ((d / "cfg" / "devices").mkdir(parents=True),
                                                   (d / "cfg" / "devices" / "bad.toml").write_text("name = [")),
                                        env={"EDGE_ISP_CONFIG_DIR": "cfg"}),
    "profile-unknown-device": Case(["profile", "b", "--device", "pixle", "--no-store"], EXIT_BAD_INPUT,
                                   "did you mean 'pixel'", lambda d: _bundle(d / "b")),
    "toolchain-install-nothing": Case(["toolchain", "install"], EXIT_USAGE, "toolchain install vela"),
    "toolchain-unknown": Case(["toolchain", "install", "velaa"], EXIT_BAD_INPUT, "vela"),
}


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` with a hash of its content."""
    snap = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        snap[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return snap


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gives_one_line_and_changes_nothing(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    cwd = tmp_path / "work"
    cwd.mkdir()
    case.setup(cwd)
    before = _snapshot(cwd)
    env = {**os.environ, "EDGE_ISP_RESULTS": str(cwd / "edge-isp-results.sqlite"),
           "EDGE_ISP_CONFIG_DIR": str(tmp_path / "config"), "COLUMNS": "80"}
    env.update({k: str(cwd / v) if k.endswith("_DIR") else v for k, v in case.env.items()})
    env.pop("EDGE_ISP_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "edge_isp.cli", *case.args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == case.code, (proc.returncode, proc.stderr)
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("error: ") and case.words.lower() in lines[0].lower(), lines[0]
    assert _snapshot(cwd) == before, "the command left files behind or changed the user's files"
    assert not (cwd / CANARY).exists() and not (Path("/tmp") / CANARY).exists()


def test_the_corpus_is_wide() -> None:
    """The issue asks for the count: keep it honest (and growing)."""
    assert len(CASES) >= 60
    verbs = {case.args[0] for case in CASES.values()}
    assert {"convert", "process", "check", "bench", "results", "gate", "train", "eval", "raw-info", "render",
            "devices", "profile", "toolchain", "verify"} <= verbs


def test_exit_code_table_is_documented() -> None:
    """README's exit-code table is the one in edge_isp.errors."""
    from edge_isp.errors import EXIT_CODES

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for code in EXIT_CODES:
        assert f"| {code} |" in readme, f"exit code {code} is not in README's table"


def test_every_error_class_maps_to_a_documented_code() -> None:
    import edge_isp.converters.check  # noqa: F401 - registers DelegationError
    import edge_isp.devices.errors  # noqa: F401
    import edge_isp.results  # noqa: F401
    import edge_isp.toolchains  # noqa: F401
    from edge_isp.errors import EXIT_CODES, EdgeIspError

    def subclasses(cls: type) -> list[type]:
        return [cls] + [s for sub in cls.__subclasses__() for s in subclasses(sub)]

    for cls in subclasses(EdgeIspError):
        assert cls.exit_code in EXIT_CODES, cls
