"""What to run, resolved in one place: a bundle, a checkpoint, a registry model or the default model.

    >>> from edge_isp.runtimes.subject import open_subject
    >>> open_subject("edge-isp-out/pynet-v2-mobile_cpu-fp32", threads=2)  # a bundle, on its runtime
    >>> open_subject("runs/default/best.pt")                              # a training checkpoint
    >>> open_subject("pynet-v2-mobile", weights="my.pt")                  # a registry model in PyTorch
    >>> open_subject(None)                                                # the trained default model

bench, process, eval, verify and the pytest plugin open what they run through here, so a
name means the same thing in every command and a wrong one fails with the same message.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edge_isp.errors import EdgeIspError, InputError, UnknownNameError
from edge_isp.models.pretrained import DEFAULT, PACKAGED_WEIGHTS, load_pretrained, packaged_weights_for
from edge_isp.runtimes.bundle_runner import LoadedRunner, Origin, open_bundle, open_model

CHECKPOINT_SUFFIXES = (".pt", ".pth")
_WHAT = ("a bundle folder made by 'edge-isp convert', a training checkpoint (.pt), or a registry model name "
         "('edge-isp models' lists them)")


def open_subject(what: str | Path | None, *, weights: str | Path | None = None,
                 options: dict[str, Any] | None = None, input_size: tuple[int, int] | None = None,
                 threads: int | None = None, runtime: str | None = None, warmup: int = 0) -> LoadedRunner:
    """Open ``what`` as a ready-to-run :class:`LoadedRunner`.

    Args:
        what: an existing bundle folder (or its manifest.json) -> its artifact on its
            runtime; an existing file -> a training checkpoint in PyTorch; a registry model
            name -> its PyTorch reference; None -> the default model with its trained
            weights (``warning`` is set when they are unavailable and it runs untrained).
            A ``Path`` is always a path, never a model name.
        weights: for a registry model or the default model: a state-dict or checkpoint
            file, or ``"default"`` (the packaged trained weights; the default model only).
            Without it a registry model has seeded random weights.
        options: registry model options (merged over the default model's own).
        input_size: RAW mosaic (H, W) of a PyTorch runner (a bundle has its own size).
        threads: CPU threads for the runtime.
        runtime: another runtime for a bundle's format; PyTorch subjects accept only "torch".
        warmup: inferences to run right after loading.

    Raises:
        InputError: a path that does not exist, a name that is not a registry model,
            or weights/options/runtime that do not apply to what was named.
    """
    if what is None:
        return _open_default(weights, options, input_size, threads, runtime, warmup)
    path = Path(what)
    if path.exists():
        if path.is_dir() or path.name == "manifest.json":
            _no_model_arguments(path, "a bundle", weights, options)
            return open_bundle(path, threads=threads, runtime=runtime, warmup=warmup)
        return _open_checkpoint(path, weights, options, input_size, threads, runtime, warmup)
    if isinstance(what, Path):
        raise InputError(f"{what}: no such bundle folder or checkpoint file; pass a bundle folder made by "
                         "'edge-isp convert' or a training checkpoint (.pt)")
    if _looks_like_path(what):
        raise InputError(f"{what}: no such bundle folder or checkpoint file; pass {_WHAT}")
    return _open_registry_model(str(what), weights, options, input_size, threads, runtime, warmup)


def _looks_like_path(text: str) -> bool:
    # Registry names never hold a separator or start with a dot: such text was meant as a path.
    return (os.sep in text or "/" in text or text.startswith(".")
            or Path(text).suffix in (*CHECKPOINT_SUFFIXES, ".json"))


def _no_model_arguments(path: Path, kind: str, weights: Any, options: dict[str, Any] | None) -> None:
    if weights is not None or options:
        raise InputError(f"{path} is {kind}: it brings its own model and weights; weights and model options "
                         "apply to a registry model name or the default model")


def _torch_only(what: str, runtime: str | None) -> None:
    if runtime not in (None, "torch"):
        raise InputError(f"runtime {runtime!r} runs converted bundles; {what} runs in PyTorch (runtime 'torch'): "
                         "convert it with 'edge-isp convert' to run it elsewhere")


def _open_default(weights: str | Path | None, options: dict[str, Any] | None, input_size: tuple[int, int] | None,
                  threads: int | None, runtime: str | None, warmup: int) -> LoadedRunner:
    _torch_only(DEFAULT.name, runtime)
    merged = {**DEFAULT.options, **(options or {})}
    if weights is not None or options:
        # Something was asked for explicitly: a failure is the user's to see, not to paper over.
        packaged = weights is None or str(weights) == PACKAGED_WEIGHTS
        path = packaged_weights_for(None) if packaged else Path(weights)
        loaded = open_model(DEFAULT.name, input_size, weights=path, options=merged, threads=threads, warmup=warmup)
        loaded.origin = Origin("default", weights="packaged" if packaged else str(weights), options=merged)
        return loaded
    warning = None
    try:
        net = load_pretrained(DEFAULT)
    except EdgeIspError as exc:
        # Plain "the default model": still runs (untrained) so a broken install can be diagnosed.
        net, warning = None, f"the trained default model is unavailable ({exc}); using untrained {DEFAULT.name}"
    loaded = open_model(DEFAULT.name, input_size, net=net, options=merged, threads=threads, warmup=warmup)
    loaded.origin = Origin("default", weights="packaged" if net is not None else None, options=merged)
    loaded.warning = warning
    return loaded


def _open_checkpoint(path: Path, weights: Any, options: dict[str, Any] | None, input_size: tuple[int, int] | None,
                     threads: int | None, runtime: str | None, warmup: int) -> LoadedRunner:
    _no_model_arguments(path, "a training checkpoint", weights, options)
    _torch_only(str(path), runtime)
    from edge_isp.training.checkpoint import load_checkpoint_model

    net, ckpt = load_checkpoint_model(path)
    loaded = open_model(ckpt["model_name"], input_size, net=net, threads=threads, warmup=warmup)
    step = ckpt.get("step")
    loaded.origin = Origin("checkpoint", path=path, weights=str(path), options=dict(ckpt.get("model_options") or {}),
                           step=int(step) if step is not None else None)
    return loaded


def _open_registry_model(name: str, weights: str | Path | None, options: dict[str, Any] | None,
                         input_size: tuple[int, int] | None, threads: int | None, runtime: str | None,
                         warmup: int) -> LoadedRunner:
    from edge_isp._names import did_you_mean
    from edge_isp.models import list_models

    known = list_models()
    if name not in known:
        raise UnknownNameError(f"{name!r} is not a bundle folder, a checkpoint file or a registry model"
                               f"{did_you_mean(name, known)}; pass {_WHAT}")
    _torch_only(name, runtime)
    if weights is not None and str(weights) == PACKAGED_WEIGHTS:
        # The packaged weights were trained with the default model's options.
        path = packaged_weights_for(name)
        merged = {**DEFAULT.options, **(options or {})}
        loaded = open_model(name, input_size, weights=path, options=merged, threads=threads, warmup=warmup)
        loaded.origin = Origin("model", weights="packaged", options=merged)
        return loaded
    return open_model(name, input_size, weights=Path(weights) if weights is not None else None, options=options,
                      threads=threads, warmup=warmup)


__all__ = ["CHECKPOINT_SUFFIXES", "open_subject"]
