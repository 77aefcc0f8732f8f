"""Two-pass bundles: a statistics part and a tile part, exact at any photo size after conversion.

Fast tests drive the PyTorch parts through the same fixed-window driver the artifacts use;
slow tests convert for real (onnx2tf / OpenVINO / ONNX Runtime) and process whole photos.
The photos are synthetic with strong global structure (a gradient sky), where a window's
own statistics differ most from the photo's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_isp.errors import BundleError, InputError, UsageError  # noqa: E402
from edge_isp.models import create  # noqa: E402
from edge_isp.models.global_context import plan_for  # noqa: E402
from edge_isp.models.split_parts import (  # noqa: E402
    BAYER,
    SplitRun,
    SplitSpec,
    example_statistics,
    make_parts,
    pad_frame,
    plan_windows,
    run_split,
    split_spec,
    torch_part_fn,
)
from _photos import psnr, sky, untiled  # noqa: E402




@pytest.fixture(scope="module")
def default_net():
    from edge_isp.models.pretrained import load_default

    net = load_default().eval()                   # trained: its attention really reacts
    plan = plan_for(net, 4)
    return net, plan, split_spec(net, plan, (216, 216))


# ----------------------------------------------------------------------------- fast

@pytest.mark.parametrize("name,window", [("pynet-v2-mobile-nonorm", (216, 216)), ("pynet-v2-mobile", (216, 252))])
def test_parts_in_fixed_windows_equal_the_untiled_model(name, window):
    net = create(name, seed=0).eval()
    plan = plan_for(net, 4)
    spec = split_spec(net, plan, window)
    stats_part, tile_part = make_parts(net, plan, spec)
    packed = sky(360, 432)                       # aligned to 36: no padding, every pixel exact
    run = SplitRun()
    out = run_split(torch_part_fn(stats_part), torch_part_fn(tile_part), spec, packed, run=run)
    assert run.windows >= 4                       # really tiled
    assert run.stats_runs == run.windows * len(spec.ops) and run.tile_runs == run.windows
    assert psnr(out, untiled(net, packed)) > 100   # float rounding only


def test_windows_partition_the_frame_and_keep_their_reach(default_net):
    _, _, spec = default_net
    hw = (396, 540)
    windows = plan_windows(hw, spec)
    cover = np.zeros(hw, int)
    for w in windows:
        t, b, l, r = w.own
        cover[t:b, l:r] += 1
        assert 0 <= w.top <= hw[0] - spec.window[0] and 0 <= w.left <= hw[1] - spec.window[1]
        assert w.top <= t and b <= w.top + spec.window[0] and w.left <= l and r <= w.left + spec.window[1]
        # Context: at least the reach on every side, or the window edge is the frame edge.
        assert t - w.top >= spec.reach or w.top == 0
        assert w.top + spec.window[0] - b >= spec.reach or w.top + spec.window[0] == hw[0]
        assert l - w.left >= spec.reach or w.left == 0
        assert w.left + spec.window[1] - r >= spec.reach or w.left + spec.window[1] == hw[1]
        assert w.top % spec.align == 0 and w.left % spec.align == 0
    assert (cover == 1).all()


def test_every_path_pads_a_photo_to_the_global_alignment(default_net):
    """The photo grid: untiled reference, PyTorch two-pass and the parts all see the photo
    mirrored to the global ops' alignment, so unaligned photos are exact too."""
    from edge_isp.models.global_context import photo_multiple, run_photo
    from edge_isp.whole_photo import _reference

    net, plan, spec = default_net
    assert photo_multiple(net, 4) == spec.align == 36
    assert photo_multiple(create("punet", seed=0), 8) == 8        # no global ops: its own multiple
    packed = sky(252, 304)                # 4-aligned, not 36-aligned; bright sky at the edges
    ref = _reference(net, packed, 4)
    stats_part, tile_part = make_parts(net, plan, spec)
    assert psnr(run_split(torch_part_fn(stats_part), torch_part_fn(tile_part), spec, packed), ref) > 100
    assert psnr(run_photo(net, packed, multiple=4, block=72)[0], ref) > 100


def test_unaligned_photo_is_padded_and_cropped_back(default_net):
    net, plan, spec = default_net
    stats_part, tile_part = make_parts(net, plan, spec)
    packed = sky(252, 304)               # a multiple of the model's 4, not of the 36 px alignment
    out = run_split(torch_part_fn(stats_part), torch_part_fn(tile_part), spec, packed)
    assert out.shape == (504, 608, 3)
    # Exact against the untiled model on the frame the bundle sees (aligned by mirroring).
    frame = pad_frame(packed, spec)
    assert frame.shape[1] % spec.align == 0 and frame.shape[2] % spec.align == 0
    assert psnr(out, untiled(net, frame)[:504, :608]) > 100
    # And close to the model on the photo itself: the padding only nudges the statistics.
    assert psnr(out, untiled(net, packed)) > 40


def test_statistics_inputs_are_what_the_crop_sees(default_net):
    net, plan, spec = default_net
    x = sky(216, 216)[None]
    stats = example_statistics(net, plan, spec, x)
    assert set(stats) == set(spec.input_names) - {BAYER}
    _, tile_part = make_parts(net, plan, spec)
    feeds = {BAYER: x, **stats}
    got = torch_part_fn(tile_part)(feeds)["rgb"][0].clip(0, 1).transpose(1, 2, 0)
    assert psnr(got, untiled(net, x[0])) > 100
    # Wrong statistics change the picture: the inputs are really read.
    feeds[spec.ops[0].inputs[0]] = feeds[spec.ops[0].inputs[0]] + 0.5
    bad = torch_part_fn(tile_part)(feeds)["rgb"][0].clip(0, 1).transpose(1, 2, 0)
    assert psnr(bad, untiled(net, x[0])) < 60


def test_spec_round_trips_and_refuses_damaged_sections(default_net):
    _, _, spec = default_net
    d = json.loads(json.dumps(spec.to_dict()))
    assert SplitSpec.from_dict(d) == spec
    for broken in ({**d, "window_packed": [215, 216]}, {**d, "ops": []}, {**d, "reach_packed": "x"},
                   {k: v for k, v in d.items() if k != "align_packed"},
                   {**d, "ops": [{**d["ops"][0], "kind": "max"}]}):
        with pytest.raises(BundleError, match="two_pass|re-run"):
            SplitSpec.from_dict(broken)


def test_window_too_small_for_the_reach_is_refused_with_a_size(default_net):
    net, plan, _ = default_net
    with pytest.raises(InputError, match=r"--input-size \d+x\d+"):
        split_spec(net, plan, (144, 144))


def test_tiling_choice_follows_model_and_format():
    from edge_isp.converters.targets import get_target
    from edge_isp.converters.two_pass import choose_tiling

    attention, plain = create("pynet-v2-mobile-nonorm", seed=0), create("punet", seed=0, instance_norm=False)
    assert choose_tiling("auto", attention, get_target("cpu-fp32")) == "two-pass"
    assert choose_tiling("auto", attention, get_target("ethos-u55-int8")) == "blended"
    assert choose_tiling("blended", attention, get_target("cpu-fp32")) == "blended"
    with pytest.raises(InputError, match="two-pass bundles are built for"):
        choose_tiling("two-pass", attention, get_target("ethos-u55-int8"))
    with pytest.raises(InputError, match="choose one of"):
        choose_tiling("exact", attention, get_target("cpu-fp32"))
    assert choose_tiling("auto", plain, get_target("cpu-fp32")) == "blended"
    many = create("pynet", seed=0)                     # 124 instance norms: 125 passes per window
    assert choose_tiling("auto", many, get_target("cpu-fp32")) == "blended"
    assert choose_tiling("two-pass", many, get_target("cpu-fp32")) == "two-pass"
    with pytest.raises(InputError, match="no global ops"):
        choose_tiling("two-pass", plain, get_target("cpu-fp32"))


# ----------------------------------------------------------------------------- slow

def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_isp.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1"}, timeout=1800)


@pytest.fixture(scope="module")
def fp32_bundle(tmp_path_factory):
    from edge_isp.converters.pipeline import ConvertOptions, convert

    out = tmp_path_factory.mktemp("two_pass") / "default_cpu-fp32"
    return convert(ConvertOptions(target="cpu-fp32", input_size=(432, 432), output=out))


@pytest.mark.slow
def test_converted_parts_run_whole_photos_exactly(fp32_bundle):
    from edge_isp.models.pretrained import load_default
    from edge_isp.runtimes import open_bundle

    m = fp32_bundle.manifest
    t = m["tiling"]
    assert t["mode"] == "two-pass" and t["passes"] == 3 and t["window_packed"] == [216, 216]
    assert sorted(m["artifact"]["files_sha256"]) == ["model.tflite", "stats.tflite"]
    assert m["verification"]["passed"] and m["verification"]["parts"]["tile_part_worst_psnr_db"] > 90
    assert m["verification"]["parts"]["stats_part_max_rel_err"] < 1e-3
    assert (fp32_bundle.bundle.path / "source_stats.onnx").is_file()

    runner = open_bundle(fp32_bundle.bundle.path)
    assert runner.split is not None
    net = load_default()
    raw = _raw(sky(360, 468))                                # aligned: exact
    packed = raw.packed()
    out = runner.run_photo(packed)
    assert psnr(out, untiled(net, packed)) > 90
    # Unaligned, bright sky at the edges: exact against the untiled model on the photo grid.
    from edge_isp.whole_photo import _reference

    odd = sky(252, 304)
    assert psnr(runner.run_photo(odd), _reference(net, odd, 4)) > 90
    # process_image takes the same path; blended windows with their own statistics (what
    # one artifact gives) are far worse.
    from edge_isp.process import process_image

    assert psnr(process_image(runner, raw), out) > 120
    blended = process_image(runner, raw, two_pass=False)
    assert psnr(blended, untiled(net, packed)) < psnr(out, untiled(net, packed)) - 20


def _raw(packed: np.ndarray):
    from edge_isp.raw.cfa import unpack_bayer
    from edge_isp.raw.image import RawImage

    mosaic = np.rint(unpack_bayer(packed, "RGGB") * 65535).astype(np.uint16)
    return RawImage(mosaic, "RGGB", 0, 65535)


@pytest.mark.slow
def test_process_and_verify_use_the_two_pass_bundle(fp32_bundle, tmp_path, shared_raw):
    chart = shared_raw / "openisp_1920x1080_rggb_u16le.raw"
    layout = ["--width", "1920", "--height", "1080", "--cfa", "rggb", "--white", "1023"]
    bundle = str(fp32_bundle.bundle.path)
    done = _run_cli("process", "--bundle", bundle, str(chart), *layout, "-o", str(tmp_path / "out"), "--json",
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)["results"][0]
    assert result["ok"] and result["tiling"].startswith("two-pass") and result["tiles"] >= 6
    done = _run_cli("verify", bundle, str(chart), *layout, "--json", "-o", str(tmp_path / "diff"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    photo = json.loads(done.stdout)["photos"][0]
    assert photo["mode"].startswith("two-pass bundle")
    # 1920x1080 is not a multiple of the 36 px alignment: mirrored to it on every path, so
    # exact up to float rounding (blended windows: ~30 dB).
    assert photo["psnr_db"] >= 90 and photo["worst_tile_psnr_db"] >= 85 and photo["seam_score"] <= 1.05
    assert Path(photo["diff_png"]).is_file()


@pytest.mark.slow
def test_tampered_statistics_part_is_refused(fp32_bundle, tmp_path):
    import shutil

    from edge_isp.runtimes import open_bundle

    copy = tmp_path / "b"
    shutil.copytree(fp32_bundle.bundle.path, copy)
    with open(copy / "stats.tflite", "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(BundleError, match="stats.tflite"):
        open_bundle(copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["tiling"]["stats_artifact"]["files"] = ["../model.tflite"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="plain file name"):
        open_bundle(copy)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["onnx-fp32", "openvino-fp16"])
def test_two_pass_on_other_host_formats(target, tmp_path):
    from edge_isp.converters.pipeline import ConvertOptions, convert
    from edge_isp.runtimes import open_bundle

    result = convert(ConvertOptions(target=target, input_size=(432, 432), output=tmp_path / "b", verify_samples=2))
    assert result.manifest["tiling"]["mode"] == "two-pass" and result.verification.passed
    runner = open_bundle(result.bundle.path)
    from edge_isp.models.pretrained import load_default

    packed = sky(216, 432)
    assert psnr(runner.run_photo(packed), untiled(load_default(), packed)) > 60


@pytest.mark.slow
def test_int8_two_pass_tiles_cost_nothing_against_the_same_artifacts_untiled(tmp_path, shared_raw):
    """INT8 two-pass bundle on the whole chart: within 1 dB of the same INT8 artifacts
    reshaped to the whole photo (OpenVINO), both measured against float PyTorch."""
    from edge_isp.converters.pipeline import ConvertOptions, convert
    from edge_isp.models.pretrained import load_default
    from edge_isp.runtimes import open_bundle
    from edge_isp.whole_photo import verify_photo

    result = convert(ConvertOptions(target="openvino-int8", input_size=(432, 432), output=tmp_path / "b",
                                    calib_samples=8, verify_samples=2))
    runner = open_bundle(result.bundle.path)
    photo = verify_photo(runner, load_default(), shared_raw / "openisp_1920x1080_rggb_u16le.raw",
                         raw_layout=CHART_LAYOUT, untiled_subject=True)
    assert photo.mode.startswith("two-pass bundle") and photo.tiles >= 6
    assert photo.untiled_subject_psnr_db is not None and photo.untiled_subject_psnr_db > 30
    assert abs(photo.psnr_db - photo.untiled_subject_psnr_db) <= 1.0
    assert photo.tiled_vs_untiled_subject_psnr_db > photo.psnr_db + 10     # tiling is not where the error is
    # The CLI judges an INT8 bundle by its target's bar (as convert --verify-photo does).
    layout = ["--width", "1920", "--height", "1080", "--cfa", "rggb", "--white", "1023"]
    done = _run_cli("verify", str(result.bundle.path), str(shared_raw / "openisp_1920x1080_rggb_u16le.raw"), *layout,
                    "--untiled-subject", "--min-tile-psnr", "20", "--json", "-o", str(tmp_path / "diff"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr     # (8 calibration crops: a rough INT8 model)
    report = json.loads(done.stdout)
    assert report["bars"]["min_psnr_db"] < 50 and report["bars"]["max_seam_score"] is None
    assert report["bars"]["min_worst_tile_psnr_db"] == 20            # an explicit bar still wins
    assert report["photos"][0]["tiled_vs_untiled_subject_psnr_db"] > 60
    # A one-artifact or non-OpenVINO bundle cannot be reshaped: said, not guessed.
    fp32 = convert(ConvertOptions(target="onnx-fp32", input_size=(432, 432), output=tmp_path / "onnx",
                                  verify_samples=2))
    with pytest.raises(UsageError, match="OpenVINO"):
        open_bundle(fp32.bundle.path).run_untiled(sky(216, 216))


@pytest.mark.slow
def test_blended_tiling_keeps_one_artifact_and_says_it_is_not_exact(tmp_path):
    from edge_isp.converters.pipeline import ConvertOptions, convert

    result = convert(ConvertOptions(target="onnx-fp32", tiling="blended", output=tmp_path / "b", verify_samples=2))
    t = result.manifest["tiling"]
    assert t["mode"] == "blended" and t["exact"] is False and "two-pass" in t["note"]
    assert list(result.manifest["artifact"]["files_sha256"]) == ["model.onnx"]


CHART_LAYOUT = {"width": 1920, "height": 1080, "cfa": "rggb", "white_level": 1023}


@pytest.mark.slow
def test_convert_verify_photo_accepts_two_pass_and_refuses_blended(tmp_path, shared_raw):
    from edge_isp.converters.pipeline import ConvertOptions, convert
    from edge_isp.errors import VerificationError

    chart = shared_raw / "openisp_1920x1080_rggb_u16le.raw"
    common = dict(target="onnx-fp32", input_size=(432, 432), verify_samples=2, raw_layout=CHART_LAYOUT,
                  verify_photos=(chart,))
    result = convert(ConvertOptions(output=tmp_path / "exact", **common))
    (photo,) = result.manifest["photo_verification"]
    assert photo["passed"] and photo["psnr_db"] >= 50 and photo["mode"].startswith("two-pass bundle")
    # One artifact in blended tiles: each tile has its own attention statistics; refused,
    # and nothing is written.
    with pytest.raises(VerificationError, match="--verify-photo .*no bundle was written"):
        convert(ConvertOptions(output=tmp_path / "blended", tiling="blended", **common))
    assert not (tmp_path / "blended").exists()


def test_verify_photo_must_exist_before_any_work(tmp_path):
    from edge_isp.converters.pipeline import ConvertOptions, convert

    with pytest.raises(InputError, match="--verify-photo .*no such file"):
        convert(ConvertOptions(target="onnx-fp32", verify_photos=(tmp_path / "nope.dng",), output=tmp_path / "b"))
    assert not (tmp_path / "b").exists()


class _ManyOutputs(torch.nn.Module):
    """Twelve outputs of different shapes: more than ten, where names and numbers sort apart."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(4, 2 + k, 3, padding=1) for k in range(12))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(conv(x) for conv in self.convs)


@pytest.mark.slow
def test_int8_tflite_keeps_the_names_of_many_outputs(tmp_path):
    from edge_isp.converters import tflite
    from edge_isp.converters.onnx_export import export_onnx
    from edge_isp.runtimes import open_runner

    net = _ManyOutputs().eval()
    names = [f"g{k}_map" for k in range(12)]
    onnx_path = tmp_path / "many.onnx"
    export_onnx(net, {BAYER: (1, 4, 24, 40)}, onnx_path, output_names=names)
    x = np.random.default_rng(0).random((4, 4, 24, 40), np.float32)
    saved, f32, _ = tflite.onnx_to_saved_model(onnx_path, tmp_path, BAYER, x)
    built = tflite.quantize_int8(tflite.calibrate(saved, x), tmp_path / "many_int8.tflite", x, names_from=f32,
                                 output_order=names)
    out = open_runner("litert", built.path).run_named({BAYER: x[:1]})
    assert set(out) == set(names)
    with torch.no_grad():
        ref = net(torch.from_numpy(x[:1]))
    for name, want in zip(names, ref):
        got = out[name]
        assert got.shape == tuple(want.shape)
        assert np.abs(got - want.numpy()).mean() < 0.05 * np.abs(want.numpy()).mean() + 1e-3
