"""``edge-isp process`` and edge_isp.process: RAW files -> images, batches, errors, defaults."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_isp.cli import app
from edge_isp.errors import InputError, UsageError
from edge_isp.process import load_runner, output_path, process_files, process_image
from edge_isp.raw import read_raw

from test_runtimes import converted, psnr
from test_tiling import PointwiseRunner

cli = CliRunner()
DSC = "DSC_1339_768x512_rggb_u16le.raw"
DSC_ARGS = ["--width", "768", "--height", "512", "--cfa", "RGGB", "--black", "600", "--white", "15520"]
DSC_LAYOUT = dict(width=768, height=512, cfa="RGGB", black_level=600, white_level=15520)


class _Loaded(PointwiseRunner):
    """The fake runner dressed as a LoadedRunner for process_files."""

    model, target = "fake", "fake"
    mosaic_hw = (96, 128)
    packed_hw = (48, 64)

    def describe(self) -> dict:
        return {"runtime": "fake"}


def _read_image(path: Path) -> np.ndarray:
    if path.suffix in (".tif", ".tiff"):
        import tifffile

        return tifffile.imread(path)
    if path.suffix == ".png":
        import zlib
        import struct

        data = path.read_bytes()
        w, h, depth = struct.unpack(">IIB", data[16:25])
        if depth == 16:   # our own 16-bit encoder: one IDAT, filter 0
            idat = data.index(b"IDAT")
            n = struct.unpack(">I", data[idat - 4:idat])[0]
            raw = np.frombuffer(zlib.decompress(data[idat + 4:idat + 4 + n]), np.uint8).reshape(h, -1)[:, 1:]
            return raw.copy().view(">u2").reshape(h, w, 3).astype(np.uint16)
    from PIL import Image

    return np.asarray(Image.open(path))


def test_process_without_arguments_renders_the_bundled_sample(tmp_path: Path) -> None:
    result = cli.invoke(app, ["process", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "halide_bayer_small_grbg.png"
    img = _read_image(out)
    assert img.shape == (344, 256, 3) and img.dtype == np.uint8


def test_batch_goes_on_after_an_unreadable_file_and_exits_non_zero(tmp_path: Path, shared_raw: Path) -> None:
    bad = tmp_path / "broken.raw"
    bad.write_bytes(b"\x00" * 100)                       # far too short for 768x512
    good = shared_raw / DSC
    out = tmp_path / "out"
    result = cli.invoke(app, ["process", str(bad), str(good), "-o", str(out), "--bundle",
                              str(converted("onnx-fp32")), "--json", *DSC_ARGS])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    first, second = report["results"]
    assert not first["ok"] and "broken.raw" in first["error"]
    assert second["ok"] and Path(second["output"]).is_file()
    assert second["tiles"] > 1 and second["mosaic_hw"] == [512, 768]
    assert not (out / "broken.png").exists()
    assert [p.name for p in out.iterdir()] == [f"{Path(DSC).stem}.png"]  # no temp files left


def test_bundle_processing_matches_the_pytorch_reference(shared_raw: Path) -> None:
    raw = read_raw(shared_raw / DSC, **DSC_LAYOUT).crop(0, 0, 160, 224)     # exactly one tile
    rgb = process_image(load_runner(bundle=converted("onnx-fp32")), raw)
    # The same model untiled on the same frame (two-pass PyTorch would mirror this 80x112 px
    # packed photo up to its 36 px photo grid first; a one-artifact bundle runs it as it is).
    ref = process_image(load_runner(model="pynet-v2-mobile"), raw, two_pass=False)
    assert rgb.shape == ref.shape == (160, 224, 3)
    assert psnr(rgb, ref) > 90


@pytest.mark.parametrize("ext,bits,dtype", [(".png", 16, np.uint16), (".tif", 16, np.uint16),
                                            (".jpg", 8, np.uint8), (".tif", 8, np.uint8)])
def test_output_formats(tmp_path: Path, shared_raw: Path, ext: str, bits: int, dtype) -> None:
    report = process_files([shared_raw / DSC], tmp_path, runner=_Loaded((48, 64)), ext=ext, bits=bits,
                           raw_layout=DSC_LAYOUT)
    assert report.ok, report.results[0].error
    img = _read_image(report.results[0].output)
    assert img.shape == (512, 768, 3) and img.dtype == dtype
    if ext != ".jpg":
        raw = read_raw(shared_raw / DSC, **DSC_LAYOUT)
        ref = PointwiseRunner((256, 384)).run(raw.packed()[None])[0].transpose(1, 2, 0)
        want = np.rint(np.clip(ref, 0, 1) * np.iinfo(dtype).max)
        assert np.abs(img.astype(np.int64) - want).max() <= 1     # blend weights: float rounding only


def test_bad_output_options_fail_before_work(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="16-bit"):
        process_files([], tmp_path, runner=_Loaded(), ext=".jpg", bits=16)
    with pytest.raises(InputError, match="cannot write"):
        process_files([], tmp_path, runner=_Loaded(), ext=".bmp")
    with pytest.raises(UsageError, match="either"):
        load_runner(bundle="x", model="y")


def test_output_names_do_not_collide(tmp_path: Path) -> None:
    taken: set[Path] = set()
    a = output_path(Path("a/IMG_1.dng"), tmp_path, "png", taken)
    b = output_path(Path("b/IMG_1.dng"), tmp_path, ".png", taken)
    assert a.name == "IMG_1.png" and b.name == "IMG_1_2.png"


def test_process_a_dng(tmp_path: Path) -> None:
    from test_raw import write_dng

    rng = np.random.default_rng(1)
    dng = tmp_path / "photo.dng"
    write_dng(dng, rng.integers(64, 1023, (200, 300)).astype(np.uint16), "RGGB", black=64, white=1023)
    result = cli.invoke(app, ["process", str(dng), "-o", str(tmp_path / "out"), "--model", "pynet-v2-mobile",
                              "-f", "tif", "--bits", "16"])
    assert result.exit_code == 0, result.output
    img = _read_image(tmp_path / "out" / "photo.tif")
    assert img.shape[2] == 3 and img.dtype == np.uint16 and img.shape[:2] == (200, 300)


def test_a_batch_is_pipelined_in_order_with_the_same_outputs(tmp_path: Path, shared_raw: Path) -> None:
    """Decode-ahead and the writer thread change nothing: same bytes as one file at a time, results
    in input order, a bad file in the middle reported and the rest written, stage times recorded."""
    from edge_isp.process import process_file

    good = shared_raw / DSC
    bad = tmp_path / "broken.raw"
    bad.write_bytes(b"\0" * 100)                       # not 768x512 of uint16
    copies = []
    for name in ("a.raw", "b.raw"):
        copies.append(tmp_path / name)
        copies[-1].write_bytes(good.read_bytes())
    out = tmp_path / "out"
    report = process_files([copies[0], bad, copies[1]], out, runner=_Loaded((48, 64)), raw_layout=DSC_LAYOUT)
    assert [r.source.name for r in report.results] == ["a.raw", "broken.raw", "b.raw"]
    assert [r.ok for r in report.results] == [True, False, True] and "broken.raw" in report.results[1].error
    assert not (out / "broken.png").exists()
    one = process_file(_Loaded((48, 64)), copies[0], tmp_path / "single.png", raw_layout=DSC_LAYOUT)
    assert one.ok and (out / "a.png").read_bytes() == (tmp_path / "single.png").read_bytes() == (out / "b.png").read_bytes()
    for r in (report.results[0], report.results[2], one):
        assert set(r.stages_s) == {"decode", "plan", "infer", "write"} and r.seconds >= max(r.stages_s.values())
