"""Exact two-pass tiling of models that read the whole image, and whole-photo verification.

The photos are synthetic with strong global structure (a gradient sky over textured
ground), where a tile's own statistics differ most from the photo's.
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

from edge_isp.models import create, model_info  # noqa: E402
from edge_isp.models.global_context import (  # noqa: E402
    analyse,
    global_modules,
    plan_blocks,
    run_photo,
)
from _photos import psnr, sky, untiled  # noqa: E402




@pytest.mark.parametrize("name", ["pynet-v2-mobile-nonorm", "pynet-v2-mobile", "microisp", "lw-isp"])
def test_two_pass_tiles_equal_the_untiled_model(name):
    net = create(name, seed=0)
    info = model_info(name)
    packed = sky(216, 288)
    out, plan = run_photo(net, packed, multiple=info.input_multiple, block=144)
    assert len(plan_blocks(packed.shape[1:], 144, 0, plan.align)) >= 4   # really tiled
    assert plan.to_dict()["passes"] == len(global_modules(net)) + 1
    assert psnr(out, untiled(net, packed)) > 100                      # float rounding only


def test_plain_tiles_of_a_global_model_are_not_the_model():
    """The problem two-pass solves: per-tile statistics change the picture."""
    from edge_isp.runtimes.bundle_runner import open_model
    from edge_isp.runtimes.tiling import run_tiled

    net = create("pynet-v2-mobile", seed=0)
    packed = sky(360, 504)
    runner = open_model("pynet-v2-mobile", (288, 288), net=net)
    tiled = run_tiled(runner, packed, overlap=16)
    assert psnr(tiled, untiled(net, packed)) < 45


def test_analysis_finds_the_strides_and_order_of_the_default_model():
    plan = analyse(create("pynet-v2-mobile-nonorm", seed=0))
    # Two channel attentions: after three stride-2 levels and a stride-9 reduce (36 packed px),
    # then one level up (18); the deeper one runs first.
    assert plan.strides == ((36, 36), (18, 18)) and plan.align == 36
    assert plan.output_scale == 2 and plan.output_halo > 0 and all(h > 0 for h in plan.halos)


def test_a_measured_plan_is_kept_on_disk_for_the_next_run(tmp_path, monkeypatch):
    """process / verify / convert measure a model's global ops once per architecture, not once
    per run; a damaged cache file is measured again, never trusted."""
    import edge_isp.models.global_context as gc
    from edge_isp.models import global_plan_cache as plan_cache

    monkeypatch.setenv("EDGE_ISP_CACHE", str(tmp_path))
    first = gc.plan_for(create("microisp", seed=0))
    files = list((tmp_path / "global-plans").glob("*.json"))
    assert len(files) == 1

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(gc, "analyse", no_measuring)
    assert gc.plan_for(create("microisp", seed=1)) == first          # another process, other weights: read back
    files[0].write_text('{"order": [0], "strides": [[-1, 2]]}')
    monkeypatch.setattr(gc, "analyse", lambda model, multiple=4: first)
    assert gc.plan_for(create("microisp", seed=2)) == first          # damaged: measured (here: stubbed) again
    assert gc.GlobalPlan(**plan_cache.read(files[0])) == first       # ... and the file repaired
    assert plan_cache.cache_file(create("lw-isp"), 4) != files[0]   # another architecture, another file


def test_marked_modules_compute_as_plain_pytorch_outside_a_context():
    net = create("pynet-v2-mobile", seed=3)
    x = torch.from_numpy(sky(64, 96))[None]
    norm = next(m for m in net.modules() if isinstance(m, torch.nn.InstanceNorm2d))
    ref = torch.nn.functional.instance_norm(x[:, :1].repeat(1, norm.num_features, 1, 1), weight=norm.weight,
                                            bias=norm.bias, eps=norm.eps)
    with torch.no_grad():
        assert torch.allclose(norm(x[:, :1].repeat(1, norm.num_features, 1, 1)), ref)
    state = net.state_dict()
    assert not any("global_pool" in k for k in state)  # weights stay compatible


def _photo(path: Path, h: int = 720, w: int = 1008) -> Path:
    """The sky as a 16-bit RGGB Bayer PNG (mosaic 2h x 2w)."""
    from PIL import Image

    b, gr, r, gb = sky(h // 2, w // 2)
    mosaic = np.zeros((h, w), np.float32)
    mosaic[0::2, 0::2], mosaic[0::2, 1::2], mosaic[1::2, 0::2], mosaic[1::2, 1::2] = r, gr, gb, b
    Image.fromarray((mosaic * 65535).astype(np.uint16)).save(path)
    return path


def _verify(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_isp.cli", "verify", *args, "--cfa", "RGGB", "--black", "0",
                           "--white", "65535", "-o", str(tmp_path / "v"), "--json"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path, env=dict(os.environ))


def test_verify_two_pass_meets_the_bars_and_writes_a_heatmap(tmp_path):
    photo = _photo(tmp_path / "sky.png")
    proc = _verify(tmp_path, str(photo), "--block", "144")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    p = report["photos"][0]
    assert p["mode"].startswith("two-pass") and p["tiles"] >= 2
    assert p["psnr_db"] >= 50 and p["worst_tile_psnr_db"] >= 45 and p["seam_score"] <= 1.05
    assert Path(p["diff_png"]).is_file() and report["passed"]


def test_verify_catches_plain_tiling_with_exit_1(tmp_path):
    photo = _photo(tmp_path / "sky.png")
    proc = _verify(tmp_path, str(photo), "--no-two-pass", "--tile", "288x320")
    assert proc.returncode == 1, proc.stderr
    p = json.loads(proc.stdout)["photos"][0]
    assert p["mode"] == "blended tiles" and p["psnr_db"] < 50 and not p["passed"]
    assert len(proc.stderr.strip().splitlines()) == 1 and "psnr_db" in proc.stderr
    again = _verify(tmp_path, str(photo), "--no-two-pass", "--tile", "288x320")
    assert again.returncode == 3 and "--overwrite" in again.stderr   # the heat-map is not replaced silently


def test_one_default_block_size():
    from edge_isp.models.global_context import DEFAULT_BLOCK
    from edge_isp.process import TWO_PASS_BLOCK

    assert TWO_PASS_BLOCK == DEFAULT_BLOCK
