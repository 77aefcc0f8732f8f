"""Loading a user's checkpoint into a registry model, and hashing weights."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from edge_isp._deps import require
from edge_isp.errors import InputError


def load_weights(model: Any, path: Path) -> None:
    """Load a state dict (or a training checkpoint holding one) from ``path`` into ``model``.

    Uses ``weights_only=True``: a checkpoint can carry tensors, never code.
    """
    torch = require("torch", "loading weights")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"weights file {path} does not exist; pass the path of a .pt/.pth state dict")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).splitlines()[0].split(". ")[0][:160] if str(exc) else type(exc).__name__
        raise InputError(f"cannot read weights {path} as a PyTorch state dict ({reason}); "
                         "save them with torch.save(model.state_dict(), path)") from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    elif isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(f"{path} holds a {type(state).__name__}, not a state dict")
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise InputError(
            f"weights {path.name} do not match the model: {len(result.missing_keys)} missing "
            f"(e.g. {result.missing_keys[:2]}), {len(result.unexpected_keys)} unexpected "
            f"(e.g. {result.unexpected_keys[:2]}); check the model name and its options"
        )


def weights_sha256(model: Any) -> str:
    """A hash of the parameters and buffers, in a stable order, as stored in manifests."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
