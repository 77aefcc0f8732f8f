"""Training checkpoints on disk: written atomically, recognised, and read back as models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from edge_isp._atomic import atomic_path
from edge_isp.errors import InputError

CHECKPOINT_FORMAT = "edge-isp-train/1"


def save_atomic(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_matching(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> int:
    """Copy every parameter whose name and shape match (stage hand-over); returns the count."""
    own = model.state_dict()
    take = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    own.update(take)
    model.load_state_dict(own)
    return len(take)


def is_training_run(path: Path) -> bool:
    """A folder an earlier ``edge-isp train`` wrote (what resuming and --fresh may touch)."""
    path = Path(path)
    if (path / "last.pt").is_file():
        return True
    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(cfg, dict) and {"model", "recipe", "data"} <= set(cfg)


def load_checkpoint_model(path: str | Path, *, device: str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build the registry model a training checkpoint (best.pt / last.pt / stageK.pt) holds."""
    from edge_isp.models import create

    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise InputError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(ckpt, dict) or "model_name" not in ckpt or not ckpt.get("model"):
        raise InputError(f"{path} is not an edge-isp training checkpoint with weights (best.pt, last.pt, stageK.pt)")
    model = create(ckpt["model_name"], seed=None, **ckpt.get("model_options", {}))
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, ckpt
