"""Named training recipes: the seeds' procedures as data.

A :class:`Recipe` is a list of :class:`Stage` s; each stage trains the same registry model
(possibly built with different options, e.g. PyNET's ``level``) and starts from the weights
the previous stage ended with (matching names and shapes). ``list_recipes()`` names them;
``edge-isp train --recipe NAME`` runs one.

Recipes (paper figures in brackets; the step counts are scaled to ``--steps``):

``default``
    Adam, cosine schedule with warm-up, L1 + 0.2 * (1 - SSIM). What a quick CPU
    experiment found to work best for training from scratch on synthetic pairs; used for
    the shipped default model.
``pynet``
    PyNET (Ignatov et al. 2020) level-by-level: levels 5, 4, 3, 2, 1, 0, each initialised
    from the previous level; Adam 5e-5 [README]; per-level losses: MSE at levels 5-4,
    MSE + VGG at 3-2, MSE + VGG + SSIM-type terms at 1-0 (the VGG term needs
    ``--vgg-weights``; without it the recipe substitutes nothing and asks for them). Step
    shares follow the README's 5K/5K/20K/20K/35K/100K.
``pynet-ca``
    PyNET-CA (Kim et al. 2020) progressive training with the one-cycle LR (5e-5 -> 1e-4 in
    the first 20 % -> 5e-7) at every level; loss MSE (levels 5-4), MSE + 0.01 VGG (3-1),
    MSE + 0.01 VGG + 0.01 (1 - MS-SSIM) at level 0 (the fidelity setting).
``pynet-v2``
    PyNET-V2 Mobile (Ignatov et al. 2022): Adam 5e-5 reduced on plateau (of the validation
    PSNR); levels 3 -> 2 -> 1; per level VGG + SSIM, then MSE + SSIM; the finest level
    adds an SSIM-only pass; last, a fine-tuning pass on the training patches the model
    already reconstructs at >= 25 dB PSNR.
``lw-isp``
    LW-ISP (Chen & Ma 2022): L1 (reconstruction) + MS-SSIM (structure) + distillation from a
    trained teacher (``--teacher``, ``--teacher-weights``): an L2 term between the
    student's and the teacher's outputs (the paper distils the last three upsampling
    blocks' features of a teacher trained on clean inputs; matching features across
    heterogeneous networks needs their layer names, so the output is distilled here).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from edge_isp.errors import InputError, UnknownNameError


@dataclass(frozen=True)
class Stage:
    name: str
    steps: int
    loss: str = "l1+0.2*ssim"
    lr: float = 1e-3
    schedule: str = "cosine"  # cosine | onecycle | plateau | constant
    warmup: int = 100
    start_lr: float | None = None
    final_lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 16
    crop: int = 128
    model_options: dict[str, Any] = field(default_factory=dict)
    psnr_filter_db: float | None = None
    distill_weight: float = 0.0
    grad_clip: float | None = 1.0


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    stages: tuple[Stage, ...]
    models: tuple[str, ...] = ()  # models the recipe is meant for (empty = any)
    model_options: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return sum(s.steps for s in self.stages)

    def resolve(self, model: str, total_steps: int | None = None) -> list[Stage]:
        """The stages for ``model``, with step counts scaled so they sum to ``total_steps``."""
        if self.models and model not in self.models:
            raise InputError(
                f"recipe {self.name!r} is for {', '.join(self.models)}, not {model!r}; "
                "use --recipe default for any model"
            )
        stages = list(self.stages)
        if total_steps is None:
            return stages
        if total_steps < len(stages):
            raise InputError(f"recipe {self.name!r} has {len(stages)} stages: give --steps >= {len(stages)}")
        scale = total_steps / self.steps
        out = [dataclasses.replace(s, steps=max(1, round(s.steps * scale)),
                                   warmup=max(0, round(s.warmup * scale))) for s in stages]
        diff = total_steps - sum(s.steps for s in out)
        out[-1] = dataclasses.replace(out[-1], steps=max(1, out[-1].steps + diff))
        return out


def _pynet_stages() -> tuple[Stage, ...]:
    shares = {5: 5000, 4: 5000, 3: 20000, 2: 20000, 1: 35000, 0: 100000}
    loss = {5: "mse", 4: "mse", 3: "mse+0.01*vgg", 2: "mse+0.01*vgg",
            1: "mse+0.01*vgg+0.05*ssim", 0: "mse+0.01*vgg+0.05*ms-ssim"}
    return tuple(Stage(f"level {k}", shares[k], loss=loss[k], lr=5e-5, schedule="constant",
                       warmup=0, batch_size=(50 if k >= 4 else 48 if k == 3 else 18 if k == 2 else 12 if k == 1 else 10),
                       crop=224, model_options={"level": k}) for k in (5, 4, 3, 2, 1, 0))


def _pynet_ca_stages() -> tuple[Stage, ...]:
    loss = {5: "mse", 4: "mse", 3: "mse+0.01*vgg", 2: "mse+0.01*vgg", 1: "mse+0.01*vgg",
            0: "mse+0.01*vgg+0.01*ms-ssim"}
    return tuple(Stage(f"level {k}", 16000, loss=loss[k], lr=1e-4, start_lr=5e-5, final_lr=5e-7,
                       schedule="onecycle", warmup=0, batch_size=8, crop=224,
                       model_options={"level": k}) for k in (5, 4, 3, 2, 1, 0))


def _pynet_v2_stages() -> tuple[Stage, ...]:
    stages: list[Stage] = []
    for level in (3, 2, 1):
        stages.append(Stage(f"level {level}: VGG + SSIM", 10000, loss="0.01*vgg+0.2*ssim", lr=5e-5,
                            schedule="plateau", warmup=0, batch_size=20, crop=256,
                            model_options={"level": level}))
        stages.append(Stage(f"level {level}: MSE + SSIM", 10000, loss="mse+0.2*ssim", lr=5e-5,
                            schedule="plateau", warmup=0, batch_size=20, crop=256,
                            model_options={"level": level}))
    stages.append(Stage("level 1: SSIM only", 5000, loss="ssim", lr=5e-5, schedule="plateau", warmup=0,
                        batch_size=20, crop=256, model_options={"level": 1}))
    stages.append(Stage("level 1: fine-tune on patches >= 25 dB", 5000, loss="mse+0.2*ssim", lr=2.5e-5,
                        schedule="plateau", warmup=0, batch_size=20, crop=256,
                        model_options={"level": 1}, psnr_filter_db=25.0))
    return tuple(stages)


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("default", "Adam + cosine/warm-up, L1 + 0.2 (1 - SSIM): fast from-scratch training "
               "(used for the shipped default model)",
               (Stage("main", 2400, loss="l1+0.2*ssim", lr=1e-3, schedule="cosine", warmup=100),)),
        Recipe("pynet", "PyNET level-by-level (5 -> 0), Adam 5e-5, per-level MSE / VGG / SSIM losses",
               _pynet_stages(), models=("pynet",)),
        Recipe("pynet-ca", "PyNET-CA progressive training, one-cycle LR, MSE + VGG + MS-SSIM",
               _pynet_ca_stages(), models=("pynet-ca",)),
        Recipe("pynet-v2", "PyNET-V2 Mobile: levels 3 -> 1, Adam reduce-on-plateau, VGG+SSIM then "
               "MSE+SSIM, SSIM-only pass, fine-tuning on patches >= 25 dB",
               _pynet_v2_stages(), models=("pynet-v2-mobile", "pynet-v2-mobile-nonorm",
                                           "pynet-v2-mobile-slim", "pynet-v2-mobile-slim-plus")),
        Recipe("lw-isp", "LW-ISP: L1 + MS-SSIM + distillation from a trained teacher (--teacher)",
               (Stage("distil", 20000, loss="l1+0.4*ms-ssim", lr=8e-5, schedule="cosine", warmup=200,
                      final_lr=1e-6, distill_weight=1.0, crop=256),)),
    )
}


def list_recipes() -> list[str]:
    return sorted(RECIPES)


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise UnknownNameError(f"unknown recipe {name!r}; choose from {', '.join(list_recipes())}") from None
