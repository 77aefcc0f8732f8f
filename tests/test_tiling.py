"""Tiled full-resolution inference: plans, CFA phase, blending, agreement with untiled, memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edge_isp.errors import InputError
from edge_isp.raw import RawImage, read_raw
from edge_isp.runtimes.base import TensorSpec
from edge_isp.runtimes.bundle_runner import open_bundle, open_model
from edge_isp.runtimes.tiling import plan_tiles, run_tiled

from test_runtimes import converted, psnr


class PointwiseRunner:
    """A fake fixed-input ISP with no spatial context: RGB = (R, mean(Gr, Gb), B), 2x nearest.

    Any tiling of it must reproduce the untiled result exactly, so it checks the tile
    positions, the CFA phase of every tile and the blend normalisation.
    """

    runtime = "fake"

    def __init__(self, packed_hw: tuple[int, int] = (48, 64), batch: int = 1) -> None:
        h, w = packed_hw
        self.input_spec = TensorSpec("x", (batch, 4, h, w), "float32", "NCHW")
        self.output_spec = TensorSpec("y", (batch, 3, 2 * h, 2 * w), "float32", "NCHW")
        self.calls = 0

    def run(self, x: np.ndarray) -> np.ndarray:
        assert x.shape[1:] == self.input_spec.shape[1:] or self.input_spec.shape[2] == -1
        self.calls += 1
        b, gr, r, gb = x[:, 0], x[:, 1], x[:, 2], x[:, 3]
        rgb = np.stack([r, (gr + gb) / 2, b], axis=1)
        return rgb.repeat(2, axis=2).repeat(2, axis=3)


def _mosaic(h: int, w: int, seed: int = 0) -> RawImage:
    rng = np.random.default_rng(seed)
    return RawImage(rng.integers(64, 1023, (h, w), dtype=np.uint16), cfa="GRBG", black_level=64, white_level=1023)


def test_plan_covers_the_image_with_even_mosaic_offsets() -> None:
    plan = plan_tiles((300, 410), (96, 160), overlap=32)
    assert plan.rows[0] == 0 and plan.rows[-1] + 96 == 300
    assert plan.cols[0] == 0 and plan.cols[-1] + 160 == 410
    for a, b in zip(plan.rows, plan.rows[1:]):
        assert 96 - (b - a) >= 32             # at least the requested overlap
    for a, b in zip(plan.cols, plan.cols[1:]):
        assert 160 - (b - a) >= 32
    assert all(y % 2 == 0 and x % 2 == 0 for y, x in plan.mosaic_offsets)
    assert plan.count == len(plan.rows) * len(plan.cols)


def test_plan_single_tile_and_padding() -> None:
    assert plan_tiles((96, 160), (96, 160)).count == 1
    small = plan_tiles((40, 50), (96, 160))
    assert small.count == 1 and small.padded_hw == (96, 160)
    with pytest.raises(InputError, match="overlap"):
        plan_tiles((300, 300), (96, 160), overlap=60)


@pytest.mark.parametrize("overlap", [0, 8, 24])
@pytest.mark.parametrize("batch", [1, 3])
def test_tiled_equals_untiled_for_a_pointwise_model_any_cfa_phase(overlap: int, batch: int) -> None:
    raw = _mosaic(250, 342)       # odd packed sizes and a GRBG pattern
    runner = PointwiseRunner((48, 64), batch=batch)
    got = run_tiled(runner, raw, overlap=overlap)
    even = raw.crop(0, 0, 250, 342)
    full = PointwiseRunner((125, 171)).run(even.packed()[None])[0].transpose(1, 2, 0)
    assert got.shape == (250, 342, 3)
    np.testing.assert_allclose(got, np.clip(full, 0, 1), atol=1e-6)


def test_tiled_integer_output_and_progress() -> None:
    raw = _mosaic(200, 260)
    runner = PointwiseRunner((48, 64))
    ref = run_tiled(runner, raw)
    seen: list[tuple[int, int]] = []
    u16 = run_tiled(runner, raw, out_dtype=np.uint16, progress=lambda d, t: seen.append((d, t)))
    u8 = run_tiled(runner, raw, out_dtype="uint8")
    assert u16.dtype == np.uint16 and u8.dtype == np.uint8
    np.testing.assert_array_equal(u16, np.rint(ref * 65535).astype(np.uint16))
    np.testing.assert_array_equal(u8, np.rint(ref * 255).astype(np.uint8))
    assert seen[-1][0] == seen[-1][1] == len(seen)


def test_photo_smaller_than_the_tile_is_padded_and_cropped() -> None:
    raw = _mosaic(40, 58)
    got = run_tiled(PointwiseRunner((48, 64)), raw)
    full = PointwiseRunner((20, 29)).run(raw.packed()[None])[0].transpose(1, 2, 0)
    np.testing.assert_allclose(got, full, atol=1e-6)


def test_packed_array_source_and_bad_input() -> None:
    raw = _mosaic(200, 260)
    runner = PointwiseRunner((48, 64))
    np.testing.assert_allclose(run_tiled(runner, raw.packed()), run_tiled(runner, raw), atol=1e-6)
    with pytest.raises(InputError, match="RawImage or packed"):
        run_tiled(runner, np.zeros((3, 10, 10), np.float32))


def _dsc(shared_raw: Path, size: tuple[int, int] = (320, 448)) -> RawImage:
    raw = read_raw(shared_raw / "DSC_1339_768x512_rggb_u16le.raw", width=768, height=512, cfa="RGGB",
                   black_level=600, white_level=15520)
    return raw.crop(96, 160, *size)


def test_tiled_matches_untiled_pytorch_on_a_real_photo(shared_raw: Path) -> None:
    # NoNorm: no per-image statistics, so tiles can agree with the whole image (the
    # InstanceNorm variant normalises per tile and cannot, by construction).
    raw = _dsc(shared_raw)
    whole = open_model("pynet-v2-mobile-nonorm", raw.shape).run(raw.packed()[None])[0].transpose(1, 2, 0)
    tiled = run_tiled(open_model("pynet-v2-mobile-nonorm", (160, 224)), raw, overlap=32)
    assert tiled.shape == whole.shape
    assert psnr(tiled, whole) > 60.0


def test_tiled_bundle_matches_untiled_pytorch(shared_raw: Path) -> None:
    bundle = converted("onnx-fp32", model="pynet-v2-mobile-nonorm", size=(160, 224))
    raw = _dsc(shared_raw)
    runner = open_bundle(bundle)
    tiled = run_tiled(runner, raw, overlap=32)
    whole = open_model("pynet-v2-mobile-nonorm", raw.shape).run(raw.packed()[None])[0].transpose(1, 2, 0)
    assert psnr(tiled, whole) > 60.0
    # An image exactly the tile size is one tile: identical to running the model directly.
    one = raw.crop(0, 0, 160, 224)
    direct = np.clip(runner.run(one.packed()[None])[0].transpose(1, 2, 0), 0, 1)
    np.testing.assert_allclose(run_tiled(runner, one), direct, atol=1e-6)


_RSS_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from test_tiling import PointwiseRunner
    from edge_isp._resources import peak_rss_mb, reset_peak_rss
    from edge_isp.raw import RawImage
    from edge_isp.runtimes.tiling import run_tiled
    H, W = 3000, 4000                                    # 12 MP
    mosaic = np.full((H, W), 300, np.uint16)
    mosaic[::7] = 900
    raw = RawImage(mosaic, cfa="RGGB", black_level=64, white_level=1023)
    runner = PointwiseRunner((96, 160))
    run_tiled(runner, raw.crop(0, 0, 400, 400))          # import / first-call costs out of the way
    import gc; gc.collect()
    reset_peak_rss()
    base = peak_rss_mb()
    out = run_tiled(runner, raw, overlap=32, out_dtype=np.uint8)
    print(json.dumps({"base": base, "peak": peak_rss_mb(), "tiles": runner.calls, "shape": list(out.shape),
                      "mean": float(out.mean())}))
""")


@pytest.mark.slow
def test_peak_rss_bounded_on_a_12mp_mosaic(tmp_path: Path) -> None:
    script = tmp_path / "rss.py"
    script.write_text(_RSS_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(Path(__file__).parent)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["shape"] == [3000, 4000, 3] and r["tiles"] > 100
    grown = r["peak"] - r["base"]
    out_mb = 3000 * 4000 * 3 / 2**20                    # the uint8 result (34 MB)
    tile_mb = 4 * 96 * 160 * 4 / 2**20 + 3 * 192 * 320 * 4 / 2**20
    band_mb = 192 * 4000 * 4 * 4 / 2**20                 # one band of tile rows (accumulators)
    # Packing the whole mosaic as float32 would cost 183 MB and a float32 result 137 MB:
    # the tiler must stay near output + a few bands/tiles.
    assert grown < out_mb + 4 * band_mb + 8 * tile_mb + 40, r
