"""Tests of the RAW datasets: Zurich layout, full-resolution photos, plain RAW folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from edge_isp.data.datasets import RawFolder, ZurichFullResolution, ZurichRawToRgb  # noqa: E402
from edge_isp.errors import InputError, RawFormatError  # noqa: E402
from edge_isp.raw import CFA_PATTERNS, pack_bayer  # noqa: E402

SIZE = 32  # side of the fake Zurich patches (the real ones are 448)


def smooth_scene(seed: int, size: int = SIZE) -> np.ndarray:
    """An RGB scene with steep, distinct gradients so a one-pixel shift is visible."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    phase = seed * 0.7
    scene = np.stack(
        [
            0.5 + 0.45 * np.sin(xx / 2.0 + phase),
            0.5 + 0.45 * np.sin(yy / 2.3 + phase),
            0.5 + 0.45 * np.sin((xx + 2 * yy) / 3.1 + phase),
        ],
        -1,
    )
    return scene


def rggb_mosaic(scene: np.ndarray) -> np.ndarray:
    out = np.empty(scene.shape[:2])
    out[0::2, 0::2] = scene[0::2, 0::2, 0]
    out[0::2, 1::2] = scene[0::2, 1::2, 1]
    out[1::2, 0::2] = scene[1::2, 0::2, 1]
    out[1::2, 1::2] = scene[1::2, 1::2, 2]
    return out


def make_zurich(root: Path, n: int = 3, target_ext: str = ".jpg", split: str = "train") -> Path:
    """Write a fake Zurich layout: 10-bit RGGB mosaics as uint16 PNG, targets as images."""
    raw_dir = root / "raw_images" / split / "huawei_raw"
    target_dir = root / "raw_images" / split / "canon"
    raw_dir.mkdir(parents=True)
    target_dir.mkdir(parents=True)
    for i in range(n):
        scene = smooth_scene(i)
        mosaic = np.rint(rggb_mosaic(scene) * 1020).astype(np.uint16)
        Image.fromarray(mosaic).save(raw_dir / f"{i}.png")
        Image.fromarray(np.rint(scene * 255).astype(np.uint8)).save(target_dir / f"{i}{target_ext}")
    return root


def test_zurich_items_match_the_reference_reading(tmp_path: Path) -> None:
    make_zurich(tmp_path)
    ds = ZurichRawToRgb(tmp_path, split="train", flips=False)  # finds raw_images/ itself
    assert len(ds) == 3
    raw, target = ds[1]
    assert raw.dtype == torch.float32 and raw.shape == (4, SIZE // 2, SIZE // 2)
    assert target.dtype == torch.float32 and target.shape == (3, SIZE, SIZE)
    mosaic = np.asarray(Image.open(tmp_path / "raw_images/train/huawei_raw/1.png")).astype(np.float32)
    reference = np.stack([mosaic[1::2, 1::2], mosaic[0::2, 1::2], mosaic[0::2, 0::2], mosaic[1::2, 0::2]]) / 1020.0
    assert np.allclose(raw.numpy(), reference)
    assert 0.0 <= float(target.min()) and float(target.max()) <= 1.0


@pytest.mark.parametrize("crop", [None, 16])
def test_zurich_flips_keep_cfa_phase_and_alignment(tmp_path: Path, crop: int | None) -> None:
    make_zurich(tmp_path, n=1, target_ext=".png")  # lossless targets: exact comparison
    gen = torch.Generator().manual_seed(0)
    ds = ZurichRawToRgb(tmp_path / "raw_images", crop=crop, flips=True, target_ext=".png", generator=gen)
    side = crop or SIZE
    seen = set()
    for _ in range(24):
        raw, target = ds[0]
        assert raw.shape == (4, side // 2, side // 2) and target.shape == (3, side, side)
        t = target.numpy()
        # RGGB geometry in every sample: R top-left, B bottom-right of each 2x2 block,
        # each packed sample equal to the target pixel it was taken from.
        tol = 1.0 / 255 + 1.0 / 1020
        assert np.abs(raw[2].numpy() - t[0, 0::2, 0::2]).max() <= tol
        assert np.abs(raw[1].numpy() - t[1, 0::2, 1::2]).max() <= tol
        assert np.abs(raw[3].numpy() - t[1, 1::2, 0::2]).max() <= tol
        assert np.abs(raw[0].numpy() - t[2, 1::2, 1::2]).max() <= tol
        seen.add(round(float(t[0, 0, 0]), 3))
    assert len(seen) > 1  # the augmentation did vary


def test_zurich_levels_resize_targets(tmp_path: Path) -> None:
    make_zurich(tmp_path)
    raw, target = ZurichRawToRgb(tmp_path, level=2, flips=False)[0]
    assert raw.shape == (4, 16, 16) and target.shape == (3, 8, 8)
    raw, target = ZurichRawToRgb(tmp_path, level=1, crop=(16, 24), flips=True)[2]
    assert raw.shape == (4, 8, 12) and target.shape == (3, 8, 12)
    with pytest.raises(InputError, match="multiples of 8"):
        ZurichRawToRgb(tmp_path, level=3, crop=12)
    loader = torch.utils.data.DataLoader(ZurichRawToRgb(tmp_path, flips=True), batch_size=3)
    raws, targets = next(iter(loader))
    assert raws.shape == (3, 4, 16, 16) and targets.shape == (3, 3, 32, 32)


def test_zurich_preset_ca_and_uint8_patches(tmp_path: Path) -> None:
    make_zurich(tmp_path, n=1)
    path = tmp_path / "raw_images/train/huawei_raw/0.png"
    Image.fromarray(np.full((SIZE, SIZE), 200, np.uint8)).save(path)  # some patches are stored as uint8
    raw, _ = ZurichRawToRgb(tmp_path, preset="zurich-ca", flips=False)[0]
    assert np.allclose(raw.numpy(), 200 / 1023)


def test_zurich_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="huawei_raw"):
        ZurichRawToRgb(tmp_path)
    make_zurich(tmp_path, n=3)
    (tmp_path / "raw_images/train/canon/2.jpg").unlink()
    with pytest.raises(InputError, match="2.jpg"):
        ZurichRawToRgb(tmp_path)
    with pytest.raises(InputError, match="split"):
        ZurichRawToRgb(tmp_path, split="val")
    with pytest.raises(InputError, match="huawei_raw"):
        ZurichRawToRgb(tmp_path, split="test")


def test_zurich_full_resolution(tmp_path: Path) -> None:
    folder = tmp_path / "raw_images" / "test" / "huawei_full_resolution"
    folder.mkdir(parents=True)
    Image.fromarray(np.full((40, 60), 510, np.uint16)).save(folder / "1.png")
    ds = ZurichFullResolution(tmp_path)
    assert len(ds) == 1 and ds.paths[0].name == "1.png"
    item = ds[0]
    assert item.shape == (4, 20, 30) and np.allclose(item.numpy(), 0.5)
    with pytest.raises(InputError, match="full"):
        ZurichFullResolution(tmp_path / "raw_images" / "train")


# ------------------------------------------------------------------------ RawFolder


def coded(cfa: str, h: int, w: int) -> np.ndarray:
    """Mosaic whose value at a site = 100 * code of its packed channel (B=1, Gr=2, R=3, Gb=4)."""
    code = {"B": 1, "Gr": 2, "R": 3, "Gb": 4}
    red_row = 0 if "R" in cfa[:2] else 1
    out = np.zeros((h, w), np.uint16)
    for y in range(h):
        for x in range(w):
            letter = cfa[(y % 2) * 2 + x % 2]
            if letter == "G":
                letter = "Gr" if y % 2 == red_row else "Gb"
            out[y, x] = 100 * code[letter]
    return out


def test_raw_folder_of_headerless_files(tmp_path: Path) -> None:
    for i in range(3):
        coded("RGGB", 20, 24).astype("<u2").tofile(tmp_path / f"{i}.raw")
    (tmp_path / "notes.txt").write_text("not a raw file")
    layout = {"width": 24, "height": 20, "cfa": "RGGB", "white_level": 1000}
    ds = RawFolder(tmp_path, crop=8, flips=True, layout=layout, generator=torch.Generator().manual_seed(1))
    assert len(ds) == 3 and all(p.suffix == ".raw" for p in ds.paths)
    for i in range(9):
        item = ds[i % 3]  # channel identity must survive flips and crops
        assert item.shape == (4, 4, 4)
        assert torch.allclose(item, torch.tensor([0.1, 0.2, 0.3, 0.4]).view(4, 1, 1).expand(4, 4, 4))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch.shape == (3, 4, 4, 4)


@pytest.mark.parametrize("cfa", CFA_PATTERNS)
def test_raw_folder_aligns_any_cfa_to_rggb(tmp_path: Path, cfa: str) -> None:
    Image.fromarray(coded(cfa, 18, 22)).save(tmp_path / "a.png")
    gen = torch.Generator().manual_seed(2)
    for crop in (None, 10):
        ds = RawFolder(tmp_path, crop=crop, flips=True, layout={"cfa": cfa, "white_level": 1000}, generator=gen)
        for _ in range(6):
            item = ds[0].numpy()
            assert item.shape == ((4, 9, 11) if crop is None else (4, 5, 5))
            assert np.allclose(item, np.array([0.1, 0.2, 0.3, 0.4]).reshape(4, 1, 1))
    # cfa=None keeps the file's own phase; the channels are still in canonical order.
    own = RawFolder(tmp_path, layout={"cfa": cfa, "white_level": 1000}, cfa=None)[0].numpy()
    assert np.allclose(own, pack_bayer(coded(cfa, 18, 22), cfa) / 1000.0)


def test_raw_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a folder"):
        RawFolder(tmp_path / "nowhere")
    with pytest.raises(InputError, match="no RAW files"):
        RawFolder(tmp_path)
    np.zeros(100, "<u2").tofile(tmp_path / "x.raw")
    with pytest.raises(RawFormatError, match="bytes"):  # the layout is checked on the first file
        RawFolder(tmp_path, layout={"width": 20, "height": 20, "cfa": "RGGB", "white_level": 1023})
    with pytest.raises(InputError, match="larger"):
        RawFolder(tmp_path, crop=12, layout={"width": 10, "height": 10, "cfa": "RGGB", "white_level": 1023})
    with pytest.raises(InputError, match="even"):
        RawFolder(tmp_path, crop=5, layout={"width": 10, "height": 10, "cfa": "RGGB", "white_level": 1023})
