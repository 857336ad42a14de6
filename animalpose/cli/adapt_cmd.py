"""`animalpose adapt ccssl --config FILE [key=value ...]`: domain adaptation of a pose model."""

from __future__ import annotations

from pathlib import Path

import typer

from animalpose.cli.options import threads_option
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
    control: bool = typer.Option(None, "--control/--no-control",
                                 help="Also train the supervised control (same epochs, λ = 0), score both on the "
                                      "labelled val frames and keep the better as final.ckpt (default: "
                                      "ccssl.control, on)."),
    progress: bool = typer.Option(True, help="Progress bars and round lines."),
    threads: int = threads_option(),
) -> None:
    """CC-SSL rounds (Mu et al., CVPR 2020): pseudo-label, select, train on source + λ·target; resumable. Then
    the supervised control and the keep-the-better rule (animalpose.adapt.control)."""
    from animalpose.threads import configure_threads

    configure_threads(threads)
    from animalpose.adapt.ccssl import CCSSLConfig
    from animalpose.adapt.control import run_ccssl_with_control
    from animalpose.config import load_config
    from animalpose.paths import data_home

    extra = [f"train.select_on={select_on}"] if select_on else []
    extra += [f"ccssl.control={str(control).lower()}"] if control is not None else []
    cfg = load_config(config, CCSSLConfig, overrides=[*(overrides or []), *extra])
    out_dir = out or cfg.ccssl.out_dir or data_home() / "runs" / cfg.tracking.experiment / config.stem
    result, kept = run_ccssl_with_control(cfg, out_dir, progress=progress)
    typer.echo(dumps({"out": result.out_dir, "rounds": len(result.rounds), "source_only": result.source_only,
                      "final": {k: v for k, v in (result.rounds[-1] if result.rounds else {}).items()
                                if k.startswith(("target/", "pseudo/precision", "pseudo/coverage"))},
                      "best_checkpoint": result.best_checkpoint, "last_checkpoint": result.last_checkpoint,
                      "skipped_images": result.skipped_images,
                      "keep_better": None if kept is None else {
                          "kept": kept.kept, "final": kept.final, "metric": kept.metric,
                          "adapted": kept.adapted["score"], "control": kept.control["score"],
                          "source": None if kept.source is None else kept.source["score"],
                          "margin": kept.margin, "margin_se": kept.margin_se, "frames": kept.frames,
                          "sentence": kept.sentence()}}))


@app.command("wscda")
def wscda(
    overrides: list[str] = typer.Argument(None, help="Overrides key.sub=value, e.g. wscda.scheme=grl."),
    config: Path = typer.Option(..., "--config", "-c", help="WS-CDA YAML (see configs/adapt/)."),
    out: Path = typer.Option(None, help="Output folder (default: wscda.out_dir, else "
                                        "<data home>/runs/<experiment>/<config name>). Rerun to resume."),
    progress: bool = typer.Option(True, help="Progress bars and stage lines."),
    threads: int = threads_option(),
) -> None:
    """WS-CDA (Cao et al., ICCV 2019): humans + few labelled animals + unlabelled target, then PPLO; resumable."""
    from animalpose.threads import configure_threads

    configure_threads(threads)
    from animalpose.adapt.wscda.run import WSCDAConfig, run_wscda
    from animalpose.config import load_config
    from animalpose.paths import data_home

    cfg = load_config(config, WSCDAConfig, overrides=list(overrides or []))
    out_dir = out or cfg.wscda.out_dir or data_home() / "runs" / cfg.tracking.experiment / config.stem
    result = run_wscda(cfg, out_dir, progress=progress)
    typer.echo(dumps({"out": result.out_dir, "rounds": len(result.rounds), "wscda": result.wscda,
                      "final": result.rounds[-1] if result.rounds else result.wscda,
                      "last_checkpoint": result.last_checkpoint, "skipped_images": result.skipped_images}))
