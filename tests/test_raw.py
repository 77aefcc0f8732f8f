"""Tests of the RAW input layer: CFA packing, readers, presets, classical ISP, image writers."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from edge_isp.errors import InputError, RawFormatError, UnknownNameError
from edge_isp.raw import (
    CFA_PATTERNS,
    PACKED_CHANNELS,
    RawImage,
    apply_preset,
    cfa_after_crop,
    cfa_after_flip,
    cfa_offset,
    crop_to_cfa,
    demosaic,
    get_preset,
    gray_world_gains,
    list_presets,
    normalize_cfa,
    pack_bayer,
    read_raw,
    read_sample,
    render,
    sample_path,
    unpack_bayer,
    write_image,
)
from edge_isp.raw.augment import apply_window, plan_window

REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(__file__).resolve().parent / "data" / "raw"  # the conftest's shared_raw
DOG = SAMPLES / "halide_bayer_small_grbg.png"
ROSE = SAMPLES / "DSC_1339_768x512_rggb_u16le.raw"
CHART = SAMPLES / "openisp_1920x1080_rggb_u16le.raw"
ROSE_LAYOUT = {"width": 768, "height": 512, "cfa": "RGGB", "black_level": 600, "white_level": 15520}
CHART_LAYOUT = {"width": 1920, "height": 1080, "cfa": "RGGB", "black_level": 0, "white_level": 1023}

# Colour codes used by the synthetic mosaics: which packed channel a site belongs to.
CODE = {"R": 1, "Gr": 2, "Gb": 3, "B": 4}


def coded_mosaic(cfa: str, height: int = 6, width: int = 8) -> np.ndarray:
    """A mosaic whose every site holds the code of its packed channel, built from the
    pattern letters directly (independently of edge_isp.raw.cfa)."""
    tile = [[cfa[0], cfa[1]], [cfa[2], cfa[3]]]
    red_row = 0 if "R" in tile[0] else 1
    out = np.zeros((height, width), dtype=np.int64)
    for y in range(height):
        for x in range(width):
            letter = tile[y % 2][x % 2]
            if letter == "G":
                letter = "Gr" if y % 2 == red_row else "Gb"
            out[y, x] = CODE[letter]
    return out


def scene_mosaic(cfa: str, scene: np.ndarray) -> np.ndarray:
    """Sample an (H, W, 3) scene through a Bayer pattern."""
    idx = {"R": 0, "G": 1, "B": 2}
    out = np.empty(scene.shape[:2], dtype=scene.dtype)
    for dy in (0, 1):
        for dx in (0, 1):
            out[dy::2, dx::2] = scene[dy::2, dx::2, idx[cfa[dy * 2 + dx]]]
    return out


# ----------------------------------------------------------------------------- CFA


@pytest.mark.parametrize("cfa", CFA_PATTERNS)
def test_pack_puts_every_cfa_in_the_canonical_order(cfa: str) -> None:
    packed = pack_bayer(coded_mosaic(cfa), cfa)
    assert packed.shape == (4, 3, 4)
    assert PACKED_CHANNELS == ("B", "Gr", "R", "Gb")
    for index, channel in enumerate(PACKED_CHANNELS):
        assert np.all(packed[index] == CODE[channel]), (cfa, channel)


def test_rggb_packing_matches_the_zurich_reference_slicing() -> None:
    raw = np.random.default_rng(0).integers(0, 1024, (8, 10))
    expected = np.stack([raw[1::2, 1::2], raw[0::2, 1::2], raw[0::2, 0::2], raw[1::2, 0::2]])
    assert np.array_equal(pack_bayer(raw, "RGGB"), expected)


@pytest.mark.parametrize("cfa", CFA_PATTERNS)
def test_pack_unpack_round_trip(cfa: str) -> None:
    rng = np.random.default_rng(1)
    mosaic = rng.random((2, 12, 16)).astype(np.float32)  # leading batch dim is allowed
    packed = pack_bayer(mosaic, cfa)
    assert packed.shape == (2, 4, 6, 8) and packed.dtype == np.float32
    assert np.array_equal(unpack_bayer(packed, cfa), mosaic)
    ints = rng.integers(0, 4096, (6, 4)).astype(np.uint16)
    assert np.array_equal(unpack_bayer(pack_bayer(ints, cfa), cfa), ints)


def test_cfa_names_and_errors() -> None:
    assert normalize_cfa(" grbg ") == "GRBG"
    with pytest.raises(UnknownNameError, match="RGGB"):
        normalize_cfa("RGBW")
    with pytest.raises(UnknownNameError):
        pack_bayer(np.zeros((4, 4)), "XTRANS")


def test_odd_dimensions_raise_with_advice() -> None:
    with pytest.raises(RawFormatError, match="even") as info:
        pack_bayer(np.zeros((5, 4)), "RGGB")
    assert "crop_to_cfa" in str(info.value)
    with pytest.raises(RawFormatError):
        unpack_bayer(np.zeros((3, 2, 2)), "RGGB")
    raw = RawImage(np.zeros((5, 7), np.uint16), "RGGB", 0, 1023)
    with pytest.raises(RawFormatError, match="5x7"):
        raw.packed()
    assert raw.aligned("RGGB").packed().shape == (4, 2, 3)


@pytest.mark.parametrize("cfa", CFA_PATTERNS)
def test_phase_helpers_agree_with_a_coded_mosaic(cfa: str) -> None:
    mosaic = coded_mosaic(cfa, 7, 9)
    for top in (0, 1):
        for left in (0, 1):
            crop = mosaic[top : top + 4, left : left + 6]
            assert np.array_equal(crop, coded_mosaic(cfa_after_crop(cfa, top, left), 4, 6))
    for shape in ((6, 8), (7, 9)):
        m = coded_mosaic(cfa, *shape)
        for h in (False, True):
            for v in (False, True):
                flipped = m[::-1 if v else 1, ::-1 if h else 1]
                new = cfa_after_flip(cfa, shape, horizontal=h, vertical=v)
                assert np.array_equal(flipped, coded_mosaic(new, *shape)), (shape, h, v)
    for target in CFA_PATTERNS:
        dy, dx = cfa_offset(cfa, target)
        assert cfa_after_crop(cfa, dy, dx) == target
        cropped = crop_to_cfa(mosaic, cfa, target)
        assert cropped.shape[0] % 2 == 0 and cropped.shape[1] % 2 == 0
        assert np.array_equal(cropped, coded_mosaic(target, *cropped.shape))


@pytest.mark.parametrize("cfa", CFA_PATTERNS)
def test_window_plan_restores_the_pattern_after_flips(cfa: str) -> None:
    mosaic = coded_mosaic(cfa, 10, 12)
    calls = iter(range(1000))
    for size in (None, (4, 6), (10, 12)):
        for h in (False, True):
            for v in (False, True):
                window = plan_window(mosaic.shape, cfa, size, target_cfa="RGGB", hflip=h, vflip=v,
                                     rand=lambda n: next(calls) % n)
                cut = apply_window(mosaic, window)
                assert cut.shape == (size or (10, 12))
                assert np.array_equal(cut, coded_mosaic("RGGB", *cut.shape)), (size, h, v)


# -------------------------------------------------------------------------- RawImage


def test_rawimage_normalisation_and_per_channel_black() -> None:
    mosaic = coded_mosaic("GBRG", 4, 6).astype(np.uint16) * 100 + 50
    black = (40, 10, 20, 30)  # B, Gr, R, Gb
    raw = RawImage(mosaic, "gbrg", black, 1050)
    assert raw.cfa == "GBRG"
    packed = raw.packed()
    assert packed.dtype == np.float32 and packed.shape == (4, 2, 3)
    for index, channel in enumerate(PACKED_CHANNELS):
        value = CODE[channel] * 100 + 50
        expected = (value - black[index]) / (1050 - black[index])
        assert np.allclose(packed[index], expected)
    # Crops and flips keep every colour with its black level.
    moved = raw.flip(horizontal=True).crop(1, 1, 2, 4)
    assert np.allclose(moved.packed(), raw.packed()[:, :1, :2].mean(axis=(1, 2), keepdims=True))
    norm = RawImage(np.array([[0, 512], [1023, 2000]], np.uint16), "RGGB", 0, 1023).normalized()
    assert norm.dtype == np.float32 and norm.min() == 0.0 and norm.max() == 1.0


def test_rawimage_rejects_bad_data() -> None:
    with pytest.raises(RawFormatError, match="one sample per pixel"):
        RawImage(np.zeros((4, 4, 3), np.uint16), "RGGB", 0, 1023)
    with pytest.raises(RawFormatError, match="white level"):
        RawImage(np.zeros((4, 4), np.uint16), "RGGB", 100, 100)
    with pytest.raises(RawFormatError, match="integer"):
        RawImage(np.zeros((4, 4), np.float32), "RGGB", 0, 1)
    with pytest.raises(UnknownNameError):
        RawImage(np.zeros((4, 4), np.uint16), "RGB", 0, 1023)


# ---------------------------------------------------------------- real samples


def test_read_halide_png_sample(shared_raw: Path) -> None:
    raw = read_raw(DOG, cfa="GRBG", black_level=25, white_level=1023)
    assert raw.shape == (344, 256) and raw.mosaic.dtype == np.uint16
    assert raw.cfa == "GRBG" and raw.black_level == 25 and raw.white_level == 1023
    assert raw.format == "bayer-image" and raw.source == DOG
    packed = raw.packed()
    assert packed.shape == (4, 172, 128) and 0 <= packed.min() and packed.max() <= 1


def test_read_headerless_samples(shared_raw: Path) -> None:
    rose = read_raw(ROSE, **ROSE_LAYOUT)
    assert rose.shape == (512, 768) and rose.mosaic.dtype == np.uint16
    assert np.array_equal(rose.mosaic, np.fromfile(ROSE, "<u2").reshape(512, 768))
    chart = read_raw(CHART, **CHART_LAYOUT)
    assert chart.shape == (1080, 1920) and int(chart.mosaic.max()) == 1020
    assert chart.packed().shape == (4, 540, 960)


def test_builtin_sample(shared_raw: Path) -> None:
    path = sample_path()
    assert path.is_file() and path.name == "halide_bayer_small_grbg.png"
    assert (REPO / "edge_isp" / "assets" / "LICENSE-halide.txt").is_file()
    raw = read_sample()
    assert (raw.cfa, raw.black_level, raw.white_level, raw.shape) == ("GRBG", 25.0, 1023.0, (344, 256))
    assert path.read_bytes() == DOG.read_bytes()  # shipped unchanged


def test_presets(shared_raw: Path) -> None:
    assert {"zurich", "zurich-ca"} <= set(list_presets())
    zurich = get_preset("zurich")
    assert (zurich.black_level, zurich.white_level, zurich.cfa) == (0.0, 1020.0, "RGGB")
    assert get_preset("Zurich-CA").white_level == 1023.0
    raw = read_raw(DOG, preset="zurich")  # the preset supplies the CFA a PNG lacks
    assert (raw.cfa, raw.white_level, raw.black_level) == ("RGGB", 1020.0, 0.0)
    raw = read_raw(DOG, preset="zurich", cfa="GRBG", white_level=1023)  # explicit values win
    assert (raw.cfa, raw.white_level) == ("GRBG", 1023.0)
    assert apply_preset(raw, "zurich-ca").white_level == 1023.0
    with pytest.raises(UnknownNameError, match="zurich"):
        get_preset("sony")


# ----------------------------------------------------------------- headerless errors


def test_headerless_wrong_size_says_expected_and_actual(tmp_path: Path) -> None:
    path = tmp_path / "dump.raw"
    np.arange(100, dtype="<u2").tofile(path)
    with pytest.raises(RawFormatError) as info:
        read_raw(path, width=12, height=10, cfa="RGGB", white_level=1023)
    message = str(info.value)
    assert "240" in message and "200" in message and str(path) in message
    with pytest.raises(RawFormatError, match="exactly"):  # a truncated file is the same failure
        path.write_bytes(path.read_bytes()[:-3])
        read_raw(path, width=10, height=10, cfa="RGGB", white_level=1023)


def test_headerless_layouts(tmp_path: Path) -> None:
    data = np.random.default_rng(2).integers(0, 4095, (6, 8)).astype(np.uint16)
    big = tmp_path / "big.bin"
    big.write_bytes(b"HDR!" + data.astype(">u2").tobytes())
    raw = read_raw(big, width=8, height=6, byte_order="big", header_bytes=4, cfa="BGGR", white_level=4095)
    assert np.array_equal(raw.mosaic, data) and raw.cfa == "BGGR"
    small = tmp_path / "eight.raw"
    small.write_bytes(data.astype(np.uint8).tobytes())
    raw = read_raw(small, width=8, height=6, dtype="uint8", cfa="RGGB", white_level=255)
    assert raw.mosaic.dtype == np.uint8 and np.array_equal(raw.mosaic, data.astype(np.uint8))
    with pytest.raises(InputError, match="width="):
        read_raw(small, cfa="RGGB", white_level=255)
    with pytest.raises(InputError, match="dtype"):
        read_raw(small, width=8, height=6, dtype="float64", cfa="RGGB", white_level=255)
    with pytest.raises(UnknownNameError):
        read_raw(small, width=8, height=6, dtype="uint8", cfa="RGBG", white_level=255)


def test_reader_dispatch_errors(tmp_path: Path) -> None:
    with pytest.raises(RawFormatError, match="no such file"):
        read_raw(tmp_path / "missing.dng")
    odd = tmp_path / "image.xyz"
    odd.write_bytes(b"x")
    with pytest.raises(UnknownNameError, match=r"\.xyz"):
        read_raw(odd)
    with pytest.raises(UnknownNameError, match="camera"):
        read_raw(odd, format="nope")
    with pytest.raises(InputError, match="unknown layout option"):
        read_raw(odd, format="headerless", widht=3)
    png = tmp_path / "m.png"
    write_image(png, np.zeros((4, 4)))
    with pytest.raises(InputError, match="do not apply"):
        read_raw(png, cfa="RGGB", white_level=255, byte_order="big")
    with pytest.raises(InputError, match="cfa="):
        read_raw(png)


def test_bad_image_files(tmp_path: Path, shared_raw: Path) -> None:
    rgb = tmp_path / "photo.png"
    write_image(rgb, np.full((8, 8, 3), 0.5))
    with pytest.raises(RawFormatError, match="one sample per pixel"):
        read_raw(rgb, cfa="RGGB", white_level=255)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(DOG.read_bytes()[:5000])
    with pytest.raises(RawFormatError, match="cut.png"):
        read_raw(truncated, cfa="GRBG", white_level=1023)
    garbage = tmp_path / "noise.png"
    garbage.write_bytes(b"not a png at all" * 10)
    with pytest.raises(RawFormatError, match="noise.png"):
        read_raw(garbage, cfa="GRBG", white_level=1023)


# ----------------------------------------------------------------------------- DNG


def write_dng(path: Path, mosaic: np.ndarray, cfa: str, black: int, white: int, *,
              neutral: tuple[float, float, float] | None = None,
              active_area: tuple[int, int, int, int] | None = None) -> None:
    pidng_core = pytest.importorskip("pidng.core")
    from pidng.defs import CalibrationIlluminant, DNGVersion, Orientation, PhotometricInterpretation

    tags = pidng_core.DNGTags()
    Tag = pidng_core.Tag
    height, width = mosaic.shape
    tags.set(Tag.ImageWidth, width)
    tags.set(Tag.ImageLength, height)
    tags.set(Tag.TileWidth, width)
    tags.set(Tag.TileLength, height)
    tags.set(Tag.Orientation, Orientation.Horizontal)
    tags.set(Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array)
    tags.set(Tag.SamplesPerPixel, 1)
    tags.set(Tag.BitsPerSample, 16)
    tags.set(Tag.CFARepeatPatternDim, [2, 2])
    tags.set(Tag.CFAPattern, ["RGB".index(c) for c in cfa])
    tags.set(Tag.BlackLevel, black)
    tags.set(Tag.WhiteLevel, white)
    tags.set(Tag.DNGVersion, DNGVersion.V1_4)
    tags.set(Tag.Make, "edge-isp")
    tags.set(Tag.Model, "test")
    if neutral is not None:
        # XYZ -> camera = identity: LibRaw then derives camera -> sRGB from it.
        identity = [[1, 1], [0, 1], [0, 1], [0, 1], [1, 1], [0, 1], [0, 1], [0, 1], [1, 1]]
        tags.set(Tag.ColorMatrix1, identity)
        tags.set(Tag.CalibrationIlluminant1, CalibrationIlluminant.D65)
        tags.set(Tag.AsShotNeutral, [[int(round(v * 1000)), 1000] for v in neutral])
    if active_area is not None:
        tags.set(Tag.ActiveArea, list(active_area))
    writer = pidng_core.RAW2DNG()
    writer.options(tags, path="", compress=False)
    path.write_bytes(bytes(writer.convert(mosaic.astype(np.uint16))))


@pytest.mark.parametrize("cfa", CFA_PATTERNS)
def test_dng_round_trip_through_rawpy(tmp_path: Path, cfa: str) -> None:
    pytest.importorskip("rawpy")
    mosaic = np.random.default_rng(3).integers(64, 1023, (24, 32)).astype(np.uint16)
    path = tmp_path / f"synthetic_{cfa}.dng"
    write_dng(path, mosaic, cfa, black=64, white=1023)
    raw = read_raw(path)
    assert raw.format == "camera" and raw.cfa == cfa
    assert raw.black_level == 64 and raw.white_level == 1023
    assert np.array_equal(raw.mosaic, mosaic)
    assert raw.wb_gains is None and raw.color_matrix is None  # the file records neither


def test_dng_of_real_sample_with_metadata_and_margins(tmp_path: Path, shared_raw: Path) -> None:
    pytest.importorskip("rawpy")
    dog = read_raw(DOG, cfa="GRBG", black_level=25, white_level=1023).mosaic
    path = tmp_path / "dog.dng"
    # 2-pixel sensor margins on the top and left, 2 on the right.
    write_dng(path, dog, "GRBG", 25, 1023, neutral=(0.5, 1.0, 0.625), active_area=(2, 2, 344, 254))
    raw = read_raw(path)
    assert raw.shape == (342, 252) and np.array_equal(raw.mosaic, dog[2:, 2:254])
    assert raw.cfa == "GRBG" and raw.black_level == 25 and raw.white_level == 1023
    assert raw.metadata["margins"] == (2, 2) and raw.metadata["raw_size"] == (344, 256)
    assert raw.wb_gains == pytest.approx((2.0, 1.0, 1.6), rel=1e-3)
    assert raw.color_matrix is not None and raw.color_matrix.shape == (3, 3)
    assert np.allclose(raw.color_matrix.sum(axis=1), 1.0, atol=1e-3)  # white stays white
    assert read_raw(path, white_level=1000, preset=None).white_level == 1000  # explicit override
    assert read_raw(path, preset="zurich").white_level == 1020 and read_raw(path, preset="zurich").cfa == "GRBG"
    image = render(raw)
    assert image.shape == (342, 252, 3) and 0.0 <= image.min() and image.max() <= 1.0


def test_truncated_and_garbage_camera_files(tmp_path: Path) -> None:
    pytest.importorskip("rawpy")
    good = tmp_path / "good.dng"
    write_dng(good, np.full((16, 16), 500, np.uint16), "RGGB", 0, 1023)
    cut = tmp_path / "cut.dng"
    cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(RawFormatError, match="cut.dng.*truncated"):
        read_raw(cut)
    garbage = tmp_path / "junk.nef"
    garbage.write_bytes(b"\x00garbage" * 200)
    with pytest.raises(RawFormatError, match="junk.nef"):
        read_raw(garbage)


# ------------------------------------------------------------------- classical ISP


@pytest.mark.parametrize("method", ["malvar", "bilinear"])
@pytest.mark.parametrize("cfa", CFA_PATTERNS)
def test_demosaic_reproduces_a_flat_colour(cfa: str, method: str) -> None:
    colour = np.array([0.6, 0.3, 0.15], np.float32)
    scene = np.broadcast_to(colour, (9, 12, 3))
    rgb = demosaic(scene_mosaic(cfa, scene), cfa, method)
    assert rgb.shape == (9, 12, 3) and rgb.dtype == np.float32
    assert np.allclose(rgb, colour, atol=1e-5)


@pytest.mark.parametrize("cfa", CFA_PATTERNS)
def test_malvar_beats_bilinear_on_correlated_detail(cfa: str) -> None:
    # Malvar-He-Cutler borrows the Laplacian of the sampled channel, which pays off when
    # the channels share their edges (as in natural images).
    yy, xx = np.mgrid[0:48, 0:64].astype(np.float32)
    lum = 0.5 + 0.35 * np.sin(xx / 2.5) * np.cos(yy / 3.0)
    scene = np.stack([0.9 * lum, 0.7 * lum + 0.1, 0.5 * lum + 0.05], -1)
    mosaic = scene_mosaic(cfa, scene)
    inner = (slice(4, -4), slice(4, -4))
    err = {m: np.abs(demosaic(mosaic, cfa, m) - scene)[inner].mean() for m in ("bilinear", "malvar")}
    assert err["malvar"] < 0.8 * err["bilinear"]


def test_gray_world_recovers_a_colour_cast() -> None:
    rng = np.random.default_rng(4)
    blocks = rng.uniform(0.1, 0.5, (16, 16, 1)).repeat(3, axis=-1)
    # 70% of the scene is a saturated red surface, the rest is grey: plain gray-world is
    # fooled by the red, the neutral-block refinement is not.
    red = rng.random((16, 16)) < 0.7
    blocks[red] *= np.array([1.0, 0.25, 0.2])
    cast = np.array([0.5, 1.0, 0.8])
    scene = (blocks * cast).repeat(2, axis=0).repeat(2, axis=1)
    mosaic = scene_mosaic("BGGR", scene)
    assert gray_world_gains(mosaic, "BGGR") == pytest.approx((2.0, 1.0, 1.25), rel=0.02)
    plain = gray_world_gains(mosaic, "BGGR", refine=0)
    assert plain[0] < 1.5  # the red surface pulled plain gray-world far off


def test_render_real_samples(shared_raw: Path) -> None:
    rose = render(read_raw(ROSE, **ROSE_LAYOUT))
    assert rose.shape == (512, 768, 3) and rose.dtype == np.float32
    assert 0.0 <= rose.min() and rose.max() <= 1.0
    centre = rose[200:330, 250:500].reshape(-1, 3).mean(axis=0)
    assert centre[0] > 1.5 * centre[1] and centre[0] > 1.5 * centre[2]  # a red rose
    dog = render(read_sample(), demosaic_method="bilinear")
    assert dog.shape == (344, 256, 3) and 0.2 < dog.mean() < 0.8
    chart = render(read_raw(CHART, **CHART_LAYOUT))
    grey_patch = chart[560:620, 870:960].reshape(-1, 3).mean(axis=0)  # the central grey card
    assert np.ptp(grey_patch) < 0.05 and 0.3 < grey_patch.mean() < 0.8
    with pytest.raises(InputError, match="as-shot"):
        render(read_sample(), white_balance="as-shot")
    with pytest.raises(UnknownNameError):
        render(read_sample(), demosaic_method="ahd")


# --------------------------------------------------------------------- image writers


def decode_png16(data: bytes) -> np.ndarray:
    """Minimal decoder for the filter-0 16-bit PNGs write_image produces."""
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunks[kind] = chunks.get(kind, b"") + data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    channels = 3 if colour == 2 else 1
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, -1)
    assert depth == 16 and np.all(raw[:, 0] == 0)
    return raw[:, 1:].copy().view(">u2").reshape(height, width, channels).squeeze()


def test_write_image_formats(tmp_path: Path) -> None:
    from PIL import Image

    rgb = np.random.default_rng(5).random((10, 14, 3)).astype(np.float32)
    png8 = write_image(tmp_path / "a.png", rgb)
    assert np.abs(np.asarray(Image.open(png8)) / 255.0 - rgb).max() <= 0.5 / 255 + 1e-6
    png16 = write_image(tmp_path / "b.png", rgb, bits=16)
    assert np.abs(decode_png16(png16.read_bytes()) / 65535.0 - rgb).max() <= 0.5 / 65535 + 1e-6
    jpg = write_image(tmp_path / "c.JPG", rgb)
    assert np.asarray(Image.open(jpg)).shape == (10, 14, 3)
    tifffile = pytest.importorskip("tifffile")
    tif = write_image(tmp_path / "d.tif", rgb, bits=16)
    back = tifffile.imread(tif)
    assert back.dtype == np.uint16 and np.abs(back / 65535.0 - rgb).max() <= 0.5 / 65535 + 1e-6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "c.JPG", "d.tif"]  # no temp files


def test_write_image_errors(tmp_path: Path) -> None:
    rgb = np.zeros((4, 4, 3))
    with pytest.raises(InputError, match=r"\.bmp"):
        write_image(tmp_path / "x.bmp", rgb)
    with pytest.raises(InputError, match="16-bit"):
        write_image(tmp_path / "x.jpg", rgb, bits=16)
    with pytest.raises(InputError, match="NaN"):
        write_image(tmp_path / "x.png", np.full((4, 4, 3), np.nan))
    with pytest.raises(InputError, match="shape"):
        write_image(tmp_path / "x.png", np.zeros((4, 4, 2)))
    assert list(tmp_path.iterdir()) == []


def test_importing_edge_isp_raw_does_not_import_heavy_packages() -> None:
    code = (
        "import sys, edge_isp.raw, edge_isp.data; "
        "heavy = [m for m in ('torch', 'rawpy', 'PIL', 'tifffile', 'skimage') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env={"PYTHONPATH": str(REPO)})
