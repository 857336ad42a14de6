"""DeepLabCut ``CollectedData*.csv``: labelled frames, the schema taken from the header.

Header rows: ``scorer``, optionally ``individuals`` (multi-animal projects), ``bodyparts`` and
``coords`` (x, y, and in some exports likelihood). Then one row per image: the image path in the
first column (or split over up to three index columns, as newer DLC writes ``labeled-data``,
``<video>``, ``<image>``), then the coordinates. An empty cell means "not labelled" (visibility 0);
a labelled point gets visibility 2 (DLC has no occluded flag).

Multi-animal files give one record per individual that has at least one labelled point; DLC's
"single" individual (unique body parts, not part of the animal skeleton) is left out and counted
in ``PoseDataset.meta["unique_bodyparts_skipped"]``. The schema is built from the body-part names
with :func:`animalpose.keypoints.schema_from_names` and named ``dlc:<folder of the csv>`` unless a
schema is given. Videos under ``<project>/videos/`` are listed in ``PoseDataset.videos`` with their
container frame counts (unlabelled target data of the same setup).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from animalpose.data.images import video_info
from animalpose.data.readers.common import schema_by_name
from animalpose.data.records import VIDEO_SUFFIXES, PoseDataset, PoseRecord
from animalpose.errors import DataError
from animalpose.keypoints import KeypointSchema, schema_from_names

_COORDS = ("x", "y", "likelihood")


def find_dlc_csv(folder: Path) -> Path:
    found = sorted(folder.glob("CollectedData*.csv")) or sorted(folder.glob("labeled-data/*/CollectedData*.csv"))
    if not found:
        raise DataError(str(folder), "<folder>", "no CollectedData*.csv found")
    return found[0]


def _header(rows: list[list[str]], where: str) -> tuple[dict[str, list[str]], int, int]:
    """Header rows by name, the number of header rows and of index columns."""
    header: dict[str, list[str]] = {}
    n = 0
    for row in rows:
        if not row:
            break
        label = row[0].strip().lower()
        if label in ("scorer", "individuals", "bodyparts", "coords"):
            header[label] = row
            n += 1
            if label == "coords":
                break
        else:
            break
    for key in ("scorer", "bodyparts", "coords"):
        if key not in header:
            raise DataError(where, f"header.{key}", "missing header row (expected scorer/bodyparts/coords)")
    coords = header["coords"]
    n_index = 1
    while n_index < len(coords) and coords[n_index].strip() not in _COORDS:
        n_index += 1
    return header, n, n_index


def _resolve_image(csv_path: Path, rel: str) -> Path:
    """Image paths are relative to the project root: try the CSV folder and up to two parents."""
    for base in (csv_path.parent, csv_path.parent.parent, csv_path.parent.parent.parent):
        cand = base / rel
        if cand.exists():
            return cand
    return csv_path.parent / rel


def read_dlc(path: str | Path, schema: str | KeypointSchema | None = None) -> PoseDataset:
    """Read a DeepLabCut CollectedData CSV (or the folder holding it) into one record per animal per image."""
    path = Path(path)
    if path.is_dir():
        path = find_dlc_csv(path)
    where = str(path)
    try:
        with path.open(newline="") as fh:
            rows = list(csv.reader(fh))
    except FileNotFoundError:
        raise DataError(where, "<file>", "file not found") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise DataError(where, "<file>", f"malformed CSV: {exc}") from exc
    header, n_header, n_index = _header(rows, where)
    width = len(header["coords"])
    bodyparts, coords = header["bodyparts"], header["coords"]
    individuals = header.get("individuals", [""] * width)
    if len(bodyparts) != width or len(individuals) != width:
        raise DataError(where, "header", "header rows have different lengths")
    # (individual, bodypart) -> {coord: column}
    columns: dict[tuple[str, str], dict[str, int]] = {}
    for col in range(n_index, width):
        c = coords[col].strip()
        if c not in _COORDS:
            raise DataError(where, f"header.coords[{col}]", f"expected x, y or likelihood, got {c!r}")
        columns.setdefault((individuals[col].strip(), bodyparts[col].strip()), {})[c] = col
    animals = list(dict.fromkeys(ind for ind, _ in columns if ind != "single"))
    joints = list(dict.fromkeys(bp for ind, bp in columns if ind != "single"))
    for (_, bp), cols in columns.items():
        if "x" not in cols or "y" not in cols:
            raise DataError(where, f"header.bodyparts[{bp}]", "needs both x and y columns")
    skipped_unique = sum(1 for ind, _ in columns if ind == "single")
    if schema is None:
        resolved = schema_from_names(f"dlc:{path.parent.name}", joints)
    else:
        resolved = schema_by_name(schema)
        if resolved.num_joints != len(joints):
            raise DataError(where, "header.bodyparts",
                            f"{len(joints)} body parts but schema {resolved.name!r} has {resolved.num_joints}")
    records = []
    for r, row in enumerate(rows[n_header:], start=n_header + 1):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != width:
            raise DataError(where, f"row {r}", f"{len(row)} cells, header has {width}")
        rel = "/".join(cell.strip() for cell in row[:n_index] if cell.strip())
        image = _resolve_image(path, rel)
        for a, animal in enumerate(animals):
            kps = np.zeros((len(joints), 3), dtype=np.float32)
            for k, bp in enumerate(joints):
                cols = columns.get((animal, bp))
                if cols is None:
                    continue
                xs, ys = row[cols["x"]].strip(), row[cols["y"]].strip()
                if not xs and not ys:
                    continue
                try:
                    x = float(xs) if xs else math.nan
                    y = float(ys) if ys else math.nan
                except ValueError as exc:
                    raise DataError(where, f"row {r}.{bp}", f"not a number: {exc}") from exc
                kps[k] = (x, y, 2.0)
            if animal and not (kps[:, 2] > 0).any():
                continue  # a multi-animal row lists every individual; absent ones have no labels
            records.append(PoseRecord(
                image=str(image), keypoints=kps, schema=resolved.name,
                instance_id=a if animal else None,
                meta={"origin": (where, f"row {r}"), "individual": animal or None},
            ))
    videos = {}
    for folder in (path.parent / "videos", path.parent.parent / "videos"):
        if folder.is_dir():
            for vid in sorted(folder.iterdir()):
                if vid.suffix.lower() in VIDEO_SUFFIXES:
                    videos[str(vid)] = video_info(vid)["frames"]
            break
    meta = {"annotation_file": where, "unique_bodyparts_skipped": skipped_unique,
            "individuals": [a for a in animals if a], "schema_def": resolved}
    return PoseDataset(records, resolved.name, "dlc", where, videos=videos, meta=meta)
