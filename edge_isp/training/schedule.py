"""Learning-rate schedules of the recipes' stages, and reduce-on-plateau."""

from __future__ import annotations

import math

from edge_isp.errors import InputError
from edge_isp.training.recipes import Stage


def lr_at(stage: Stage, step: int, steps: int, base_lr: float) -> float:
    """Learning rate of ``step`` (0-based) within a stage of ``steps`` steps."""
    frac = step / max(1, steps)
    if stage.schedule == "constant" or stage.schedule == "plateau":
        return base_lr
    if stage.schedule == "cosine":
        warm = min(stage.warmup, steps // 4)
        if step < warm:
            return base_lr * (step + 1) / warm
        t = (step - warm) / max(1, steps - warm)
        return stage.final_lr + 0.5 * (base_lr - stage.final_lr) * (1 + math.cos(math.pi * t))
    if stage.schedule == "onecycle":
        # PyNET-CA: start at start_lr, linearly to base_lr over the first 20 %, then cosine
        # down to final_lr (5e-5 -> 1e-4 -> 5e-7 in the paper).
        start = stage.start_lr if stage.start_lr is not None else base_lr / 2
        if frac < 0.2:
            return start + (base_lr - start) * frac / 0.2
        t = (frac - 0.2) / 0.8
        return stage.final_lr + 0.5 * (base_lr - stage.final_lr) * (1 + math.cos(math.pi * t))
    raise InputError(f"unknown schedule {stage.schedule!r}")


class Plateau:
    """Reduce-on-plateau on the validation PSNR (PyNET-V2): factor 0.5 after `patience` evals."""

    def __init__(self, patience: int = 3, factor: float = 0.5, min_scale: float = 1e-3) -> None:
        self.patience, self.factor, self.min_scale = patience, factor, min_scale
        self.best = -math.inf
        self.bad = 0
        self.scale = 1.0

    def update(self, psnr: float) -> None:
        if psnr > self.best + 0.01:
            self.best, self.bad = psnr, 0
        else:
            self.bad += 1
            if self.bad > self.patience:
                self.scale = max(self.min_scale, self.scale * self.factor)
                self.bad = 0

    def state_dict(self) -> dict[str, float]:
        return {"best": self.best, "bad": self.bad, "scale": self.scale}

    def load_state_dict(self, d: dict[str, float]) -> None:
        self.best, self.bad, self.scale = float(d["best"]), int(d["bad"]), float(d["scale"])
