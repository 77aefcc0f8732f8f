"""open_subject: one resolution of "what to run" for bench, process, eval, verify and the pytest plugin.

Fast: PyTorch runners at small sizes, no conversion (a bundle is checked for routing only).
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from edge_isp.errors import BundleError, EdgeIspError, InputError, UnknownNameError  # noqa: E402
from edge_isp.models.pretrained import DEFAULT, DEFAULT_MODEL, load_default  # noqa: E402
from edge_isp.models.weights import weights_sha256  # noqa: E402
from edge_isp.runtimes import subject as subject_module  # noqa: E402
from edge_isp.runtimes.subject import open_subject  # noqa: E402

SIZE = (64, 96)  # RAW mosaic: small enough for a quick PyTorch runner


def test_the_default_model_is_defined_once() -> None:
    from edge_isp.converters import pipeline

    assert pipeline.DEFAULT_MODEL is DEFAULT_MODEL == DEFAULT.name     # a re-export, not a copy


def test_a_registry_name_opens_that_model_in_pytorch() -> None:
    loaded = open_subject("pynet-v2-mobile", input_size=SIZE, threads=1)
    assert (loaded.model, loaded.runtime, loaded.target, loaded.mosaic_hw) == ("pynet-v2-mobile", "torch",
                                                                               "torch-fp32", SIZE)
    assert loaded.origin.kind == "model" and loaded.origin.weights is None and loaded.warning is None
    assert loaded.net is not None and loaded.run(loaded.example_input()).shape == (1, 3, *SIZE)


def test_none_opens_the_trained_default_model() -> None:
    loaded = open_subject(None, input_size=SIZE)
    assert loaded.model == DEFAULT_MODEL and loaded.runtime == "torch"
    assert loaded.origin.kind == "default" and loaded.origin.weights == "packaged"
    assert loaded.origin.options == DEFAULT.options and loaded.warning is None
    assert weights_sha256(loaded.net) == weights_sha256(load_default())


def test_default_weights_by_name_are_the_packaged_ones() -> None:
    loaded = open_subject(DEFAULT_MODEL, weights="default", input_size=SIZE)
    assert loaded.origin.weights == "packaged" and loaded.origin.options == DEFAULT.options
    assert weights_sha256(loaded.net) == weights_sha256(load_default())
    with pytest.raises(InputError, match="no packaged weights"):
        open_subject("pynet-v2-mobile", weights="default", input_size=SIZE)


def test_the_default_model_runs_untrained_with_a_warning_when_its_weights_are_unavailable(monkeypatch) -> None:
    def broken(*_a, **_k):
        raise InputError("the packaged asset x.pt is missing")

    monkeypatch.setattr(subject_module, "load_pretrained", broken)
    loaded = open_subject(None, input_size=SIZE)
    assert loaded.model == DEFAULT_MODEL and loaded.origin.weights is None
    assert "unavailable" in loaded.warning and "untrained" in loaded.warning
    # Asked for explicitly, the same failure is an error, not a warning.
    with pytest.raises(EdgeIspError):
        open_subject(None, weights=Path("missing.pt"), input_size=SIZE)


@pytest.mark.parametrize("what", ["./nope/bundle", "nope.pt", Path("nope")])
def test_a_missing_path_fails_in_one_useful_line(what) -> None:
    with pytest.raises(InputError, match="no such bundle folder or checkpoint file") as info:
        open_subject(what)
    message = str(info.value)
    assert "\n" not in message and str(what) in message and "training checkpoint (.pt)" in message


def test_an_unknown_name_says_what_to_pass() -> None:
    with pytest.raises(UnknownNameError, match="not a bundle folder, a checkpoint file or a registry model") as info:
        open_subject("pynet-v2-mobil")
    assert "did you mean 'pynet-v2-mobile" in str(info.value)


def test_a_pytorch_subject_rejects_another_runtime() -> None:
    with pytest.raises(InputError, match="runs in PyTorch"):
        open_subject("pynet-v2-mobile", runtime="openvino", input_size=SIZE)


def test_a_folder_opens_as_a_bundle(tmp_path: Path, monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(subject_module, "open_bundle", lambda path, **kw: calls.append((path, kw)) or "runner")
    assert open_subject(tmp_path, threads=2, runtime="tflite-runtime", input_size=SIZE) == "runner"
    assert calls == [(tmp_path, {"threads": 2, "runtime": "tflite-runtime", "warmup": 0})]
    with pytest.raises(InputError, match="brings its own model"):
        open_subject(tmp_path, weights="w.pt")


def test_a_folder_that_is_not_a_bundle_says_so(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match="not an edge-isp bundle"):
        open_subject(str(tmp_path))


def test_a_training_checkpoint_opens_its_model(tmp_path: Path) -> None:
    from edge_isp.models import create

    net = create("microisp", seed=3)
    path = tmp_path / "best.pt"
    torch.save({"model_name": "microisp", "model_options": {}, "model": net.state_dict(), "step": 7}, path)
    loaded = open_subject(str(path), input_size=(160, 160))
    assert loaded.model == "microisp" and loaded.runtime == "torch"
    assert loaded.origin.kind == "checkpoint" and loaded.origin.step == 7 and loaded.origin.path == path
    assert weights_sha256(loaded.net) == weights_sha256(net)
    with pytest.raises(InputError, match="brings its own model"):
        open_subject(path, options={"width": 8})


def test_process_bench_and_the_pytest_plugin_resolve_alike(monkeypatch) -> None:
    from edge_isp.bench import bench
    from edge_isp.process import load_runner
    from edge_isp.pytest_plugin import _RunnerCache

    assert load_runner().origin.kind == "default"
    with pytest.raises(InputError, match="no such bundle folder"):
        load_runner(bundle="nope")                      # --bundle is a path, never a model name
    with pytest.raises(InputError, match="no such bundle folder"):
        bench("./nope")
    cache = _RunnerCache()
    a = cache("pynet-v2-mobile", input_size=SIZE)
    assert cache("pynet-v2-mobile", input_size=SIZE) is a and a.origin.kind == "model"
