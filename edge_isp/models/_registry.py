"""Model registry: model modules register a builder with ``@register_model``.

Importing this module is cheap (no torch); builders import torch when they run.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge_isp._names import did_you_mean, lookup
from edge_isp.errors import InputError


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model before building it."""

    name: str
    builder: Callable[..., Any]
    summary: str
    source: str
    # Output side length relative to the RAW mosaic (1.0 = full resolution).
    output_scale: float = 1.0
    # The packed input's H and W must be a multiple of this.
    input_multiple: int = 1
    # Default RAW mosaic size (H, W) for conversion; the packed input is half of it.
    default_input_size: tuple[int, int] = (256, 256)
    # Smallest packed side length the graph accepts (attention strides etc.).
    min_packed_size: int = 8
    # Exact parameter count of the reference implementation (MODELS.md) and the options
    # that reproduce it; ``None`` where no public figure exists.
    reference_params: int | None = None
    reference_options: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    default_options: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name: str, **info: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``builder`` under ``name`` with the given ``ModelInfo`` fields."""

    def wrap(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelInfo(name=name, builder=builder, **info)
        return builder

    return wrap


def _load_all() -> None:
    # Importing the model modules runs their decorators.
    from edge_isp.models import (  # noqa: F401
        lw_isp,
        microisp,
        punet,
        pynet,
        pynet_ca,
        pynet_v2,
    )


def list_models() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    _load_all()
    return lookup(_REGISTRY, name, "model", "Run 'edge-isp models' to list the registered models.")


def model_options(name: str) -> dict[str, Any]:
    """The options a model takes (``-O key=value``) with their defaults."""
    params = inspect.signature(model_info(name).builder).parameters.values()
    return {p.name: p.default for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def check_options(name: str, options: dict[str, Any]) -> None:
    """Refuse unknown option names and values of the wrong type, naming what the model takes."""
    known = model_options(name)
    listing = ", ".join(f"{k}={v!r}" for k, v in known.items()) or "none"
    for key, value in options.items():
        if key not in known:
            raise InputError(f"model {name} has no option {key!r}{did_you_mean(key, list(known))}; "
                             f"its options (-O key=value) are: {listing}")
        default = known[key]
        if default is not None and not isinstance(value, type(default)) and not (
                isinstance(default, float) and isinstance(value, int)):
            raise InputError(f"model {name} option {key}={value!r} should be a {type(default).__name__} "
                             f"(default {default!r})")


def create(name: str, *, seed: int | None = 0, **options: Any) -> Any:
    """Build the registered model ``name`` (a ``torch.nn.Module``) in eval mode.

    Weights are initialised deterministically from ``seed`` (``None`` leaves torch's
    global RNG alone).
    """
    info = model_info(name)
    from edge_isp._deps import require

    torch = require("torch", f"building model {name!r}")
    check_options(name, options)
    opts = {**info.default_options, **options}
    try:
        if seed is None:
            model = info.builder(**opts)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = info.builder(**opts)
    except (ValueError, KeyError) as exc:  # a builder refusing an option's value (padding='bogus')
        raise InputError(f"model {name}: {exc}; its options are: "
                         f"{', '.join(f'{k}={v!r}' for k, v in model_options(name).items())}") from exc
    model.eval()
    return model


def count_params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def params_of(name: str, **options: Any) -> int:
    """Parameter count of a registered model without allocating or initialising weights."""
    info = model_info(name)
    from edge_isp._deps import require

    torch = require("torch", f"building model {name!r}")
    with torch.device("meta"):
        return count_params(info.builder(**{**info.default_options, **options}))


def resolve_input_size(model: str, input_size: tuple[int, int] | None) -> tuple[int, int]:
    """The RAW mosaic (H, W) to run ``model`` at (default: its own), checked against what its
    graph needs (multiples of its downsampling, a minimum size)."""
    info = model_info(model)
    h, w = input_size or info.default_input_size
    step = 2 * info.input_multiple
    if h <= 0 or w <= 0 or h % step or w % step:
        raise InputError(
            f"input size {h}x{w} does not suit {model}: the RAW mosaic's height and width must be "
            f"multiples of {step} (e.g. {max(step, h // step * step)}x{max(step, w // step * step)})"
        )
    if min(h, w) // 2 < info.min_packed_size:
        raise InputError(
            f"input size {h}x{w} is too small for {model}: it needs at least "
            f"{2 * info.min_packed_size} px a side of RAW mosaic"
        )
    return h, w
