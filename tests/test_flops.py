"""Compute cost measured on the graph (edge_isp.models.flops) and the `models` GFLOP/MP column."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from edge_isp.errors import InputError
from edge_isp.models import create, list_models, model_info
from edge_isp.models.flops import PROBE_MOSAIC_HW, count_flops, model_flops, probe_size


def _hook_macs(net: nn.Module, shape: tuple[int, ...]) -> int:
    """An independent count: forward hooks on the conv / linear modules, MACs by formula."""
    total = 0

    def hook(m, inputs, out):
        nonlocal total
        if isinstance(m, nn.Linear):
            total += out.numel() * m.in_features
        elif isinstance(m, nn.ConvTranspose2d):   # every input pixel scatters a full kernel
            total += inputs[0].numel() * m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3]
        else:                                      # every output pixel gathers a (grouped) kernel
            total += out.numel() * m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3]

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    try:
        with torch.no_grad():
            net(torch.empty(shape, device=next(net.parameters()).device))
    finally:
        for h in handles:
            h.remove()
    return total


@pytest.mark.parametrize(("layer", "shape", "macs"), [
    (nn.Conv2d(4, 8, 3, padding=1), (1, 4, 10, 12), 8 * 10 * 12 * 4 * 9),
    (nn.Conv2d(4, 8, 2, stride=2), (2, 4, 10, 12), 2 * 8 * 5 * 6 * 4 * 4),
    (nn.Conv2d(16, 16, 5, padding=2, groups=16), (1, 16, 9, 7), 16 * 9 * 7 * 25),       # depthwise
    (nn.ConvTranspose2d(8, 6, 3, stride=2), (1, 8, 5, 4), 5 * 4 * 8 * 6 * 9),           # per input pixel
    (nn.Linear(256, 128), (3, 256), 3 * 256 * 128),
])
def test_flops_are_twice_the_macs_of_each_layer(layer, shape, macs):
    flops, by_op = count_flops(layer.eval(), shape)
    assert flops == 2 * macs
    assert sum(by_op.values()) == flops


def test_elementwise_ops_norms_and_resizes_are_not_counted():
    net = nn.Sequential(nn.InstanceNorm2d(4), nn.PReLU(4), nn.Upsample(scale_factor=2, mode="bilinear"),
                        nn.Sigmoid(), nn.PixelShuffle(2))
    assert count_flops(net, (1, 4, 16, 16))[0] == 0


@pytest.mark.parametrize("name", list_models())
def test_counter_agrees_with_an_independent_hook_count(name):
    """The aten-level counter and per-module hooks see the same MACs: nothing in a registry
    model computes through a path one of them misses, and nothing is counted twice."""
    info = model_info(name)
    hw = probe_size(name)
    with torch.device("meta"):
        net = info.builder(**{**info.default_options, **info.reference_options}).eval()
    cost = model_flops(name, **info.reference_options)
    assert cost.mosaic_hw == hw
    assert cost.flops == 2 * _hook_macs(net, (1, 4, hw[0] // 2, hw[1] // 2)) > 0


@pytest.mark.parametrize("name", list_models())
def test_flops_per_pixel_do_not_depend_on_the_probe_size(name):
    """Fully convolutional: FLOPs grow with the pixel count. Only global pooling and the
    border rounding of stride-3 valid convs (channel attention) are size-dependent; measured
    at the model's small default size and at the deployment-sized probe they agree to 0.1%."""
    info = model_info(name)
    small = model_flops(name, info.default_input_size, **info.reference_options)
    large = model_flops(name, **info.reference_options)
    assert large.mosaic_hw[0] * large.mosaic_hw[1] >= 4 * small.mosaic_hw[0] * small.mosaic_hw[1]
    assert large.flops > 4 * small.flops
    assert large.gflop_per_raw_mp == pytest.approx(small.gflop_per_raw_mp, rel=1e-3)


@pytest.mark.parametrize("name", ["microisp", "pynet-v2-mobile-slim-plus"])
def test_meta_device_count_equals_a_real_forward_pass(name):
    info = model_info(name)
    h, w = info.default_input_size
    real, _ = count_flops(create(name), (1, 4, h // 2, w // 2))
    assert model_flops(name, (h, w)).flops == real


def test_pynet_matches_the_reference_multiply_add_count():
    # MODELS.md: plain conv multiply-adds of the PyNET reference on a 4x224x224 packed input
    # (448x448 mosaic) are 342.215 G. The port counts 342.131 G (0.02% apart; the paper's
    # thop figure, 342.698 G, includes more than convs).
    c = model_flops("pynet", (448, 448))
    assert c.macs / 1e9 == pytest.approx(342.215, rel=1e-3)
    assert c.flops == 2 * c.macs


def test_paper_variants_order_by_compute():
    nonorm, slim, plus, ref = (model_flops(n).gflop_per_raw_mp for n in (
        "pynet-v2-mobile-nonorm", "pynet-v2-mobile-slim", "pynet-v2-mobile-slim-plus", "pynet-v2-mobile"))
    assert ref == nonorm                        # instance norm is not a MAC
    assert nonorm > slim > plus
    # Slim: a quarter of the pixels at twice the widths costs about the same per pixel;
    # Slim+'s depthwise upsamplers save about 30%.
    assert slim / nonorm == pytest.approx(1.0, abs=0.01)
    assert plus / nonorm == pytest.approx(0.70, abs=0.02)


def test_probe_sizes_fit_every_model_and_counts_are_cached():
    for name in list_models():
        info = model_info(name)
        h, w = probe_size(name)
        step = 2 * info.input_multiple
        assert h % step == 0 and w % step == 0 and min(h, w) >= 2 * info.min_packed_size
        assert h <= PROBE_MOSAIC_HW[0] and w <= PROBE_MOSAIC_HW[1]
    assert model_flops("microisp") is model_flops("microisp")


def test_bad_sizes_and_options_are_refused():
    with pytest.raises(InputError, match="even"):
        model_flops("punet", (321, 480))
    with pytest.raises(InputError, match="cannot run"):
        model_flops("pynet-v2-mobile", (8, 8))
    with pytest.raises(InputError, match="no option"):
        model_flops("pynet-v2-mobile", bogus=1)


def test_models_cli_shows_gflop_per_raw_mp():
    proc = subprocess.run([sys.executable, "-m", "edge_isp.cli", "models", "--json"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert set(rows) == set(list_models())
    for name, r in rows.items():
        info = model_info(name)
        assert r["gflop_per_raw_mp"] == round(model_flops(name, **info.reference_options).gflop_per_raw_mp, 3)
        assert r["flop_probe_mosaic"] == "x".join(map(str, probe_size(name)))
    assert rows["pynet"]["gflop_per_raw_mp"] > 50 * rows["pynet-v2-mobile"]["gflop_per_raw_mp"]
    table = subprocess.run([sys.executable, "-m", "edge_isp.cli", "models"], capture_output=True, text=True,
                           timeout=300)
    assert table.returncode == 0, table.stderr
    assert "GFLOP/MP RAW" in table.stdout and "2xMAC" in table.stdout
    assert "42.7" in table.stdout.split("pynet-v2-mobile-slim-plus")[1].splitlines()[0]
