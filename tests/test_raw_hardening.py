"""RAW input hardening (issue #13): odd Bayer sizes, layouts that do not fit the file,
--cfa on files that store their own pattern, camera files named .raw, and damaged files of
every container type giving one line on stderr, never a traceback."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_raw import ROSE, ROSE_LAYOUT, write_dng

from edge_isp.errors import InputError, RawFormatError, UnknownNameError
from edge_isp.raw import RawInputWarning, read_raw, render

pytest.importorskip("rawpy")
pytest.importorskip("pidng.core")

_SCRIPT = Path(sys.executable).with_name("edge-isp")
EDGE_ISP = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "edge_isp.cli"]

# Python keyword spellings that must not appear in a message except inside "(raw option ...)".
_KEYWORD = re.compile(r"\b(width|height|cfa|white_level|black_level|dtype|byte_order|header_bytes|crop_even|force_cfa)=")


def edge_isp(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGE_ISP, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def one_line_error(proc: subprocess.CompletedProcess, code: int = 3) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def assert_cli_spelling(message: str) -> None:
    """Options are named as flags; a keyword spelling only inside '(raw option ...)'."""
    outside = re.sub(r"\(raw options? [^)]*\)", "", message)
    outside = re.sub(r"raw options? [a-z_]+=\S*", "", outside)
    assert not _KEYWORD.search(outside), message


@pytest.fixture()
def dng(tmp_path: Path) -> Path:
    mosaic = np.random.default_rng(7).integers(64, 1023, (48, 64)).astype(np.uint16)
    path = tmp_path / "photo.dng"
    write_dng(path, mosaic, "RGGB", black=64, white=1023)
    return path


# ------------------------------------------------------------ 1. odd sizes, layout checks


def odd_dump(tmp_path: Path, width: int = 767, height: int = 512) -> tuple[Path, np.ndarray]:
    data = (np.arange(width * height, dtype=np.uint32) % 1000).astype("<u2").reshape(height, width)
    path = tmp_path / "odd.raw"
    data.tofile(path)
    return path, data


def test_odd_width_is_refused_naming_the_flags(tmp_path: Path) -> None:
    path, _ = odd_dump(tmp_path)
    with pytest.raises(RawFormatError) as info:
        read_raw(path, width=767, height=512, cfa="RGGB", white_level=1023)
    message = str(info.value)
    assert "--width 767 is odd" in message and "--height" in message and "--crop-even" in message
    assert "\n" not in message
    assert_cli_spelling(message)


def test_odd_height_is_refused(tmp_path: Path) -> None:
    path, _ = odd_dump(tmp_path, width=768, height=511)
    with pytest.raises(RawFormatError, match="--height 511 is odd"):
        read_raw(path, width=768, height=511, cfa="RGGB", white_level=1023)


def test_crop_even_drops_the_last_column_explicitly(tmp_path: Path) -> None:
    path, data = odd_dump(tmp_path)
    raw = read_raw(path, width=767, height=512, cfa="GRBG", white_level=1023, crop_even=True)
    assert raw.shape == (512, 766) and raw.cfa == "GRBG"  # cut at the right: the phase is unchanged
    assert np.array_equal(raw.mosaic, data[:, :766])
    assert raw.metadata["cropped_from"] == (512, 767)
    assert raw.packed().shape == (4, 256, 383)


def test_odd_bayer_png_is_refused_unless_cropped(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "odd.png"
    Image.fromarray(np.full((10, 13), 300, np.uint16)).save(path)
    with pytest.raises(RawFormatError, match="13x10 .*--crop-even"):
        read_raw(path, cfa="RGGB", white_level=1023)
    assert read_raw(path, cfa="RGGB", white_level=1023, crop_even=True).shape == (10, 12)


def test_cli_odd_width_one_line_and_crop_even(tmp_path: Path) -> None:
    path, _ = odd_dump(tmp_path)
    layout = ["--width", "767", "--height", "512", "--cfa", "RGGB", "--white", "1023"]
    line = one_line_error(edge_isp("raw-info", str(path), *layout))
    assert "--width 767 is odd" in line
    line = one_line_error(edge_isp("render", str(path), *layout, "-o", str(tmp_path / "x.png")))
    assert "--width" in line and not (tmp_path / "x.png").exists()
    proc = edge_isp("raw-info", str(path), *layout, "--crop-even", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert (info["width"], info["height"], info["cropped_from"]) == (766, 512, [512, 767])


def test_file_size_must_fit_the_layout(tmp_path: Path, shared_raw: Path) -> None:
    short = tmp_path / "short.raw"
    short.write_bytes(ROSE.read_bytes()[:-100])
    with pytest.raises(RawFormatError, match=r"100 short\): it is truncated") as info:
        read_raw(short, **ROSE_LAYOUT)
    assert_cli_spelling(str(info.value))
    long = tmp_path / "long.raw"
    long.write_bytes(b"\0" * 64 + ROSE.read_bytes())
    with pytest.raises(RawFormatError, match="64 more.*--header-bytes 64") as info:
        read_raw(long, **ROSE_LAYOUT)
    assert_cli_spelling(str(info.value))
    raw = read_raw(long, header_bytes=64, **ROSE_LAYOUT)  # the header the message points to
    assert np.array_equal(raw.mosaic, read_raw(ROSE, **ROSE_LAYOUT).mosaic)
    eight = tmp_path / "eight.raw"
    eight.write_bytes(bytes(768 * 512))
    with pytest.raises(RawFormatError, match="fits --dtype uint8"):
        read_raw(eight, width=768, height=512, cfa="RGGB", white_level=255)


@pytest.mark.parametrize(("change", "words"), [
    ({"width": 0}, "--width 0 is not a size"),
    ({"height": -512}, "--height -512 is not a size"),
    ({"width": 767.5}, "--width must be a whole number"),
    ({"header_bytes": -4}, "--header-bytes -4 is not a byte count"),
    ({"white_level": 600}, "--white 600 must be above the black level 600"),
    ({"white_level": float("nan")}, "--white nan is not a level"),
    ({"black_level": -1}, "--black -1 is not a level"),
    ({"white_level": 70000}, "above what uint16 samples can hold"),
    ({"dtype": "float32"}, "--dtype float32 is not a supported sample type"),
    ({"byte_order": "middle"}, "--byte-order middle is not a byte order"),
])
def test_layout_values_are_checked(shared_raw: Path, change: dict, words: str) -> None:
    with pytest.raises(InputError) as info:
        read_raw(ROSE, **{**ROSE_LAYOUT, **change})
    message = str(info.value)
    assert words in message and "\n" not in message
    assert_cli_spelling(message)


def test_white_level_must_fit_the_bit_depth_of_the_data(shared_raw: Path, tmp_path: Path) -> None:
    # The rose is 14-bit data: a 10-bit white level would clip almost everything.
    with pytest.raises(RawFormatError, match=r"samples reach 16383 \(14-bit data\).*--white 16383"):
        read_raw(ROSE, **{**ROSE_LAYOUT, "white_level": 1023})
    # Read with the wrong byte order, the samples fill 16 bits: caught by the same check.
    with pytest.raises(RawFormatError, match="16-bit data.*--byte-order"):
        read_raw(ROSE, **ROSE_LAYOUT, byte_order="big")
    eight = tmp_path / "eight.raw"
    eight.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InputError, match="--white 1023 is above what uint8 samples can hold"):
        read_raw(eight, width=32, height=32, dtype="uint8", cfa="RGGB", white_level=1023)
    # A PNG's sample type is a storage choice, not the bit depth: 10-bit data whose values
    # fit in 8 bits may be stored as uint8 (some Zurich patches are).
    png8 = tmp_path / "eight.png"
    from PIL import Image

    Image.fromarray(np.full((4, 4), 200, np.uint8)).save(png8)
    assert read_raw(png8, cfa="RGGB", white_level=1023).white_level == 1023


# ----------------------------------------------------------------- 2. --cfa on camera files


def test_cfa_that_contradicts_the_file_is_refused(dng: Path) -> None:
    with pytest.raises(RawFormatError) as info:
        read_raw(dng, cfa="BGGR")
    message = str(info.value)
    assert "stores its Bayer pattern as RGGB" in message and "--cfa BGGR" in message
    assert "headerless and PNG/TIFF" in message and "--force-cfa" in message and "\n" not in message
    assert_cli_spelling(message)
    assert read_raw(dng, cfa="rggb").cfa == "RGGB"  # agreeing with the file is harmless


def test_force_cfa_relabels_with_a_warning(dng: Path) -> None:
    with pytest.warns(RawInputWarning, match="as BGGR although the file stores RGGB"):
        raw = read_raw(dng, cfa="BGGR", force_cfa=True)
    assert raw.cfa == "BGGR" and raw.metadata["stored_cfa"] == "RGGB"
    assert np.array_equal(raw.mosaic, read_raw(dng).mosaic)
    with pytest.warns(RawInputWarning):
        assert read_raw(dng, cfa="BGGR", force_cfa="true").cfa == "BGGR"  # convert --raw-option force_cfa=true
    with pytest.raises(InputError, match="--force-cfa .* only makes sense together with --cfa"):
        read_raw(dng, force_cfa=True)


def test_forced_cfa_keeps_per_site_black_levels() -> None:
    from edge_isp.raw._camera import _apply_cfa_override

    fields = {"cfa": "RGGB", "black_level": (4.0, 2.0, 1.0, 3.0), "metadata": {}}  # B, Gr, R, Gb
    with pytest.warns(RawInputWarning):
        _apply_cfa_override(Path("x.dng"), fields, "BGGR", force=True)
    # The site that held R (top-left, black 1) is called B now, and so on.
    assert fields["cfa"] == "BGGR" and fields["black_level"] == (1.0, 3.0, 4.0, 2.0)


def test_cli_cfa_on_a_camera_file(dng: Path, tmp_path: Path) -> None:
    line = one_line_error(edge_isp("raw-info", str(dng), "--cfa", "BGGR"))
    assert "RGGB" in line and "--cfa" in line and "--force-cfa" in line
    out = tmp_path / "forced.png"
    proc = edge_isp("render", str(dng), "--cfa", "BGGR", "--force-cfa", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning:") and "RGGB" in lines[0], proc.stderr
    assert out.is_file()
    proc = edge_isp("raw-info", str(dng), "--cfa", "BGGR", "--force-cfa", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["stored_cfa"] == "RGGB"
    one_line_error(edge_isp("raw-info", str(dng), "--force-cfa"))


# ------------------------------------------------------- 3. camera files named .raw etc.


def test_camera_file_named_raw_is_read_through_libraw(dng: Path, tmp_path: Path) -> None:
    kodak = tmp_path / "kodak.raw"
    shutil.copy(dng, kodak)
    raw = read_raw(kodak)  # no Bayer sizes asked for
    assert raw.format == "camera" and raw.cfa == "RGGB" and raw.white_level == 1023
    assert np.array_equal(raw.mosaic, read_raw(dng).mosaic)
    assert raw.metadata["libraw_probe"] == "container"
    with pytest.raises(InputError, match="camera RAW file .*leave out --height, --width") as info:
        read_raw(kodak, width=64, height=48)
    assert_cli_spelling(str(info.value))
    for name in ("photo.tif", "photo.png", "photo.xyz"):  # a DNG under any name
        other = tmp_path / name
        shutil.copy(dng, other)
        assert read_raw(other).format == "camera", name


def test_cli_camera_file_named_raw(dng: Path, tmp_path: Path) -> None:
    kodak = tmp_path / "kodak.raw"
    shutil.copy(dng, kodak)
    proc = edge_isp("raw-info", str(kodak), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["format"] == "camera"
    proc = edge_isp("render", str(kodak), "-o", str(tmp_path / "k.png"))
    assert proc.returncode == 0 and (tmp_path / "k.png").is_file(), proc.stderr


def test_headerless_dump_still_needs_its_layout(shared_raw: Path, tmp_path: Path) -> None:
    # LibRaw "opens" this 786432-byte dump by its size alone (an old industrial camera's
    # headerless format); that is not a header, so it stays a headerless dump.
    with pytest.raises(RawFormatError) as info:
        read_raw(ROSE)
    message = str(info.value)
    assert "headerless" in message and "--width, --height, --cfa, --white" in message
    assert_cli_spelling(message)
    raw = read_raw(ROSE, **ROSE_LAYOUT)
    assert raw.format == "headerless" and np.array_equal(raw.mosaic, np.fromfile(ROSE, "<u2").reshape(512, 768))
    line = one_line_error(edge_isp("raw-info", str(ROSE)))
    assert "--width" in line
    wrong = tmp_path / "dump.dng"  # a size-only match never passes for a camera file either
    shutil.copy(ROSE, wrong)
    with pytest.raises(RawFormatError, match="no camera RAW header"):
        read_raw(wrong)
    blob = tmp_path / "dump.xyz"
    shutil.copy(ROSE, blob)
    with pytest.raises(UnknownNameError, match="only by its size"):
        read_raw(blob)
    assert read_raw(blob, format="headerless", **ROSE_LAYOUT).shape == (512, 768)


def test_plain_grey_tiff_stays_a_bayer_image(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    mosaic = np.random.default_rng(8).integers(0, 1023, (16, 24)).astype(np.uint16)
    path = tmp_path / "mosaic.tif"
    tifffile.imwrite(path, mosaic)  # LibRaw would open it too, with a made-up RGGB pattern
    raw = read_raw(path, cfa="GBRG", white_level=1023)
    assert raw.format == "bayer-image" and raw.cfa == "GBRG" and np.array_equal(raw.mosaic, mosaic)


def test_libraw_console_output_is_folded_into_the_one_line(dng: Path, tmp_path: Path, capfd) -> None:
    cut = tmp_path / "cut.dng"
    data = dng.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.95)])
    with pytest.raises(RawFormatError) as info:
        read_raw(cut)
    assert "truncated" in str(info.value) and "\n" not in str(info.value)
    captured = capfd.readouterr()
    assert "Unexpected end of file" not in captured.err  # LibRaw's own line did not leak
    os.write(2, b"stderr works\n")  # and file descriptor 2 is back where it was
    assert "stderr works" in capfd.readouterr().err


# -------------------------------------------------- 4. messages name the CLI flags


def test_missing_layout_messages_name_flags(tmp_path: Path) -> None:
    png = tmp_path / "m.png"
    from PIL import Image

    Image.fromarray(np.zeros((4, 4), np.uint16)).save(png)
    dump = tmp_path / "d.bin"
    dump.write_bytes(bytes(32))
    for path, kwargs in ((png, {}), (dump, {}), (dump, {"width": 4, "height": 4}),
                         (png, {"cfa": "RGGB", "white_level": 255, "byte_order": "big"})):
        with pytest.raises(InputError) as info:
            read_raw(path, **kwargs)
        message = str(info.value)
        assert "--" in message and "\n" not in message, message
        assert_cli_spelling(message)


# --------------------------------------- 5. damaged files of every container type, via the CLI


def _good_bytes(ext: str, tmp_path: Path, shared_raw: Path) -> bytes:
    if ext == ".png":
        return (shared_raw / "halide_bayer_small_grbg.png").read_bytes()
    if ext == ".tif":
        tifffile = pytest.importorskip("tifffile")
        tifffile.imwrite(tmp_path / "src.tif", np.random.default_rng(1).integers(0, 1023, (64, 96)).astype(np.uint16))
        return (tmp_path / "src.tif").read_bytes()
    # .dng .cr2 .nef .arw .raw: LibRaw reads by content, so a DNG stands in for each
    src = tmp_path / "src.dng"
    write_dng(src, np.random.default_rng(2).integers(64, 1023, (64, 96)).astype(np.uint16), "GRBG", 64, 1023)
    return src.read_bytes()


@pytest.mark.parametrize("verb", ["raw-info", "render"])
@pytest.mark.parametrize("kind", ["truncated", "empty", "random"])
@pytest.mark.parametrize("ext", [".dng", ".cr2", ".nef", ".arw", ".raw", ".png", ".tif"])
def test_damaged_files_give_one_line(tmp_path: Path, shared_raw: Path, ext: str, kind: str, verb: str) -> None:
    good = _good_bytes(ext, tmp_path, shared_raw)
    data = {"truncated": good[: len(good) // 2], "empty": b"",
            "random": np.random.default_rng(3).bytes(6000)}[kind]
    work = tmp_path / "work"
    work.mkdir()
    path = work / f"{kind}{ext}"
    path.write_bytes(data)
    with pytest.raises(RawFormatError):  # the library's answer: a RawFormatError, nothing else
        read_raw(path)
    out = work / "out.png"
    args = ["raw-info", str(path)] if verb == "raw-info" else ["render", str(path), "-o", str(out)]
    line = one_line_error(edge_isp(*args, cwd=work))
    assert line.startswith("error:") and path.name in line
    assert sorted(p.name for p in work.iterdir()) == [path.name]  # no output, no temporary file


def test_random_bytes_with_a_camera_file_size_are_refused(tmp_path: Path) -> None:
    # LibRaw matches 786432 bytes to a headerless camera format; named .dng they must not pass.
    path = tmp_path / "noise.dng"
    path.write_bytes(np.random.default_rng(4).bytes(786432))
    with pytest.raises(RawFormatError, match="no camera RAW header"):
        read_raw(path)
    line = one_line_error(edge_isp("render", str(path), "-o", str(tmp_path / "n.png")))
    assert "no camera RAW header" in line and not (tmp_path / "n.png").exists()
    assert read_raw(path, format="camera").format == "camera"  # asked for explicitly: LibRaw's guess


def test_good_files_still_read(dng: Path, shared_raw: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and without any warning
        assert read_raw(dng).shape == (48, 64)
        image = render(read_raw(shared_raw / "halide_bayer_small_grbg.png", cfa="GRBG", black_level=25,
                                white_level=1023))
    assert image.shape == (344, 256, 3)
