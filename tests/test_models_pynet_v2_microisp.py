"""PyNET-V2 Mobile (and variants) and MicroISP: parameter counts, shapes, options."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edge_isp.errors import InputError  # noqa: E402
from edge_isp.models import microisp, pynet_v2  # noqa: E402, F401  (runs the decorators)
from edge_isp.models._registry import _REGISTRY, count_params  # noqa: E402

PYNET_V2_NAMES = [
    "pynet-v2-mobile",
    "pynet-v2-mobile-nonorm",
    "pynet-v2-mobile-slim",
    "pynet-v2-mobile-slim-plus",
]


def _build(name: str, **options: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return _REGISTRY[name].builder(**options).eval()


def _count(name: str, **options: object) -> int:
    # The meta device skips weight initialisation: counting needs shapes only.
    with torch.device("meta"):
        return count_params(_REGISTRY[name].builder(**options))


def _smallest_packed(name: str) -> int:
    info = _REGISTRY[name]
    m = info.input_multiple
    return -(-info.min_packed_size // m) * m


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        ("pynet-v2-mobile", {"level": 1}, 930_255),
        ("pynet-v2-mobile", {"level": 2}, 892_300),
        ("pynet-v2-mobile", {"level": 3}, 631_372),
        ("pynet-v2-mobile-nonorm", {"level": 1}, 929_743),
        ("pynet-v2-mobile", {"level": 1, "instance_norm": False}, 929_743),
        ("microisp", {}, 13_560),
    ],
)
def test_reference_parameter_counts(name: str, options: dict, expected: int) -> None:
    assert _count(name, **options) == expected


@pytest.mark.parametrize("name", [*PYNET_V2_NAMES, "microisp"])
def test_registry_reference_matches_build(name: str) -> None:
    info = _REGISTRY[name]
    if info.reference_params is None:
        assert name in ("pynet-v2-mobile-slim", "pynet-v2-mobile-slim-plus")
        return
    assert _count(name, **info.reference_options) == info.reference_params


@pytest.mark.parametrize("name", PYNET_V2_NAMES)
@pytest.mark.parametrize("level", [1, 2, 3])
def test_padding_option_keeps_count(name: str, level: int) -> None:
    counts = {_count(name, level=level, padding=p) for p in ("reflect", "zero")}
    assert len(counts) == 1


@pytest.mark.parametrize("name", PYNET_V2_NAMES)
@pytest.mark.parametrize(("level", "scale"), [(1, 2.0), (2, 1.0), (3, 0.5)])
def test_pynet_v2_output_shapes(name: str, level: int, scale: float) -> None:
    h = _smallest_packed(name)
    w = h + _REGISTRY[name].input_multiple  # non-square catches H/W mix-ups
    with torch.no_grad():
        y = _build(name, level=level)(torch.rand(1, 4, h, w))
    assert tuple(y.shape) == (1, 3, int(h * scale), int(w * scale))
    # tanh(x) * 0.58 + 0.5 bounds every output.
    assert bool(torch.isfinite(y).all())
    assert float(y.min()) >= 0.5 - 0.58 - 1e-6 and float(y.max()) <= 0.5 + 0.58 + 1e-6


@pytest.mark.parametrize("name", PYNET_V2_NAMES)
def test_pynet_v2_zero_padding_runs(name: str) -> None:
    h = _smallest_packed(name)
    with torch.no_grad():
        y = _build(name, padding="zero")(torch.rand(1, 4, h, h))
    assert tuple(y.shape) == (1, 3, 2 * h, 2 * h)


def test_microisp_output_shape_at_minimum_size() -> None:
    info = _REGISTRY["microisp"]
    s = info.min_packed_size
    with torch.no_grad():
        y = _build("microisp")(torch.rand(2, 4, s, s + 1))
    assert tuple(y.shape) == (2, 3, 2 * s, 2 * (s + 1))
    assert info.output_scale == 1.0


def test_microisp_below_minimum_size_fails() -> None:
    s = _REGISTRY["microisp"].min_packed_size - 1
    with pytest.raises(RuntimeError):
        _build("microisp")(torch.rand(1, 4, s, s))


def test_forward_is_deterministic() -> None:
    net = _build("pynet-v2-mobile", level=1)
    x = torch.rand(1, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x), net(x))


def test_registry_metadata() -> None:
    for name in PYNET_V2_NAMES + ["microisp"]:
        info = _REGISTRY[name]
        h, w = info.default_input_size
        assert (h // 2) % info.input_multiple == 0 and (w // 2) % info.input_multiple == 0
        assert min(h, w) // 2 >= info.min_packed_size
        assert info.output_scale == 1.0


@pytest.mark.parametrize("bad", [{"level": 0}, {"level": 4}, {"padding": "replicate"}])
def test_bad_options_raise_input_error(bad: dict) -> None:
    with pytest.raises(InputError):
        _build("pynet-v2-mobile", **bad)
