"""``edge-isp train``: train a registry model with a named recipe (resumable)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from edge_isp.commands._common import JsonFlag, err, out, parse_options, print_json

app = typer.Typer()


@app.command()
def train(
    model: str = typer.Argument(..., help="Registered model to train (see 'edge-isp models')."),
    recipe: str = typer.Option("default", "--recipe", "-r", help="Recipe: default, pynet, pynet-ca, pynet-v2, lw-isp."),
    data: str = typer.Option("synthetic", "--data", "-d",
                             help="synthetic | zurich:PATH | ultraisp:PATH | pairs:PATH (raw/ + rgb/)."),
    out_dir: Path = typer.Option(Path("runs/train"), "--out", "-o", help="Run folder (checkpoints, history)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Total steps (the recipe's stages are scaled)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b"),
    crop: Optional[int] = typer.Option(None, "--crop", help="Training crop side in mosaic pixels."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (overrides the recipe)."),
    loss: Optional[str] = typer.Option(None, "--loss", help="Loss, e.g. 'l1+0.2*ssim' (l1 mse ssim ms-ssim colour vgg)."),
    option: list[str] = typer.Option([], "--option", "-O", help="Model option key=value (repeatable)."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu, cuda, cuda:1 ..."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads."),
    val_every: int = typer.Option(200, "--val-every", help="Validate every N steps."),
    val_draws: int = typer.Option(16, "--val-draws", help="Held-out synthetic images for validation."),
    checkpoint_every: int = typer.Option(100, "--checkpoint-every"),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop (resumably) after this wall time."),
    stop_after: Optional[int] = typer.Option(None, "--stop-after", help="Stop (resumably) after N total steps."),
    vgg_weights: Optional[Path] = typer.Option(None, "--vgg-weights", help="Local VGG-19 state dict for the perceptual loss."),
    teacher: Optional[str] = typer.Option(None, "--teacher", help="Distillation teacher (registry name)."),
    teacher_weights: Optional[Path] = typer.Option(None, "--teacher-weights", help="Teacher weights (state dict or checkpoint)."),
    teacher_option: list[str] = typer.Option([], "--teacher-option", help="Teacher model option key=value."),
    init_weights: Optional[Path] = typer.Option(None, "--init", help="Start from these weights."),
    preset: Optional[str] = typer.Option(None, "--preset", help="RAW normalisation preset for dataset folders."),
    fresh: bool = typer.Option(False, "--fresh", help="Ignore an existing last.pt in --out and start over."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar (log lines only)."),
    as_json: bool = JsonFlag,
) -> None:
    """Train MODEL; rerun the same command to resume after an interruption."""
    from edge_isp.training import TrainConfig
    from edge_isp.training.trainer import Trainer

    cfg = TrainConfig(
        model=model, recipe=recipe, data=data, out=str(out_dir), model_options=parse_options(option),
        steps=steps, batch_size=batch_size, crop=crop, lr=lr, loss=loss, seed=seed, device=device,
        threads=threads, val_every=val_every, val_draws=val_draws, checkpoint_every=checkpoint_every,
        max_minutes=max_minutes, stop_after=stop_after, vgg_weights=str(vgg_weights) if vgg_weights else None,
        teacher=teacher, teacher_weights=str(teacher_weights) if teacher_weights else None,
        teacher_options=parse_options(teacher_option), init_weights=str(init_weights) if init_weights else None,
        preset=preset,
    )
    # Built before any progress display: a bad model, recipe or --out fails as one line.
    trainer = Trainer(cfg)

    def run_train(cfg: TrainConfig, progress: Any, resume: bool) -> Any:
        trainer.progress = progress
        return trainer.run(resume=resume)

    if as_json or quiet:
        def log(event: dict[str, Any]) -> None:
            if as_json:
                return
            if event["event"] in ("stage", "val", "interrupted"):
                err.print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in event.items()})
            elif event["event"] == "step" and event["step"] % 50 == 0:
                err.print(f"stage {event['stage']} step {event['step']}/{event['steps']} "
                          f"loss {event['loss']:.4f} psnr {event['psnr_db']:.2f} dB lr {event['lr']:.2e}")
        result = run_train(cfg, progress=log, resume=not fresh)
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=err) as bar:
            task = bar.add_task("train", total=1, info="")
            state = {"val": ""}

            def show(event: dict[str, Any]) -> None:
                kind = event["event"]
                if kind == "stage":
                    bar.update(task, description=f"stage {event['stage']}: {event['name']}",
                               total=event["steps"], completed=event["start"])
                    err.print(f"[dim]{event['data']}; loss {event['loss']}; device {event['device']}[/]")
                elif kind == "step":
                    bar.update(task, completed=event["step"],
                               info=f"loss {event['loss']:.4f}  psnr {event['psnr_db']:.2f} dB{state['val']}")
                elif kind == "val":
                    state["val"] = f"  val {event['psnr_db']:.2f} dB"
                    star = " (best)" if event.get("best") else ""
                    bar.console.print(f"step {event['step']}: held-out PSNR {event['psnr_db']:.2f} dB, "
                                      f"SSIM {event['ssim']:.3f}{star}")
            result = run_train(cfg, progress=show, resume=not fresh)
    if as_json:
        print_json(result.to_dict())
        return
    best = (f"best held-out PSNR {result.best_psnr_db:.2f} dB (step {result.best_step})"
            if result.best_psnr_db is not None else "no validation")
    out.print(f"{result.stopped_reason}: {result.steps} steps in {result.elapsed_s / 60:.1f} min, {best}; "
              f"checkpoints in {result.out}")
    if not result.completed:
        out.print("[dim]rerun the same command to resume[/]")


def main_entry() -> None:
    """``python -m edge_isp.training`` entry: the train verb with the CLI's error handling."""
    from edge_isp.commands._common import run_app

    run_app(app, prog_name="python -m edge_isp.training")
