"""`animalpose adapt ccssl --config FILE [key=value ...]`: domain adaptation of a pose model."""

from __future__ import annotations

from pathlib import Path

import typer

from animalpose.jsonout import dumps

app = typer.Typer(no_args_is_help=True, help="Adapt a synthetic-trained model to an unlabelled target domain.")


@app.command("ccssl")
def ccssl(
    overrides: list[str] = typer.Argument(None, help="Overrides key.sub=value, e.g. ccssl.lambda_target=5."),
    config: Path = typer.Option(..., "--config", "-c", help="CC-SSL YAML (see configs/adapt/)."),
    out: Path = typer.Option(None, help="Output folder (default: ccssl.out_dir, else "
                                        "<data home>/runs/<experiment>/<config name>). Rerun to resume."),
    select_on: str = typer.Option(None, "--select-on", help="Model selection: source-val (default, no target "
                                                            "labels) or target-val (the reference's choice, "
                                                            "which uses labelled target data)."),
    progress: bool = typer.Option(True, help="Progress bars and round lines."),
) -> None:
    """CC-SSL rounds (Mu et al., CVPR 2020): pseudo-label, select, train on source + λ·target; resumable."""
    from animalpose.adapt.ccssl import CCSSLConfig, run_ccssl
    from animalpose.config import load_config
    from animalpose.paths import data_home

    extra = [f"train.select_on={select_on}"] if select_on else []
    cfg = load_config(config, CCSSLConfig, overrides=[*(overrides or []), *extra])
    out_dir = out or cfg.ccssl.out_dir or data_home() / "runs" / cfg.tracking.experiment / config.stem
    result = run_ccssl(cfg, out_dir, progress=progress)
    typer.echo(dumps({"out": result.out_dir, "rounds": len(result.rounds), "source_only": result.source_only,
                      "final": {k: v for k, v in (result.rounds[-1] if result.rounds else {}).items()
                                if k.startswith(("target/", "pseudo/precision", "pseudo/coverage"))},
                      "best_checkpoint": result.best_checkpoint, "last_checkpoint": result.last_checkpoint,
                      "skipped_images": result.skipped_images}))


@app.command("wscda")
def wscda(
    overrides: list[str] = typer.Argument(None, help="Overrides key.sub=value, e.g. wscda.scheme=grl."),
    config: Path = typer.Option(..., "--config", "-c", help="WS-CDA YAML (see configs/adapt/)."),
    out: Path = typer.Option(None, help="Output folder (default: wscda.out_dir, else "
                                        "<data home>/runs/<experiment>/<config name>). Rerun to resume."),
    progress: bool = typer.Option(True, help="Progress bars and stage lines."),
) -> None:
    """WS-CDA (Cao et al., ICCV 2019): humans + few labelled animals + unlabelled target, then PPLO; resumable."""
    from animalpose.adapt.wscda.run import WSCDAConfig, run_wscda
    from animalpose.config import load_config
    from animalpose.paths import data_home

    cfg = load_config(config, WSCDAConfig, overrides=list(overrides or []))
    out_dir = out or cfg.wscda.out_dir or data_home() / "runs" / cfg.tracking.experiment / config.stem
    result = run_wscda(cfg, out_dir, progress=progress)
    typer.echo(dumps({"out": result.out_dir, "rounds": len(result.rounds), "wscda": result.wscda,
                      "final": result.rounds[-1] if result.rounds else result.wscda,
                      "last_checkpoint": result.last_checkpoint, "skipped_images": result.skipped_images}))
