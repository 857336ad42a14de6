"""`animalpose init --from-dlc PROJECT` / `--from-lp DATA|CONFIG` / `--from-sleap FILE.slp`: a lab's project to
ready-to-run configs."""

from __future__ import annotations

from pathlib import Path

import typer

from animalpose.jsonout import dumps


def init(
    from_dlc: Path = typer.Option(None, "--from-dlc", help="DeepLabCut project folder (config.yaml, labeled-data/)"),
    from_lp: Path = typer.Option(None, "--from-lp", help="Lightning Pose data folder (CollectedData.csv, "
                                 "labeled-data/, videos/) or its config .yaml (data_dir, csv_file, video_dir, "
                                 "mirrored_column_matches)"),
    from_sleap: Path = typer.Option(None, "--from-sleap", help="SLEAP labels file (.slp; videos beside it)"),
    out: Path = typer.Option(None, "--out", "-o", help="output folder (default: PROJECT/animalpose, "
                                                       "<data_dir>/animalpose, or <stem>-animalpose beside the .slp)"),
    val: float = typer.Option(0.1, "--val", help="share of the labelled frames for validation"),
    test: float = typer.Option(0.1, "--test", help="share of the labelled frames for the final test"),
    by: str = typer.Option(None, "--by", help="split by 'video' or 'frame' (default: video with >= 3 videos)"),
    seed: int = typer.Option(0, "--seed", help="split seed"),
    target_frames: int = typer.Option(None, "--target-frames", min=1, help="CC-SSL pseudo-labels about this many "
                                      "frames of the longest video each round (the frame step, ccssl.video_step, "
                                      "is chosen so; default 300)"),
    allow_outside_root: bool = typer.Option(False, "--allow-outside-root", help="keep labelled frames whose paths "
                                            "resolve outside the project (links leading out)"),
) -> None:
    """Split the labelled frames (data/train|val|test.json) and write train.yaml and adapt_ccssl.yaml, with
    the project's body parts and videos filled in and paths relative to the output folder."""
    from animalpose.project_init import init_from_dlc, init_from_lp, init_from_sleap

    given = [(f, s) for f, s in ((init_from_dlc, from_dlc), (init_from_lp, from_lp), (init_from_sleap, from_sleap))
             if s is not None]
    if len(given) != 1:
        typer.echo("error: give one of --from-dlc PROJECT, --from-lp DATA_DIR|CONFIG.yaml or --from-sleap FILE.slp",
                   err=True)
        raise typer.Exit(2)
    if by not in (None, "video", "frame"):
        typer.echo(f"error: --by: expected video or frame, got {by!r}", err=True)
        raise typer.Exit(2)
    options = {"val": val, "test": test, "by": by, "seed": seed, "allow_outside_root": allow_outside_root}
    if target_frames is not None:
        options["target_frames"] = target_frames
    make, source = given[0]
    result = make(source, out, **options)
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(dumps({"out": result.out, "schema": result.schema, "joints": len(result.bodyparts),
                      "split_by": result.by, "train_config": result.train_config,
                      "adapt_config": result.adapt_config, "videos": result.videos}))
