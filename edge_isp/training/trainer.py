"""The training engine: stages, optimiser and schedule, validation, atomic checkpoints, resume.

One run = a recipe (a list of :class:`Stage`) applied to a registry model and a data source.
Everything a run needs to continue after an interruption is in ``<out>/last.pt``: model,
optimiser, scheduler, stage, step, best score and history. Batches are a pure function of
(seed, step), so resuming gives bit-identical weights to an uninterrupted run (CPU).

Files in ``out``:

- ``last.pt``: the full training state (written every ``checkpoint_every`` steps, at the end
  of each stage, on Ctrl-C / SIGTERM and at the time limit);
- ``best.pt``: model weights + metadata of the best validation PSNR of the final stage;
- ``stage<k>.pt``: the weights at the end of stage k (PyNET level-by-level hand-over);
- ``history.jsonl``: one JSON line per log/validation event;
- ``summary.json``: the final summary.

All are written atomically (temp file + rename).
"""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from edge_isp._atomic import guard_folder, write_text_atomic
from edge_isp.errors import InputError
from edge_isp.training.losses import build_loss
from edge_isp.training.checkpoint import CHECKPOINT_FORMAT, is_training_run, load_matching, save_atomic
from edge_isp.training.recipes import Recipe, Stage, get_recipe
from edge_isp.training.schedule import Plateau, lr_at
from edge_isp.training.validation import match_size, validate



@dataclass
class TrainConfig:
    """Everything that defines a run (saved in every checkpoint)."""

    model: str
    recipe: str = "default"
    data: str = "synthetic"
    out: str = "runs/train"
    model_options: dict[str, Any] = field(default_factory=dict)
    steps: int | None = None  # total steps; None = the recipe's
    batch_size: int | None = None
    crop: int | None = None  # mosaic px
    lr: float | None = None  # overrides every stage's peak LR
    loss: str | None = None  # overrides every stage's loss
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    val_every: int = 200
    val_draws: int = 16
    val_size: int | None = None  # centre-crop synthetic validation images to this side (quick runs)
    checkpoint_every: int = 100
    log_every: int = 10
    max_minutes: float | None = None
    stop_after: int | None = None  # stop (resumably) once this many total steps are done
    vgg_weights: str | None = None
    teacher: str | None = None  # registry name of the distillation teacher
    teacher_weights: str | None = None
    teacher_options: dict[str, Any] = field(default_factory=dict)
    init_weights: str | None = None
    preset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    out: Path
    steps: int
    completed: bool
    best_psnr_db: float | None
    best_step: int | None
    best_ssim: float | None
    last_loss: float | None
    elapsed_s: float
    stopped_reason: str  # "done", "time-limit", "stop-after", "interrupted"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["out"] = str(self.out)
        return d


ProgressFn = Callable[[dict[str, Any]], None]


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} asked for, but CUDA is not available; use --device cpu")
    return torch.device(device)


def _append_history(out: Path, event: dict[str, Any]) -> None:
    with open(out / "history.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(event) + "\n")


def _build_model(name: str, options: dict[str, Any], seed: int) -> torch.nn.Module:
    from edge_isp.models import create

    return create(name, seed=seed, **options)


class _StopRequested(Exception):
    pass


class Trainer:
    """Runs a :class:`TrainConfig`; ``run()`` starts fresh or resumes from ``out/last.pt``."""

    def __init__(self, config: TrainConfig, *, progress: ProgressFn | None = None) -> None:
        self.config = config
        self.recipe: Recipe = get_recipe(config.recipe)
        self.out = Path(config.out)
        self.progress = progress or (lambda event: None)
        self.device = pick_device(config.device)
        from edge_isp.models import check_options, model_info

        model_info(config.model)  # an unknown model fails here, before any work or display
        check_options(config.model, {**self.recipe.model_options, **config.model_options})
        self.stages = self.recipe.resolve(config.model, total_steps=config.steps)
        self._stop_signal = False
        # A run folder resumes (or --fresh restarts); any other non-empty folder is the user's.
        guard_folder(self.out, kind="training run", is_ours=is_training_run, overwrite=True, flag="--out")

    # ---- helpers -------------------------------------------------------------------
    def _stage_value(self, stage: Stage, name: str) -> Any:
        override = getattr(self.config, name)
        return override if override is not None else getattr(stage, name)

    def _model_options(self, stage: Stage) -> dict[str, Any]:
        return {**self.recipe.model_options, **stage.model_options, **self.config.model_options}

    def _make_teacher(self) -> torch.nn.Module | None:
        if not self.config.teacher:
            return None
        if not self.config.teacher_weights:
            raise InputError(
                "distillation needs a trained teacher: pass --teacher-weights PATH "
                "(train the teacher first, e.g. with the default recipe)"
            )
        from edge_isp.models.weights import load_weights

        teacher = _build_model(self.config.teacher, self.config.teacher_options, 0)
        load_weights(teacher, Path(self.config.teacher_weights))
        teacher.eval().to(self.device)
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher

    # ---- the run -------------------------------------------------------------------
    def run(self, *, resume: bool = True) -> TrainResult:
        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        self.out.mkdir(parents=True, exist_ok=True)
        state: dict[str, Any] | None = None
        last = self.out / "last.pt"
        if resume and last.is_file():
            state = torch.load(last, map_location="cpu", weights_only=True)
            if state.get("format") != CHECKPOINT_FORMAT:
                raise InputError(f"{last} is not an edge-isp training checkpoint; use a new --out")
            saved = state["config"]
            for key in ("model", "recipe", "data", "seed", "model_options"):
                if saved.get(key) != getattr(cfg, key):
                    raise InputError(
                        f"{last} was written by a run with {key}={saved.get(key)!r}, not "
                        f"{getattr(cfg, key)!r}: resume with the same settings or use a new --out"
                    )
        elif not resume and last.is_file():
            for name in ("last.pt", "best.pt", "history.jsonl", "summary.json"):
                (self.out / name).unlink(missing_ok=True)
        write_text_atomic(self.out / "config.json", json.dumps(cfg.to_dict(), indent=2))

        old_handler = None
        try:
            old_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
        except ValueError:  # not the main thread
            pass
        t0 = time.monotonic()
        elapsed_before = float(state["elapsed_s"]) if state else 0.0
        try:
            return self._run_stages(state, t0, elapsed_before)
        finally:
            if old_handler is not None:
                signal.signal(signal.SIGTERM, old_handler)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self._stop_signal = True

    def _run_stages(self, state: dict[str, Any] | None, t0: float, elapsed_before: float) -> TrainResult:
        cfg = self.config
        start_stage = int(state["stage"]) if state else 0
        global_step = int(state["global_step"]) if state else 0
        best = state.get("best") if state else None
        prev_weights: dict[str, torch.Tensor] | None = None
        if start_stage > 0:
            prev = self.out / f"stage{start_stage - 1}.pt"
            if prev.is_file():
                prev_weights = torch.load(prev, map_location="cpu", weights_only=True)["model"]
        teacher = self._make_teacher()
        result_reason = "done"
        last_loss: float | None = None
        for si in range(start_stage, len(self.stages)):
            stage = self.stages[si]
            resuming = state is not None and int(state["stage"]) == si and not state.get("fresh")
            model = _build_model(cfg.model, self._model_options(stage), cfg.seed + si)
            if si == 0 and cfg.init_weights and not resuming:
                from edge_isp.models.weights import load_weights

                load_weights(model, Path(cfg.init_weights))
            if prev_weights is not None and not resuming:
                load_matching(model, prev_weights)
            model.to(self.device).train()
            lr = float(self._stage_value(stage, "lr"))
            optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=stage.betas)
            plateau = Plateau()
            loss_spec = cfg.loss or stage.loss
            criterion = build_loss(loss_spec, vgg_weights=cfg.vgg_weights).to(self.device)
            batch_size = int(self._stage_value(stage, "batch_size"))
            crop = int(self._stage_value(stage, "crop"))
            from edge_isp.models import model_info
            from edge_isp.training.data import make_source

            info = model_info(cfg.model)
            source = make_source(cfg.data, batch_size=batch_size, crop=crop, seed=cfg.seed + 1000 * si,
                                 val_draws=cfg.val_draws, multiple=max(16, 2 * info.input_multiple),
                                 preset=cfg.preset, val_size=cfg.val_size)
            val_pairs = source.validation()
            step = 0
            if resuming:
                assert state is not None
                model.load_state_dict(state["model"])
                optimizer.load_state_dict(state["optimizer"])
                plateau.load_state_dict(state["plateau"])
                step = int(state["step"])
            stage_best = best if (best and best.get("stage") == si) else None
            self.progress({"event": "stage", "stage": si, "name": stage.name, "steps": stage.steps,
                           "start": step, "loss": loss_spec, "data": source.description,
                           "device": str(self.device)})
            history_loss: list[float] = []
            history_psnr: list[float] = []

            def checkpoint(reason: str) -> None:
                save_atomic({
                    "format": CHECKPOINT_FORMAT, "config": cfg.to_dict(), "stage": si,
                    "step": step, "global_step": global_step, "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(), "plateau": plateau.state_dict(),
                    "best": stage_best, "elapsed_s": elapsed_before + time.monotonic() - t0,
                    "model_name": cfg.model, "model_options": self._model_options(stage),
                    "reason": reason,
                }, self.out / "last.pt")

            try:
                while step < stage.steps:
                    if self._stop_signal:
                        raise KeyboardInterrupt
                    elapsed_min = (elapsed_before + time.monotonic() - t0) / 60.0
                    if cfg.max_minutes is not None and elapsed_min >= cfg.max_minutes:
                        result_reason = "time-limit"
                        raise _StopRequested
                    if cfg.stop_after is not None and global_step >= cfg.stop_after:
                        result_reason = "stop-after"
                        raise _StopRequested
                    cur_lr = lr_at(stage, step, stage.steps, lr) * plateau.scale
                    for group in optimizer.param_groups:
                        group["lr"] = cur_lr
                    x, y = source.batch(step)
                    x, y = x.to(self.device), y.to(self.device)
                    out = model(x)
                    y = match_size(y, out)
                    if stage.psnr_filter_db is not None:
                        # PyNET-V2's fine-tuning pass: keep only the patches the model already
                        # reconstructs at >= the threshold (drops misaligned / hopeless pairs).
                        with torch.no_grad():
                            mse = (out.detach().clamp(0, 1) - y).pow(2).mean(dim=(1, 2, 3))
                            keep = (10 * torch.log10(1.0 / mse.clamp_min(1e-10))) >= stage.psnr_filter_db
                        if keep.sum() == 0:
                            step += 1
                            global_step += 1
                            continue
                        out, y, x = out[keep], y[keep], x[keep]
                    loss, parts = criterion(out, y)
                    if teacher is not None and stage.distill_weight > 0:
                        with torch.no_grad():
                            t_out = teacher(x)
                        loss = loss + stage.distill_weight * F.mse_loss(out, match_size(t_out, out))
                        parts["distill"] = float(F.mse_loss(out.detach(), match_size(t_out, out)))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if stage.grad_clip:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), stage.grad_clip)
                    optimizer.step()
                    step += 1
                    global_step += 1
                    last_loss = float(loss.detach())
                    with torch.no_grad():
                        mse = (out.detach().clamp(0, 1) - y).pow(2).mean()
                        batch_psnr = float(10 * torch.log10(1.0 / mse.clamp_min(1e-10)))
                    history_loss.append(last_loss)
                    history_psnr.append(batch_psnr)
                    event = {"event": "step", "stage": si, "step": step, "steps": stage.steps,
                             "loss": last_loss, "psnr_db": batch_psnr, "lr": cur_lr, "parts": parts}
                    self.progress(event)
                    if step % cfg.log_every == 0 or step == stage.steps:
                        k = len(history_loss)
                        _append_history(self.out, {
                            "event": "train", "stage": si, "step": step, "global_step": global_step,
                            "loss": sum(history_loss) / k, "psnr_db": sum(history_psnr) / k,
                            "lr": cur_lr, "elapsed_s": round(elapsed_before + time.monotonic() - t0, 1),
                        })
                        history_loss.clear()
                        history_psnr.clear()
                    if val_pairs and (step % cfg.val_every == 0 or step == stage.steps):
                        metrics = validate(model, val_pairs, self.device)
                        plateau.update(metrics["psnr_db"])
                        is_best = stage_best is None or metrics["psnr_db"] > stage_best["psnr_db"]
                        if is_best:
                            stage_best = {"stage": si, "step": step, **metrics}
                            save_atomic({"format": CHECKPOINT_FORMAT, "model": model.state_dict(),
                                   "model_name": cfg.model, "model_options": self._model_options(stage),
                                   "step": step, "stage": si, "metrics": metrics,
                                   "config": cfg.to_dict()},
                                  self.out / ("best.pt" if si == len(self.stages) - 1 else f"best_stage{si}.pt"))
                        ev = {"event": "val", "stage": si, "step": step, **metrics, "best": is_best,
                              "elapsed_s": round(elapsed_before + time.monotonic() - t0, 1)}
                        _append_history(self.out, ev)
                        self.progress(ev)
                    if step % cfg.checkpoint_every == 0:
                        checkpoint("periodic")
            except KeyboardInterrupt:
                checkpoint("interrupted")
                self.progress({"event": "interrupted", "stage": si, "step": step})
                best = stage_best if si == len(self.stages) - 1 else best
                return self._finish(global_step, False, best, last_loss, t0, elapsed_before, "interrupted")
            except _StopRequested:
                checkpoint("time-limit")
                best = stage_best if si == len(self.stages) - 1 else best
                return self._finish(global_step, False, best, last_loss, t0, elapsed_before, result_reason)
            prev_weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            save_atomic({"format": CHECKPOINT_FORMAT, "model": prev_weights, "model_name": cfg.model,
                   "model_options": self._model_options(stage), "stage": si, "step": step},
                  self.out / f"stage{si}.pt")
            best = stage_best
            state = None
            # Hand over to the next stage: last.pt now points at its start.
            if si + 1 < len(self.stages):
                save_atomic({"format": CHECKPOINT_FORMAT, "config": cfg.to_dict(), "stage": si + 1,
                       "step": 0, "global_step": global_step, "model": {}, "optimizer": {},
                       "plateau": Plateau().state_dict(), "best": None,
                       "elapsed_s": elapsed_before + time.monotonic() - t0, "fresh": True,
                       "model_name": cfg.model, "model_options": {}, "reason": "stage-end"},
                      self.out / "last.pt")
            else:
                checkpoint("done")
            if not val_pairs:
                # No validation data: the final weights are the 'best'.
                save_atomic({"format": CHECKPOINT_FORMAT, "model": prev_weights, "model_name": cfg.model,
                       "model_options": self._model_options(stage), "step": step, "stage": si,
                       "metrics": {}, "config": cfg.to_dict()},
                      self.out / ("best.pt" if si == len(self.stages) - 1 else f"best_stage{si}.pt"))
        return self._finish(global_step, True, best, last_loss, t0, elapsed_before, "done")

    def _finish(self, steps: int, completed: bool, best: dict[str, Any] | None, last_loss: float | None,
                t0: float, elapsed_before: float, reason: str) -> TrainResult:
        result = TrainResult(
            out=self.out, steps=steps, completed=completed,
            best_psnr_db=best["psnr_db"] if best else None, best_step=best["step"] if best else None,
            best_ssim=best["ssim"] if best else None, last_loss=last_loss,
            elapsed_s=elapsed_before + time.monotonic() - t0, stopped_reason=reason,
        )
        write_text_atomic(self.out / "summary.json", json.dumps(result.to_dict(), indent=2))
        return result


def train(config: TrainConfig, *, progress: ProgressFn | None = None, resume: bool = True) -> TrainResult:
    """Train (or resume) a run; see :class:`TrainConfig` and :mod:`edge_isp.training.recipes`."""
    return Trainer(config, progress=progress).run(resume=resume)
