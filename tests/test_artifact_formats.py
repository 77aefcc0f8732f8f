"""The artifact-format registry: every target's format is one entry whose module does the work,
and a new TFLite route is one entry plus its module."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge_isp.converters.artifact_formats import FORMATS, TFLITE_ROUTES, check_route, format_of_file, get_format
from edge_isp.converters.targets import list_targets
from edge_isp.errors import BundleError, InputError


def test_every_target_format_is_an_entry_whose_module_builds_it():
    for target in list_targets():
        fmt = get_format(target.format)
        module = fmt.load()
        assert callable(getattr(module, "build", None)), f"{fmt.module} has no build(ctx)"
        if fmt.vendor_check is not None:
            assert callable(getattr(module, "vendor_check", None)), f"{fmt.module} has no vendor_check"
        # The runtime a target names must be one that runs its format (or the format is board-only).
        assert target.runtime in fmt.runtimes or not fmt.host_runs, (target.name, target.runtime, fmt.runtimes)
    for route in TFLITE_ROUTES.values():
        module = route.load()
        assert all(callable(getattr(module, f, None)) for f in ("build", "gaps", "available")), route.name


def test_registry_answers_the_questions_other_modules_used_to_branch_on():
    assert format_of_file(".TFLITE") == "tflite" and format_of_file(".xml") == "openvino"
    assert format_of_file(".rknn") is None                    # check does not read .rknn files bare
    assert not get_format("rknn").host_runs and "Rockchip board" in get_format("rknn").board_only
    assert get_format("openvino").stats_files == ("stats.xml", "stats.bin")
    assert {n for n, f in FORMATS.items() if f.tflite_based} == {"tflite", "vela", "litert-aot"}
    from edge_isp.converters.artifact_formats import fallback_routes

    assert fallback_routes() == ["litert-torch"]             # what auto turns to when onnx2tf would fail
    with pytest.raises(Exception, match="unknown artifact format 'tfilte'.*'tflite'"):
        get_format("tfilte")
    with pytest.raises(InputError, match="--route 'tf' is not one of auto, onnx2tf, litert-torch"):
        check_route("tf")


def test_a_bundle_naming_an_unknown_format_is_refused_clearly(tmp_path):
    from edge_isp.runtimes.bundle_runner import _bundle_format

    class Fake:
        path = tmp_path
        manifest = {"target": {"format": "tensorrt"}}

    with pytest.raises(BundleError, match="artifact format 'tensorrt', which edge-isp does not know"):
        _bundle_format(Fake())


def test_no_import_circle_and_no_private_imports_between_converters():
    """Format modules import stage types from converters/stages.py, never the pipeline's privates."""
    modules = {f.load() for f in FORMATS.values()} | {r.load() for r in TFLITE_ROUTES.values()}
    offenders = [m.__name__ for m in modules if "converters.pipeline" in Path(m.__file__).read_text()]
    assert len(modules) >= 7 and offenders == [], f"these import the pipeline: {offenders}"
    # Importing every format module first (not the pipeline) must work: no circle to hide.
    code = ("import importlib; from edge_isp.converters.artifact_formats import FORMATS, TFLITE_ROUTES\n"
            "[f.load() for f in FORMATS.values()]; [r.load() for r in TFLITE_ROUTES.values()]\n"
            "import edge_isp.converters.pipeline, edge_isp.runtimes.bundle_runner, edge_isp.converters.check")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_a_new_tflite_route_is_one_entry_plus_its_module(tmp_path, monkeypatch):
    """A plugin route (here: onnx2tf with a marker in the manifest) registered by one entry, chosen
    with --route, run through the whole conversion and recorded in the bundle."""
    from edge_isp.converters.artifact_formats import TfliteRoute
    from edge_isp.converters.pipeline import ConvertOptions, convert

    plugin = tmp_path / "plugin_pkg"
    plugin.mkdir()
    (plugin / "__init__.py").write_text("")
    (plugin / "my_route.py").write_text(textwrap.dedent('''
        from edge_isp.converters import tflite

        def gaps(ctx):
            return "--layer-report" if ctx.opts.layer_report else ""

        def available():
            return True

        def build(ctx, why):
            built = tflite.build(ctx, why)
            built.quantization["route"] = {"route": "my-route", "why": why}
            return built
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(TFLITE_ROUTES, "my-route", TfliteRoute("my-route", "plugin_pkg.my_route", "a test route"))
    result = convert(ConvertOptions(model="punet", target="cpu-fp32", input_size=(64, 64), route="my-route",
                                    calib_samples=1, verify_samples=1, output=tmp_path / "b"))
    assert result.manifest["quantization"]["route"] == {"route": "my-route", "why": "asked (--route)"}
    assert result.verification.passed
    with pytest.raises(InputError, match="--route my-route cannot take --layer-report"):
        convert(ConvertOptions(model="punet", target="cpu-fp32", input_size=(64, 64), route="my-route",
                               layer_report=True, output=tmp_path / "c"))
    assert not (tmp_path / "c").exists()
