"""`animalpose train --config FILE [key=value ...] [--resume]` (also under torchrun for DDP)."""

from __future__ import annotations

from pathlib import Path

import typer

from animalpose.cli.options import threads_option
from animalpose.jsonout import dumps

app = typer.Typer(help="Train a pose model from a configuration file.")


@app.callback(invoke_without_command=True, context_settings={"allow_interspersed_args": True})
def train(
    overrides: list[str] = typer.Argument(None, help="Overrides key.sub=value, e.g. train.epochs=5."),
    config: Path = typer.Option(..., "--config", "-c", help="Experiment YAML (see configs/)."),
    out: Path = typer.Option(None, help="Output folder (default: <data home>/runs/<experiment>/<config name>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue exactly from OUT/last.ckpt."),
    name: str = typer.Option(None, help="Run name (default: the config file's stem)."),
    progress: bool = typer.Option(True, help="Progress bars."),
    threads: int = threads_option(),
) -> None:
    """Train; checkpoints to OUT/last.ckpt and OUT/best.ckpt; an MLflow run records everything."""
    from animalpose.threads import configure_threads

    configure_threads(threads)
    from animalpose.config import load_config
    from animalpose.engine.train import train as run_train

    cfg = load_config(config, overrides=overrides or [])
    result = run_train(cfg, out_dir=out, name=name or config.stem, resume=resume, progress=progress)
    typer.echo(dumps({"out": result.out_dir, "best_checkpoint": result.best_checkpoint,
                      "best_score": result.best_score, "epochs": len(result.history),
                      "images_per_s": result.images_per_second, "run_id": result.run_id,
                      "stopped_early": result.stopped_early, "data_skipped": result.data_skipped,
                      "images_skipped": result.images_skipped}))
