"""A Lightning Pose project: its data folder, or the config file that points at it.

Lightning Pose (Biderman et al., Nature Methods 2024; the layout of its docs' "Organizing your data" and of
``scripts/configs/config_mirror-mouse-example.yaml``) keeps a project as::

    <data_dir>/<csv_file>            labels, DeepLabCut's CSV (scorer / bodyparts / coords header rows)
    <data_dir>/labeled-data/...      the labelled frames, paths relative to data_dir in the CSV's first column
    <video_dir>/*.mp4                unlabelled videos (default ``<data_dir>/videos``)

and its config's ``data`` section names them (``data_dir``, ``csv_file``, ``video_dir``), lists
``keypoint_names`` (and ``num_keypoints``), and for a mirror rig ``mirrored_column_matches``: one list of
keypoint indices per view, the i-th entries of the lists being one body part (the keypoints seen in one view
only are left out). :func:`read_lp_project` takes either the folder (the CSV is ``CollectedData.csv``, else
the one CSV in it) or the config (``.yaml``), and gives the labels' file, the videos and, from a config, the
views as keypoint names (``[[paw1_top, paw1_bot], ...]``, :class:`animalpose.config.MultiviewConfig`'s form).

Paths in the config: ``data_dir`` absolute, or relative to the config's folder; ``csv_file`` and ``video_dir``
absolute or relative to ``data_dir``. OmegaConf's ``${data.data_dir}`` and ``${NAME:default}`` (an environment
variable, as Lightning Pose's ``${LP_ROOT_PATH:}``) are expanded; anything else in ``${...}`` is an error that
names the field.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from animalpose.data.images import folder_videos
from animalpose.errors import DataError

_INTERPOLATION = re.compile(r"\$\{([^}]*)\}")


@dataclass
class LPProject:
    data_dir: Path
    csv: Path
    videos: list[Path]
    keypoint_names: list[str] | None = None  # the config's, checked against the CSV's header by the caller
    views: list[list[str]] = field(default_factory=list)  # per body part, its keypoint in every view
    notes: list[str] = field(default_factory=list)
    source: str = ""


def read_lp_project(path: str | Path) -> LPProject:
    """The labels, videos and views of a Lightning Pose data folder or config file (DataError naming the file
    and field on bad input)."""
    path = Path(path)
    if path.is_dir():
        return _from_folder(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        return _from_config(path)
    if not path.exists():
        raise DataError(str(path), "<file>", "not found (expected a Lightning Pose data folder or its config .yaml)")
    raise DataError(str(path), "<file>", "expected a Lightning Pose data folder or its config .yaml")


def _folder_csv(folder: Path) -> Path:
    if (folder / "CollectedData.csv").is_file():
        return folder / "CollectedData.csv"
    found = sorted(folder.glob("*.csv"))
    if len(found) == 1:
        return found[0]
    what = "no CSV" if not found else f"{len(found)} CSVs ({', '.join(p.name for p in found)})"
    raise DataError(str(folder), "<folder>", f"{what} beside labeled-data/: name the labels with the project's config "
                    "(--from-lp config.yaml, its data.csv_file)")


def _from_folder(folder: Path) -> LPProject:
    csv = _folder_csv(folder)
    videos = folder_videos(folder / "videos")
    notes = [] if videos else [f"no video in {folder / 'videos'}"]
    return LPProject(folder, csv, videos, notes=notes, source=f"the Lightning Pose data folder {folder.resolve()}")


def _expand(value, where: str, key: str, data_dir: str | None) -> str:
    if not isinstance(value, str) or not value:
        raise DataError(where, key, f"expected a path, got {value!r}")

    def one(m: re.Match) -> str:
        inner = m.group(1).strip()
        if inner == "data.data_dir" and data_dir is not None:
            return data_dir
        name, sep, default = inner.partition(":")
        if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            return os.environ.get(name, default)
        raise DataError(where, key, f"cannot expand ${{{inner}}} in {value!r}: give the path itself")

    return _INTERPOLATION.sub(one, value)


def _from_config(config: Path) -> LPProject:
    import yaml

    where = str(config)
    try:
        raw = yaml.safe_load(config.read_text())
    except FileNotFoundError:
        raise DataError(where, "<file>", "file not found") from None
    except yaml.YAMLError as exc:
        raise DataError(where, "<file>", f"malformed YAML: {exc}") from None
    data = raw.get("data") if isinstance(raw, dict) else None
    if not isinstance(data, dict):
        raise DataError(where, "data", "expected Lightning Pose's data section (data_dir, csv_file, ...)")
    data_dir = Path(_expand(data.get("data_dir"), where, "data.data_dir", None))
    data_dir = data_dir if data_dir.is_absolute() else config.parent / data_dir
    if not data_dir.is_dir():
        raise DataError(where, "data.data_dir", f"not a folder: {data_dir}")
    csv = Path(_expand(data.get("csv_file", "CollectedData.csv"), where, "data.csv_file", str(data_dir)))
    csv = csv if csv.is_absolute() else data_dir / csv
    if not csv.is_file():
        raise DataError(where, "data.csv_file", f"file not found: {csv}")
    video_dir = Path(_expand(data.get("video_dir", "videos"), where, "data.video_dir", str(data_dir)))
    video_dir = video_dir if video_dir.is_absolute() else data_dir / video_dir
    videos = folder_videos(video_dir)
    notes = [] if videos else [f"no video in {video_dir} (data.video_dir)"]
    names = data.get("keypoint_names")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise DataError(where, "data.keypoint_names", f"expected a list of names, got {names!r}")
    count = data.get("num_keypoints")
    if names is not None and count is not None and count != len(names):
        raise DataError(where, "data.num_keypoints", f"{count}, but data.keypoint_names lists {len(names)}")
    views = _views(data.get("mirrored_column_matches"), names, where)
    return LPProject(data_dir, csv, videos, names, views, notes, source=f"the Lightning Pose config {config.resolve()}")


def _views(matches, names: list[str] | None, where: str) -> list[list[str]]:
    """``mirrored_column_matches`` (one index list per view) as each body part's keypoint names in every view."""
    key = "data.mirrored_column_matches"
    if not matches:
        return []
    if names is None:
        raise DataError(where, key, "needs data.keypoint_names to name the keypoints")
    if (not isinstance(matches, list) or len(matches) < 2
            or not all(isinstance(v, list) and all(isinstance(i, int) for i in v) for v in matches)):
        raise DataError(where, key, f"expected one list of keypoint indices per view (two or more), got {matches!r}")
    if len({len(v) for v in matches}) != 1:
        raise DataError(where, key, f"the views list different numbers of keypoints: {[len(v) for v in matches]}")
    bad = sorted({i for v in matches for i in v if not 0 <= i < len(names)})
    if bad:
        raise DataError(where, key, f"indices {bad} outside 0..{len(names) - 1} (data.keypoint_names)")
    return [[names[i] for i in part] for part in zip(*matches, strict=True)]
