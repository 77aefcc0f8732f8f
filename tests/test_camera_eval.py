"""``edge-isp eval --data camera:FOLDER``: camera RAW files scored against their embedded JPEG.

The camera files are real DNGs written by tests/_camera_dng.py from the real Bayer capture
in tests/data/raw (a red rose), each with an embedded JPEG preview; they go through the
real reading path (rawpy/LibRaw for the mosaic, the metadata and ``extract_thumb``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rawpy")
pytest.importorskip("skimage")

from _camera_dng import write_camera_dng  # noqa: E402

from edge_isp.errors import EXIT_BAD_INPUT, InputError, NoPreviewError  # noqa: E402
from edge_isp.metrics import colour_difference, psnr  # noqa: E402
from edge_isp.raw import RawImage, read_raw, render  # noqa: E402
from edge_isp.raw.preview import orient, read_preview  # noqa: E402
from edge_isp.training.align import align, resize_rgb  # noqa: E402
from edge_isp.training.camera import CameraPair, bin_mosaic  # noqa: E402
from edge_isp.training.evaluate import (  # noqa: E402
    Subject,
    classical_render_raw,
    evaluate,
    evaluation_data,
    load_subject,
)

REPO = Path(__file__).resolve().parents[1]
BLACK, WHITE = 600, 15520
# The camera's preview: render px per preview px, and where its top-left lies in the render.
K, TOP, LEFT, PREVIEW_HW = 1.6, 11.0, 17.0, (300, 450)


@pytest.fixture(scope="module")
def rose(shared_raw: Path) -> RawImage:
    return read_raw(shared_raw / "DSC_1339_768x512_rggb_u16le.raw", width=768, height=512, cfa="RGGB",
                    black_level=BLACK, white_level=WHITE)


def _preview_of(full: np.ndarray, k: float = K, top: float = TOP, left: float = LEFT,
                hw: tuple[int, int] = PREVIEW_HW) -> np.ndarray:
    """What a camera embeds: its rendering, cropped at (top, left) and shrunk k times."""
    h, w = hw
    return resize_rgb(full, hw, (left, top, left + k * w, top + k * h)).clip(0, 1)


@pytest.fixture(scope="module")
def rose_render(rose: RawImage, tmp_path_factory) -> np.ndarray:
    """The classical ISP's render of the rose DNG (the DNG's metadata: as-shot WB, matrix)."""
    path = write_camera_dng(tmp_path_factory.mktemp("probe") / "probe.dng", rose.mosaic, "RGGB", BLACK, WHITE)
    return render(read_raw(path))


@pytest.fixture(scope="module")
def camera_dir(tmp_path_factory, rose: RawImage, rose_render: np.ndarray) -> Path:
    """rose.dng embeds a crop of the classical render as its JPEG; plain.dng embeds none."""
    folder = tmp_path_factory.mktemp("camera")
    write_camera_dng(folder / "rose.dng", rose.mosaic, "RGGB", BLACK, WHITE, preview=_preview_of(rose_render))
    write_camera_dng(folder / "plain.dng", rose.mosaic, "RGGB", BLACK, WHITE)
    (folder / "notes.txt").write_text("not a RAW file: ignored\n")
    return folder


def _darkened(factor: float = 0.6) -> Subject:
    """A wrong ISP: the classical render, darker."""
    return Subject(predict=lambda packed: packed, kind="model", model="darkened", target="t", runtime="numpy",
                   render_raw=lambda raw: classical_render_raw(raw) * np.float32(factor))


# ---------------------------------------------------------------------------- preview

def test_read_preview_is_the_embedded_jpeg(camera_dir: Path, rose_render: np.ndarray) -> None:
    p = read_preview(camera_dir / "rose.dng")
    assert p.format == "jpeg" and p.size == PREVIEW_HW and p.flip == 0 and p.bayer
    assert psnr(_preview_of(rose_render), p.image) > 35  # the JPEG, decoded (quality 95)
    with pytest.raises(NoPreviewError, match="plain.dng: no embedded JPEG preview"):
        read_preview(camera_dir / "plain.dng")


def test_orient_is_libraws_orientation(tmp_path: Path) -> None:
    """orient(image, flip) turns an image as LibRaw's own postprocess does, for all 8 EXIF orientations."""
    import rawpy

    mosaic = np.random.default_rng(0).integers(64, 1023, (40, 60)).astype(np.uint16)
    flips = set()
    for exif in range(1, 9):
        path = write_camera_dng(tmp_path / f"o{exif}.dng", mosaic, "RGGB", 64, 1023, orientation=exif)
        kw = {"half_size": True, "no_auto_bright": True, "output_bps": 16}
        with rawpy.imread(str(path)) as raw:
            flip = raw.sizes.flip
            as_stored = raw.postprocess(user_flip=0, **kw)
        with rawpy.imread(str(path)) as raw:
            shown = raw.postprocess(**kw)
        assert np.array_equal(orient(as_stored, flip), shown), (exif, flip)
        flips.add(flip)
    assert flips == set(range(8))


# ----------------------------------------------------------------------------- align

@pytest.mark.parametrize("k, top, left, hw", [
    (1.6, 11.0, 17.0, (300, 450)),      # a slightly cropped, smaller preview
    (2.45, 3.25, 40.5, (200, 290)),     # smaller still, another crop
    (1.25, -9.0, -12.0, (430, 635)),    # shows a little more than the render (render cropped more)
])
def test_align_recovers_a_known_crop_and_scale(rose_render: np.ndarray, k, top, left, hw) -> None:
    if top < 0:  # a reference reaching past the render: make it from a padded render
        pad = 24
        big = np.pad(rose_render, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
        reference = _preview_of(big, k, top + pad, left + pad, hw)
    else:
        reference = _preview_of(rose_render, k, top, left, hw)
    a = align(rose_render, reference).alignment
    assert a.flip == 0 and a.score > 0.99
    assert a.scale == pytest.approx(k, rel=2e-3)
    assert abs(a.top - top) < 0.25 * k and abs(a.left - left) < 0.25 * k  # a quarter preview pixel
    if top < 0:
        y0, x0, h, w = a.box  # only the part inside the render is compared
        assert y0 > 0 and x0 > 0 and h < hw[0] and w < hw[1]


def test_align_finds_orientation_letterbox_and_survives_another_tone(rose_render: np.ndarray) -> None:
    reference = _preview_of(rose_render)
    turned = np.ascontiguousarray(orient(reference, 6))  # stored as the photo is shown
    a = align(rose_render, turned, flips=(0, 6)).alignment
    assert a.flip == 6 and a.score > 0.99 and a.scale == pytest.approx(K, rel=2e-3)
    boxed = np.zeros((360, 450, 3), np.float32)  # a 5:4 thumbnail of a 3:2 picture: black bars
    boxed[30:330] = reference
    b = align(rose_render, boxed).alignment
    assert b.trim == (30, 30, 0, 0) and b.box == (30, 0, 300, 450)
    assert abs(b.top - TOP) < 0.25 * K and abs(b.left - LEFT) < 0.25 * K
    other_tone = reference ** 1.8 * 0.8  # another camera's tone curve and exposure
    c = align(rose_render, other_tone).alignment
    assert abs(c.top - TOP) < 0.25 * K and abs(c.left - LEFT) < 0.25 * K


def test_colour_difference_is_ciede2000() -> None:
    from skimage.color import deltaE_ciede2000, rgb2lab

    rng = np.random.default_rng(1)
    a = rng.random((24, 32, 3))
    b = np.clip(a * 0.9 + 0.05 * rng.random(a.shape), 0, 1)
    d = colour_difference(a, b)
    assert d.delta_e00 == pytest.approx(float(deltaE_ciede2000(rgb2lab(a), rgb2lab(b)).mean()))
    assert d.lightness_diff == pytest.approx(float(rgb2lab(b)[..., 0].mean() - rgb2lab(a)[..., 0].mean()))
    assert colour_difference(a, a).delta_e00 == pytest.approx(0.0, abs=1e-9)


# ------------------------------------------------------------------------ evaluation

def test_camera_data_skips_files_without_preview_with_a_note(camera_dir: Path) -> None:
    data = evaluation_data(f"camera:{camera_dir}")
    assert [p.name for p in data.pairs] == ["rose.dng"]
    assert data.label == f"camera:{camera_dir}"
    assert len(data.notes) == 1 and "plain.dng: no embedded JPEG preview; skipped" in data.notes[0]


def test_matching_render_scores_higher_than_a_darkened_one(camera_dir: Path) -> None:
    pairs = evaluation_data(f"camera:{camera_dir}").pairs
    good = evaluate(load_subject("classical"), pairs, name="classical", dataset="t", use_lpips=False)
    dark = evaluate(_darkened(), pairs, name="dark", dataset="t", use_lpips=False)
    g, d = good.images[0], dark.images[0]
    assert g.psnr_db > 34 and g.ssim > 0.9 and g.delta_e00 < 2 and g.abs_delta_l < 1  # the JPEG's own loss
    assert d.psnr_db < g.psnr_db - 8 and d.ssim < g.ssim and d.delta_e00 > g.delta_e00 + 5
    assert d.delta_l < -5 and d.abs_delta_l == pytest.approx(-d.delta_l)  # darker: negative L* difference
    a = g.alignment
    assert a["flip"] == 0 and abs(a["scale"] - K) < 0.01 and abs(a["top"] - TOP) < 0.4 and abs(a["left"] - LEFT) < 0.4
    assert set(good.mean) >= {"psnr_db", "ssim", "ms_ssim", "delta_e00", "delta_l", "abs_delta_l"}


@pytest.mark.parametrize("stored_turned", [True, False])
def test_orientation_of_the_file_is_found(tmp_path: Path, rose: RawImage, rose_render: np.ndarray,
                                         stored_turned: bool) -> None:
    """EXIF orientation 6 (a quarter turn clockwise): cameras store the preview either as
    shown or as the sensor sees it; both are found."""
    preview = _preview_of(rose_render)
    if stored_turned:
        preview = np.ascontiguousarray(orient(preview, 6))
    path = write_camera_dng(tmp_path / "portrait.dng", rose.mosaic, "RGGB", BLACK, WHITE, preview=preview,
                            orientation=6)
    (pair,) = evaluation_data(f"camera:{tmp_path}").pairs
    s = pair.score_with(load_subject("classical"))
    assert read_preview(path).flip == 6
    assert s.alignment["flip"] == (6 if stored_turned else 0) and s.psnr_db > 34


def test_scale_and_bin_options(tmp_path: Path, camera_dir: Path) -> None:
    classical = load_subject("classical")
    (pair,) = evaluation_data(f"camera:{camera_dir}").pairs
    full = pair.score_with(classical)
    half = CameraPair(pair.name, pair.path, pair.preview_hw, pair.preview_format, scale=0.5).score_with(classical)
    assert half.alignment == full.alignment and half.ssim > 0.9 and half.psnr_db > 34
    binned = CameraPair(pair.name, pair.path, pair.preview_hw, pair.preview_format, binning=2).score_with(classical)
    # The 2x2-binned mosaic renders at half size: now 0.8 render px per preview px.
    assert binned.alignment["scale"] == pytest.approx(K / 2, rel=0.01) and binned.psnr_db > 27
    with pytest.raises(InputError, match="--scale"):
        evaluation_data(f"camera:{camera_dir}", scale=1.5)


def test_bin_mosaic_averages_each_colour_site(rose: RawImage) -> None:
    b = bin_mosaic(rose, 2)
    assert b.shape == (256, 384) and b.cfa == rose.cfa and b.black_level == rose.black_level
    m = rose.mosaic.astype(np.float64)
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        want = m[dy::2, dx::2].reshape(256 // 2, 2, 384 // 2, 2).mean(axis=(1, 3))
        assert np.abs(b.mosaic[dy::2, dx::2] - want).max() <= 0.5
    assert bin_mosaic(rose, 1) is rose


def test_camera_data_errors(tmp_path: Path, camera_dir: Path) -> None:
    with pytest.raises(InputError, match="no such folder"):
        evaluation_data(f"camera:{tmp_path / 'absent'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no camera RAW files"):
        evaluation_data(f"camera:{tmp_path / 'empty'}")
    only = tmp_path / "only_plain"
    only.mkdir()
    (only / "plain.dng").write_bytes((camera_dir / "plain.dng").read_bytes())
    with pytest.raises(InputError, match=r"none of the 1 camera RAW file\(s\) embeds a JPEG preview"):
        evaluation_data(f"camera:{only}")


# ------------------------------------------------------------------------------- CLI

def test_cli_camera_eval_records_results_that_gate_can_check(camera_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edge_isp.cli import app
    from edge_isp.results import ResultsStore

    store = tmp_path / "s.sqlite"
    res = CliRunner().invoke(app, ["eval", "classical", "--data", f"camera:{camera_dir}", "--json",
                                   "--store", str(store), "--no-lpips"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["dataset"] == f"camera:{camera_dir}" and data["images"] == 1
    assert any("plain.dng" in n for n in data["notes"])
    (rep,) = data["reports"]
    assert rep["kind"] == "classical" and rep["images"][0]["alignment"]["flip"] == 0
    assert rep["mean"]["delta_e00"] < 2
    (row,) = ResultsStore(store).query()
    assert row.kind == "eval" and row.extra["dataset"] == f"camera:{camera_dir}"
    assert row.metrics["delta_e00"] == pytest.approx(rep["mean"]["delta_e00"]) and row.metrics["images"] == 1

    ok, bad = tmp_path / "ok.toml", tmp_path / "bad.toml"
    ok.write_text('[[budget]]\nmodel = "classical-isp"\nkind = "eval"\n'
                  'checks = ["delta_e00 <= 5", "abs_delta_l <= 2", "psnr_db >= 30"]\n')
    bad.write_text('[[budget]]\nmodel = "classical-isp"\nkind = "eval"\nchecks = ["delta_e00 <= 0.01"]\n')
    assert CliRunner().invoke(app, ["gate", "--budgets", str(ok), "--results", str(store)]).exit_code == 0
    assert CliRunner().invoke(app, ["gate", "--budgets", str(bad), "--results", str(store)]).exit_code == 1


def test_cli_tables_show_the_colour_columns_and_the_notes(camera_dir: Path) -> None:
    from typer.testing import CliRunner

    from edge_isp.cli import app

    res = CliRunner().invoke(app, ["eval", "classical", "--data", f"camera:{camera_dir}", "--per-image",
                                   "--no-store", "--no-lpips"])
    assert res.exit_code == 0, res.output
    assert "dE00" in res.stdout and "|dL*|" in res.stdout and "rose.dng" in res.stdout
    assert "note:" in res.stderr and "plain.dng: no embedded JPEG preview; skipped" in res.stderr


def test_cli_exit_code_3_when_no_file_has_a_preview(camera_dir: Path, tmp_path: Path) -> None:
    only = tmp_path / "only_plain"
    only.mkdir()
    (only / "plain.dng").write_bytes((camera_dir / "plain.dng").read_bytes())
    failed = subprocess.run([sys.executable, "-m", "edge_isp.cli", "eval", "classical", "--data", f"camera:{only}",
                             "--no-store"], capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False)
    assert failed.returncode == EXIT_BAD_INPUT
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and "embeds a JPEG preview" in lines[0] and "plain.dng" in lines[0]
    assert "Traceback" not in failed.stderr and not list(tmp_path.glob("*.sqlite"))


@pytest.mark.slow
def test_default_model_against_an_independent_camera_rendering(tmp_path: Path, rose: RawImage) -> None:
    """The default model, tiled through the process machinery, against a preview LibRaw made
    (another ISP: AHD demosaic, its own tone): both subjects align and score in range."""
    import rawpy

    probe = write_camera_dng(tmp_path / "probe.dng", rose.mosaic, "RGGB", BLACK, WHITE)
    with rawpy.imread(str(probe)) as raw:
        camera = raw.postprocess(use_camera_wb=True, output_bps=8).astype(np.float32) / 255
    probe.unlink()
    write_camera_dng(tmp_path / "rose.dng", rose.mosaic, "RGGB", BLACK, WHITE, preview=_preview_of(camera))
    data = evaluation_data(f"camera:{tmp_path}")
    for name in ("default", "classical"):
        (s,) = evaluate(load_subject(name), data.pairs, name=name, dataset=data.label, use_lpips=False).images
        assert s.alignment["score"] > 0.8 and 12 < s.psnr_db < 40 and 0 < s.delta_e00 < 25, (name, s)
