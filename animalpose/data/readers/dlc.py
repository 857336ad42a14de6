"""DeepLabCut ``CollectedData*.csv`` or ``.h5``: labelled frames, the schema taken from the header.

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

Image paths must stay under the project root (:func:`project_root`, ``PoseDataset.meta["image_root"]``):
validation refuses a row whose image resolves outside it (``..``, an absolute path, a link leading out)
unless ``data.allow_outside_root`` is set. The videos of ``config.yaml``'s ``video_sets`` are listed wherever
DLC recorded them (absolute paths there are DLC's own layout); they are not labelled records.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from animalpose.data.images import folder_videos, video_info
from animalpose.data.readers.common import schema_by_name
from animalpose.data.records import PoseDataset, PoseRecord
from animalpose.errors import DataError, missing_file_reason
from animalpose.keypoints import KeypointSchema, schema_from_names

_COORDS = ("x", "y", "likelihood")


def find_dlc_csv(folder: Path) -> Path:
    """The labels of a DLC folder or project: ``CollectedData*.csv``, else ``CollectedData*.h5``, in the
    folder or in ``labeled-data/*/``."""
    for pattern in ("CollectedData*.csv", "labeled-data/*/CollectedData*.csv", "CollectedData*.h5",
                    "labeled-data/*/CollectedData*.h5"):
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
    raise DataError(str(folder), "<folder>", "no CollectedData*.csv or CollectedData*.h5 found")


def _h5_rows(path: Path, where: str) -> list[list[str]]:
    """A DLC ``.h5`` label file as the rows its CSV export would have (header rows named by the column
    levels, then one row per image: the index cells, then x / y cells, empty where not labelled).

    DLC writes a pandas DataFrame (``to_hdf``, key ``df_with_missing``) with (scorer, [individuals,]
    bodyparts, coords) columns and the image path, or (labeled-data, video, image), as index."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas comes with the dependencies
        raise DataError(where, "<file>", "reading DeepLabCut .h5 labels needs pandas") from None
    try:
        frame = pd.read_hdf(path)
    except ImportError as exc:
        raise DataError(where, "<file>", f"reading DeepLabCut .h5 labels needs PyTables (pip install tables): "
                                         f"{exc}") from None
    except Exception as exc:  # not an HDF5 file, or no pandas object in it
        raise DataError(where, "<file>", f"not a DeepLabCut HDF5 label file: {type(exc).__name__}: {exc}") from None
    if not isinstance(frame, pd.DataFrame) or frame.columns.nlevels < 3:
        raise DataError(where, "<file>", "expected a DataFrame with (scorer, [individuals,] bodyparts, coords) "
                                         "columns")
    n_index = frame.index.nlevels
    rows = []
    for level, name in enumerate(frame.columns.names):
        label = str(name or ("scorer", "individuals", "bodyparts", "coords")[level])
        rows.append([label] + [""] * (n_index - 1) + [str(c[level]) for c in frame.columns])
    for idx, values in zip(frame.index, frame.to_numpy(dtype=np.float64), strict=True):
        cells = [str(i) for i in (idx if n_index > 1 else (idx,))]
        rows.append(cells + ["" if not np.isfinite(v) else repr(float(v)) for v in values])
    return rows


def _read_rows(path: Path, where: str) -> list[list[str]]:
    if path.suffix.lower() in (".h5", ".hdf5"):
        return _h5_rows(path, where)
    try:
        with path.open(newline="") as fh:
            return list(csv.reader(fh))
    except (FileNotFoundError, IsADirectoryError):
        raise DataError(where, "<file>", missing_file_reason(path)) from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise DataError(where, "<file>", f"malformed CSV: {exc}") from exc


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


def project_root(csv_path: Path) -> Path:
    """The folder a DLC label file's image paths are relative to, and the root they must stay under
    (:mod:`animalpose.data.validate`'s containment): the nearest of the CSV's folder and its two parents that
    holds ``labeled-data/`` or ``config.yaml`` (a project: ``<project>/labeled-data/<video>/CollectedData.csv``,
    or a flat copy with the CSV beside ``labeled-data/``), else the CSV's own folder."""
    for base in (csv_path.parent, csv_path.parent.parent, csv_path.parent.parent.parent):
        if (base / "labeled-data").is_dir() or (base / "config.yaml").is_file():
            return base
    return csv_path.parent


def _resolve_image(csv_path: Path, rel: str) -> Path:
    """Image paths are relative to the project root: try the CSV folder and up to two parents."""
    for base in (csv_path.parent, csv_path.parent.parent, csv_path.parent.parent.parent):
        cand = base / rel
        if cand.exists():
            return cand
    return csv_path.parent / rel


def read_dlc(path: str | Path, schema: str | KeypointSchema | None = None) -> PoseDataset:
    """Read a DeepLabCut CollectedData CSV or .h5 (or the folder holding it) into one record per animal per
    image; a project folder (``config.yaml`` + ``labeled-data/``) is read whole (:func:`read_dlc_project`)."""
    path = Path(path)
    if path.is_dir() and (path / "config.yaml").is_file() and (path / "labeled-data").is_dir():
        return read_dlc_project(path, schema)
    if path.is_dir():
        path = find_dlc_csv(path)
    where = str(path)
    if not path.exists():
        raise DataError(where, "<file>", "file not found")
    rows = _read_rows(path, where)
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
            videos = {str(vid): video_info(vid)["frames"] for vid in folder_videos(folder)}
            break
    meta = {"annotation_file": where, "unique_bodyparts_skipped": skipped_unique,
            "individuals": [a for a in animals if a], "schema_def": resolved, "image_root": str(project_root(path))}
    return PoseDataset(records, resolved.name, "dlc", where, videos=videos, meta=meta)


# --------------------------------------------------------------------------------------------------
# a whole project


@dataclass
class DLCProject:
    """What a DeepLabCut project's ``config.yaml`` declares.

    Attributes:
        root: the project folder.
        task: ``Task`` (names the schema ``dlc:<task>``).
        bodyparts: the labelled body parts in order (``multianimalbodyparts`` in a multi-animal project).
        skeleton: (name, name) pairs of ``skeleton``.
        videos: the ``video_sets`` that exist here (the listed path, else ``videos/<file name>``).
        missing_videos: the listed videos found nowhere.
        label_files: one ``CollectedData_*.csv`` (else ``.h5``) per ``labeled-data/<video>/`` folder.
    """

    root: Path
    task: str
    bodyparts: list[str]
    skeleton: list[tuple[str, str]]
    videos: list[Path]
    missing_videos: list[str]
    label_files: list[Path]


def read_dlc_config(root: str | Path) -> DLCProject:
    """Parse ``root/config.yaml`` and find the label files; DataError naming the file and field on bad input."""
    import yaml

    root = Path(root)
    where = str(root / "config.yaml")
    try:
        raw = yaml.safe_load((root / "config.yaml").read_text())
    except FileNotFoundError:
        raise DataError(where, "<file>", "not a DeepLabCut project (no config.yaml)") from None
    except yaml.YAMLError as exc:
        raise DataError(where, "<file>", f"malformed YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise DataError(where, "<root>", "expected a mapping")
    key = "multianimalbodyparts" if raw.get("multianimalproject") else "bodyparts"
    parts = raw.get(key)
    if not isinstance(parts, list) or not parts or not all(isinstance(p, str) for p in parts):
        raise DataError(where, key, f"expected a non-empty list of body-part names, got {parts!r}")
    skeleton = [tuple(e) for e in raw.get("skeleton") or [] if isinstance(e, list | tuple) and len(e) == 2]
    videos, missing = [], []
    sets = raw.get("video_sets") or {}
    if not isinstance(sets, dict):
        raise DataError(where, "video_sets", "expected a mapping of video paths")
    for listed in sets:
        cands = [Path(str(listed)), root / str(listed), root / "videos" / Path(str(listed)).name]
        found = next((c for c in cands if c.is_file()), None)
        if found is None:
            missing.append(str(listed))
        else:
            videos.append(found)
    if not sets:
        videos = folder_videos(root / "videos")
    labels = []
    for folder in sorted(p for p in (root / "labeled-data").iterdir() if p.is_dir()):
        files = sorted(folder.glob("CollectedData*.csv")) or sorted(folder.glob("CollectedData*.h5"))
        if files:
            labels.append(files[0])
    if not labels:
        raise DataError(str(root / "labeled-data"), "<folder>", "no labeled-data/<video>/CollectedData*.csv or .h5")
    task = str(raw.get("Task") or root.name)
    return DLCProject(root, task, list(parts), skeleton, videos, missing, labels)


def read_dlc_project(root: str | Path, schema: str | KeypointSchema | None = None) -> PoseDataset:
    """Every ``labeled-data/<video>/`` label file of a DeepLabCut project as one dataset.

    The schema is ``config.yaml``'s body parts (named ``dlc:<Task>``, its skeleton as edges) unless one is
    given; every label file must have exactly these body parts (a DataError names the file otherwise).
    Each record's ``meta["video"]`` is its ``labeled-data`` folder (the video the frame was taken from),
    which is what :func:`animalpose.data.split.session_of` splits by. ``videos`` lists ``video_sets``.
    """
    project = read_dlc_config(root)
    resolved = (schema_from_names(f"dlc:{project.task}", project.bodyparts, project.skeleton) if schema is None
                else schema_by_name(schema))
    records: list[PoseRecord] = []
    skipped = 0
    for file in project.label_files:
        ds = read_dlc(file)
        if list(ds.meta["schema_def"].joints) != list(resolved.joints):
            raise DataError(str(file), "header.bodyparts", f"body parts {list(ds.meta['schema_def'].joints)} differ "
                            f"from {project.root / 'config.yaml'}'s {list(resolved.joints)}")
        skipped += ds.meta["unique_bodyparts_skipped"]
        for r in ds.records:
            records.append(replace(r, schema=resolved.name, meta={**r.meta, "video": file.parent.name}))
    videos = {str(v): video_info(v)["frames"] for v in project.videos}
    meta = {"annotation_file": str(project.root / "config.yaml"), "unique_bodyparts_skipped": skipped,
            "label_files": [str(f) for f in project.label_files], "missing_videos": project.missing_videos,
            "schema_def": resolved, "image_root": str(project.root)}
    return PoseDataset(records, resolved.name, "dlc", str(project.root), videos=videos, meta=meta)
