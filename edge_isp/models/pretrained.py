"""The default model: a registry model with trained weights that ship inside the package.

    >>> from edge_isp.models.pretrained import DEFAULT, DEFAULT_MODEL, load_default
    >>> net = load_default()            # torch.nn.Module in eval mode, weights loaded
    >>> DEFAULT.name, DEFAULT.options   # what 'edge-isp convert' builds by default

This module is the one place the default model is defined: every command that runs "the
default model" (convert, process, bench, eval, verify) takes it from here, through
:func:`edge_isp.runtimes.subject.open_subject` or ``with_default_model`` (convert's options).

How it was trained, on what, and how good it is: ``edge_isp/assets/DEFAULT_MODEL.md``
(``default_card()``); reproduce it with ``scripts/train_default.sh``.

The weights are stored as float16 (half the file size); they are loaded into a float32
model (the difference to the float32 training weights is far below INT8 quantisation
error). Nothing is downloaded: the file is package data.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from edge_isp.errors import InputError


@dataclass(frozen=True)
class PretrainedSpec:
    """A registry model name + build options + a weights file in ``edge_isp/assets``."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    weights: str = ""
    card: str = ""
    summary: str = ""


# The default model's registry name, defined here next to its weights.
DEFAULT_MODEL = "pynet-v2-mobile-nonorm"
# ``weights="default"`` (``--weights default``) names the packaged trained weights explicitly.
PACKAGED_WEIGHTS = "default"

DEFAULT = PretrainedSpec(
    name=DEFAULT_MODEL,
    options={"padding": "zero"},
    weights="default_isp_pynet_v2_nonorm.pt",
    card="DEFAULT_MODEL.md",
    summary=(
        "PyNET-V2 Mobile without instance norm, zero padding (NNAPI/INT8-friendly), trained "
        "from scratch on synthetic RAW made by unprocessing packaged photos"
    ),
)

_files = contextlib.ExitStack()
atexit.register(_files.close)


def _asset(name: str) -> Path:
    resource = resources.files("edge_isp") / "assets" / name
    if not resource.is_file():
        raise InputError(
            f"the packaged asset {name} is missing; reinstall edge-isp (edge_isp/assets must be "
            "installed as package data) or train it with scripts/train_default.sh"
        )
    return Path(_files.enter_context(resources.as_file(resource)))


def default_weights_path(spec: PretrainedSpec = DEFAULT) -> Path:
    """Path of the default model's weights file (a float16 state dict)."""
    return _asset(spec.weights)


def packaged_weights_for(model: str | None, spec: PretrainedSpec = DEFAULT) -> Path:
    """The file ``weights="default"`` names for ``model`` (None: the default model).

    Only the default model ships trained weights; any other model is a user error.
    """
    if model not in (None, spec.name):
        raise InputError(f"weights 'default' are the packaged {spec.name} weights; {model} has no packaged "
                         "weights: pass a checkpoint or state-dict file instead")
    return default_weights_path(spec)


def default_card(spec: PretrainedSpec = DEFAULT) -> str:
    """The model card (Markdown): data, recipe, training time, held-out quality."""
    return _asset(spec.card).read_text(encoding="utf-8")


def load_state(path: Path) -> dict[str, Any]:
    """A float32 state dict from a weights file (float16 tensors are widened)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    return {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in state.items()}


def load_pretrained(spec: PretrainedSpec = DEFAULT) -> Any:
    """Build ``spec``'s registry model and load its packaged weights (eval mode, float32)."""
    from edge_isp.models import create

    model = create(spec.name, seed=None, **spec.options)
    state = load_state(default_weights_path(spec))
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise InputError(
            f"packaged weights {spec.weights} do not match {spec.name} {spec.options}: "
            f"missing {result.missing_keys[:2]}, unexpected {result.unexpected_keys[:2]}"
        )
    model.eval()
    return model


def load_default() -> Any:
    """The default model with its trained weights (a ``torch.nn.Module`` in eval mode)."""
    return load_pretrained(DEFAULT)


def export_weights(checkpoint: Path, target: Path) -> Path:
    """Write a training checkpoint's model weights as a float16 state dict (atomically)."""
    import torch

    from edge_isp._atomic import atomic_path

    state = load_state(Path(checkpoint))
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    with atomic_path(Path(target)) as tmp:
        torch.save(half, tmp)
        tmp.chmod(0o644)  # package data: readable by everyone (mkstemp makes it 0600)
    return Path(target)




def with_default_model(opts: Any) -> Any:
    """Fill in the packaged default model (name, options, trained weights) when none is given,
    and resolve ``--weights default`` to the packaged file (its model only)."""
    spec = DEFAULT
    if opts.weights is not None and str(opts.weights) == PACKAGED_WEIGHTS:
        return dataclasses.replace(opts, model=spec.name, model_options={**spec.options, **opts.model_options},
                                   weights=packaged_weights_for(opts.model, spec))
    if opts.model is not None:
        return opts
    return dataclasses.replace(opts, model=spec.name, model_options={**spec.options, **opts.model_options},
                               weights=opts.weights or default_weights_path(spec))


def weights_kind(weights: Path | None) -> str:
    """What a bundle's weights are: 'packaged' (the shipped trained default), 'file', 'random'."""
    if weights is None:
        return "random"
    try:
        packaged = default_weights_path(DEFAULT).resolve()
    except InputError:
        packaged = None
    return "packaged" if packaged is not None and Path(weights).resolve() == packaged else "file"


RANDOM_WEIGHTS_WARNING = ("random weights (no --weights): the PSNR vs PyTorch, size, speed and delegation figures "
                          "hold, the pictures do not; pass --weights PATH (or --weights default for the packaged "
                          "model)")


__all__ = ["DEFAULT", "DEFAULT_MODEL", "PACKAGED_WEIGHTS", "RANDOM_WEIGHTS_WARNING", "PretrainedSpec", "default_card",
           "default_weights_path", "export_weights", "load_default", "load_pretrained", "packaged_weights_for",
           "weights_kind", "with_default_model"]
