"""`animalpose synth`: render a synthetic dataset; `animalpose synth gallery`: a contact sheet of one."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    no_args_is_help=True,
    invoke_without_command=True,
    help="Render synthetic animals (or humans) with keypoint labels: "
    "animalpose synth --species horse --style cad --n 10000 --size 256 --seed 0 --out DIR",
)


@app.callback()
def synth(
    ctx: typer.Context,
    species: str = typer.Option(None, help="Template: horse, tiger, dog, sheep, elephant, human."),
    style: str = typer.Option("cad", help="cad (source), photo (stand-in target) or wild (a harder target)."),
    n: int = typer.Option(1000, "--n", help="Number of still images."),
    size: int = typer.Option(256, help="Image side in pixels."),
    seed: int = typer.Option(0, help="Seed: same seed, same bytes, whatever the worker count."),
    out: Path = typer.Option(None, help="Output folder (images/, annotations/<schema>.json, manifest.json)."),
    clips: int = typer.Option(0, help="Number of video clips (gait cycles with camera motion)."),
    frames: int = typer.Option(0, help="Frames per clip."),
    fps: float = typer.Option(25.0, help="Clip frame rate (frames per second of simulated time)."),
    workers: int = typer.Option(1, help="Worker processes."),
    gap: float = typer.Option(None, help="photo / wild only: domain gap in [0, 1] (default 1.0)."),
    masks: bool = typer.Option(False, help="Also write part-id masks (masks/)."),
    backgrounds: Path = typer.Option(None, help="Cut backgrounds from these photographs: a folder, or a COCO "
                                                "file whose boxes (the animals) are kept out of the crops, e.g. "
                                                "your unlabelled target images."),
    backgrounds_p: float = typer.Option(0.9, help="Fraction of the images over --backgrounds."),
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    if species is None or out is None:
        raise typer.BadParameter("--species and --out are required to generate a dataset")
    from synthetic import generate_dataset

    path = generate_dataset(out, species, style, n, size, seed, clips=clips, frames=frames, workers=workers,
                            gap=gap, masks=masks, progress=True, fps=fps, backgrounds=backgrounds,
                            backgrounds_p=backgrounds_p)
    typer.echo(f"wrote {path}")


@app.command("gallery")
def gallery(
    folder: Path = typer.Argument(..., help="A dataset folder written by `animalpose synth`."),
    out: Path = typer.Option(Path("gallery.png"), help="Output PNG."),
    count: int = typer.Option(24, help="Number of samples."),
    cols: int = typer.Option(6, help="Samples per row."),
    schema: str = typer.Option(None, help="Annotation file to draw (default: the first)."),
) -> None:
    """Grid of samples with skeleton overlays (occluded joints drawn as hollow rings)."""
    from animalpose.outputs import check_output_file
    from synthetic.gallery import dataset_gallery

    check_output_file(out, "--out")
    typer.echo(f"wrote {dataset_gallery(folder, out, count=count, cols=cols, schema=schema)}")
