"""PyNET and PyNET-CA: exact reference parameter counts, per-level shapes and parameters.

Counting, shape and wiring checks build the models on the meta device (no weights
allocated, no arithmetic), so the 47-51M-parameter models stay cheap; a real CPU forward
checks values at level 4 on the smallest accepted input (packed 32x32), where the full
level-0 graph would cost seconds per call. Level-0 numerics are covered by the ONNX export
check, which compares onnxruntime with torch.
"""

from __future__ import annotations

from functools import cache

import pytest

torch = pytest.importorskip("torch")

from edge_isp.errors import InputError  # noqa: E402
from edge_isp.models._registry import _REGISTRY, count_params  # noqa: E402
from edge_isp.models.pynet import build_pynet  # noqa: E402
from edge_isp.models.pynet_ca import build_pynet_ca  # noqa: E402

BUILDERS = {"pynet": build_pynet, "pynet-ca": build_pynet_ca}

# Parameters of the level-k model (k = 0..5). Level 0 is the reference figure; coarser
# levels drop the layers only finer levels use.
LEVEL_PARAMS = {
    "pynet": [47_554_738, 47_549_679, 43_226_764, 36_369_865, 28_347_462, 18_895_171],
    "pynet-ca": [51_303_515, 50_957_487, 46_580_428, 39_585_993, 31_270_342, 21_163_971],
}


def _meta(builder, **options):
    with torch.device("meta"):
        return builder(**options)


@cache
def _meta_level(name: str, level: int):
    return _meta(BUILDERS[name], level=level)


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        ("pynet", {}, 47_554_738),
        ("pynet", {"level": 0, "instance_norm": True, "instance_norm_level_1": True}, 47_554_738),
        ("pynet", {"instance_norm_level_1": False}, 47_551_666),
        ("pynet-ca", {}, 51_303_515),
        ("pynet-ca", {"channel_attention": False}, 47_867_003),
    ],
)
def test_reference_parameter_counts(name: str, options: dict, expected: int) -> None:
    assert count_params(_meta(BUILDERS[name], **options)) == expected


def test_channel_attention_parameter_count() -> None:
    with_ca = count_params(_meta(build_pynet_ca))
    without = count_params(_meta(build_pynet_ca, channel_attention=False))
    assert with_ca - without == 3_436_512


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_registry_entry_reproduces_reference(name: str) -> None:
    info = _REGISTRY[name]
    assert info.builder is BUILDERS[name]
    assert count_params(_meta(info.builder, **info.reference_options)) == info.reference_params
    assert info.input_multiple == 16 and info.min_packed_size == 32
    h, w = info.default_input_size
    assert (h // 2) % info.input_multiple == 0 and (w // 2) % info.input_multiple == 0


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("level", range(6))
def test_output_shape_and_used_parameters_per_level(name: str, level: int) -> None:
    model = _meta_level(name, level)
    named = dict(model.named_parameters())
    out = model(torch.empty(2, 4, 32, 48, device="meta"))  # mosaic 64x96
    assert tuple(out.shape) == (2, 3, 64 >> level, 96 >> level)

    # Every parameter feeds the level's output except the heads of coarser levels, which
    # are kept so coarser checkpoints load into finer models.
    grads = torch.autograd.grad(out.sum(), list(named.values()), allow_unused=True)
    idle = [n for n, g in zip(named, grads) if g is None]
    assert all(n.startswith("heads.") for n in idle)
    assert {n.split(".")[1] for n in idle} == {str(k) for k in range(level + 1, 6)}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_level_parameters_nest(name: str) -> None:
    shapes = []
    for level in range(6):
        model = _meta_level(name, level)
        assert count_params(model) == LEVEL_PARAMS[name][level]
        shapes.append({n: tuple(p.shape) for n, p in model.named_parameters()})
    for level in range(5):
        # A level-(k+1) model's parameters are a subset of level k's: same names and shapes.
        assert shapes[level + 1].items() <= shapes[level].items()


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_forward_values_are_rgb_in_unit_range_and_deterministic(name: str) -> None:
    torch.manual_seed(0)
    model = BUILDERS[name](level=4).eval()
    packed = torch.rand(1, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(packed)
        again = model(packed)
    assert out.shape == (1, 3, 4, 4)
    assert torch.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert torch.equal(out, again)


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("level", [-1, 6, 1.0, True])
def test_bad_level_is_an_input_error(name: str, level: object) -> None:
    with pytest.raises(InputError, match="level"):
        BUILDERS[name](level=level)
