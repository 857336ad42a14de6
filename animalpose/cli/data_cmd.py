"""`animalpose data` commands: `data check PATH` validates a dataset and summarises it."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from animalpose.jsonout import dumps

if TYPE_CHECKING:
    from animalpose.data.check import CheckReport

app = typer.Typer(no_args_is_help=True, help="Inspect and validate datasets.")


class Format(StrEnum):
    auto = "auto"
    coco = "coco"
    animalpose_release = "animalpose-release"
    tigdog = "tigdog"
    ccssl = "ccssl"
    mpii = "mpii"
    dlc = "dlc"
    slp = "slp"
    video = "video"


@app.command("check")
def check(
    path: Path = typer.Argument(..., help="dataset file or folder"),
    format: Format = typer.Option(Format.auto, "--format", "-f", help="dataset format (auto: detect)"),
    schema: str | None = typer.Option(None, "--schema", help="keypoint schema name (overrides the file)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of the summary"),
    decode_video: bool = typer.Option(False, "--decode-video", help="decode every video frame (slow)"),
    step: int = typer.Option(1, "--step", help="raw video: one record every STEP frames"),
    category: list[str] = typer.Option([], "--category", help="keep this species (repeatable), e.g. horse"),
    split_file: Path | None = typer.Option(None, "--split-file", exists=True, dir_okay=False,
                                           help="{species: {split: [image ids]}} (Animal-Pose splits.json)"),
    split: str | None = typer.Option(None, "--split", help="keep this split (of --split-file or the file's own)"),
    allow_outside_root: bool = typer.Option(False, "--allow-outside-root", help="check images whose paths resolve "
                                            "outside the dataset's image root (else each is an error, not opened)"),
) -> None:
    """Read a dataset, validate it and print a summary and every problem; exit 1 when there are errors."""
    from animalpose.data.check import check_dataset
    from animalpose.data.readers import read_dataset

    options = {"step": step} if format == Format.video or (format == Format.auto and _is_video(path)) else {}
    dataset = read_dataset(path, format.value, schema=schema, split=split, categories=category or None,
                           split_file=split_file, **options)
    report = check_dataset(dataset, decode_video=decode_video, progress=not as_json and sys.stderr.isatty(),
                           allow_outside_root=allow_outside_root)
    if as_json:
        typer.echo(dumps(report.to_dict(), indent=2))
    else:
        _print_report(report)
    if report.errors:
        raise typer.Exit(1)


def _is_video(path: Path) -> bool:
    from animalpose.data.readers import detect_format

    try:
        return detect_format(path) == "video"
    except Exception:
        return False


def _print_report(report: CheckReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    joints = f" ({report.num_joints} joints)" if report.num_joints is not None else ""
    console.print(f"[bold]{report.source}[/bold]  format {report.format}  schema {report.schema}{joints}")
    console.print(f"images {report.num_images}  instances {report.num_instances}  "
                  f"labelled keypoints {report.num_keypoints_labelled}")
    if report.splits:
        console.print("splits " + "  ".join(f"{k} {v}" for k, v in report.splits.items()))
    for name, c in report.categories.items():
        console.print(f"category {name}: images {c['images']}  instances {c['instances']}")
    if report.image_sizes:
        console.print("image sizes " + "  ".join(f"{k} ({v})" for k, v in report.image_sizes.items()))
    for v in report.videos:
        decoded = f", {v['frames_decoded']} decoded" if "frames_decoded" in v else ""
        console.print(f"video {v['path']}: {v['frames']} frames{decoded}, {v['labelled_frames']} referenced")
    if report.per_joint_labelled:
        table = Table("joint", "labelled", title="labelled keypoints per joint")
        for name, count in report.per_joint_labelled.items():
            table.add_row(name, str(count))
        console.print(table)
    for note in report.notes:
        console.print(f"note: {note}")
    for p in report.problems:
        colour = "red" if p.severity == "error" else "yellow"
        console.print(f"[{colour}]{p.severity}[/{colour}] {p.file}: {p.field}: {p.message}", soft_wrap=True)
    status = "[green]ok[/green]" if report.ok else f"[red]{len(report.errors)} errors[/red]"
    console.print(f"{status}, {len(report.warnings)} warnings")


@app.command("subset")
def subset(
    path: Path = typer.Argument(..., help="dataset file or folder"),
    out: Path = typer.Option(..., "--out", "-o", help="COCO keypoints JSON to write"),
    format: Format = typer.Option(Format.auto, "--format", "-f", help="dataset format (auto: detect)"),
    schema: str | None = typer.Option(None, "--schema", help="keypoint schema (default: the dataset's)"),
    category: list[str] = typer.Option([], "--category", help="keep this species (repeatable), e.g. horse"),
    split_file: Path | None = typer.Option(None, "--split-file", exists=True, dir_okay=False,
                                           help="{species: {split: [image ids]}} (Animal-Pose splits.json)"),
    split: str | None = typer.Option(None, "--split", help="keep this split (of --split-file or the file's own)"),
    allow_outside_root: bool = typer.Option(False, "--allow-outside-root", help="keep images whose paths resolve "
                                            "outside the dataset's image root"),
) -> None:
    """Write the selected instances as one COCO keypoints file (absolute image paths, [x, y, w, h] boxes),
    checked first, so that any config, flow or `demo --target` can take the selection as a plain file.

    e.g. `animalpose data subset ../shared/data/real/animal-pose --category horse --split-file
    ../shared/data/real/animal-pose/splits.json --split test --out horse_test.json`"""
    from animalpose.data.coco_writer import write_coco
    from animalpose.data.readers import dataset_schema, read_dataset
    from animalpose.data.validate import validate_dataset
    from animalpose.outputs import check_output_file

    check_output_file(out, "--out")  # before the (possibly long) read and check
    dataset = read_dataset(path, format.value, schema=schema, split=split, categories=category or None,
                           split_file=split_file)
    own = dataset_schema(dataset)
    if own is None:
        typer.echo(f"error: {path}: schema: the dataset has no keypoint labels; nothing to subset", err=True)
        raise typer.Exit(2)
    records = validate_dataset(dataset, own, allow_outside_root=allow_outside_root).records
    if not records:
        typer.echo(f"error: {path}: no instance left after the selection", err=True)
        raise typer.Exit(2)
    written = write_coco(records, out.resolve(), own, info={"source": str(path), "split": split,
                                                           "categories": list(category)})
    typer.echo(dumps({"out": str(written), "instances": len(records), "schema": own.name,
                           "images": len({(r.image, r.frame_index) for r in records})}))


class SplitBy(StrEnum):
    video = "video"
    frame = "frame"


@app.command("split")
def split(
    path: Path = typer.Argument(..., help="labelled dataset: a DLC project or CSV/.h5, a SLEAP .slp, a COCO JSON"),
    out: Path = typer.Option(..., "--out", "-o", help="folder for train.json, val.json, test.json and split.json"),
    val: float = typer.Option(0.1, "--val", help="share of the frames for validation (choosing epochs/models)"),
    test: float = typer.Option(0.1, "--test", help="share of the frames for the final test (never for choosing)"),
    by: SplitBy = typer.Option(SplitBy.video, "--by", help="video: whole videos per split (no near-duplicate "
                                                            "frames across splits); frame: frames drawn freely"),
    seed: int = typer.Option(0, "--seed", help="the same seed gives the same split"),
    format: Format = typer.Option(Format.auto, "--format", "-f", help="dataset format (auto: detect)"),
    schema: str | None = typer.Option(None, "--schema", help="keypoint schema (default: the dataset's)"),
    allow_outside_root: bool = typer.Option(False, "--allow-outside-root", help="keep images whose paths resolve "
                                            "outside the dataset's root (e.g. a DLC project's frames linked "
                                            "from elsewhere)"),
) -> None:
    """A fixed, seeded train/val/test split of a labelled set, each split a COCO keypoints file whose image
    paths are relative to --out (written atomically), e.g. `animalpose data split PROJECT --out
    PROJECT/animalpose/data --val 0.1 --test 0.2`."""
    from animalpose.data.readers import dataset_schema, read_dataset
    from animalpose.data.split import images_outside, split_records, write_split
    from animalpose.data.validate import validate_dataset
    from animalpose.outputs import check_output_dir

    check_output_dir(out, "--out", create=False)  # before the read and check; nothing made yet
    dataset = read_dataset(path, format.value, schema=schema)
    own = dataset_schema(dataset)
    if own is None:
        typer.echo(f"error: {path}: schema: the dataset has no keypoint labels; nothing to split", err=True)
        raise typer.Exit(2)
    records = [r for r in validate_dataset(dataset, own, allow_outside_root=allow_outside_root).records
               if (r.keypoints[:, 2] > 0).any()]
    splits = split_records(records, val, test, by=by.value, seed=seed, where=str(path))
    paths = write_split(splits, own, out, manifest={"source": str(Path(path).resolve()), "seed": seed,
                                                    "by": by.value, "val": val, "test": test})
    summary = json.loads(paths["manifest"].read_text())["splits"]
    outside = images_outside(splits, out)
    if outside:
        typer.echo(f"note: the images lie outside {out} (the files name them with ../): read the splits with "
                   "data.allow_outside_root=true (evaluate, data check: --allow-outside-root)", err=True)
    typer.echo(dumps({"out": out, "schema": own.name, "splits": summary, "allow_outside_root": outside}))
