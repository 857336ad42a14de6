"""MPII human pose in mmpose's JSON form: a list of {image, joints, joints_vis, center, scale}.

``joints`` are 16 (x, y) in the MPII order of ``configs/keypoints/mpii.yaml``; ``joints_vis`` is 1
for a labelled joint. MPII coordinates are MATLAB 1-based: like mmpose's loader we subtract 1 from
joints and center to get 0-based pixels. ``scale`` is the person height / 200 px (Andriluka et al.,
CVPR 2014), so the record's box is the square of side 200·scale around the center, clipped to the
image (its size read from the file header); mmpose's crop
heuristics (center shifted down by 15·scale, scale × 1.25) belong to the top-down pipeline and are
not applied here: ``meta`` keeps the raw center and scale. Head boxes (for PCKh) are not in this
JSON; ``meta["head_size"]`` is None unless an entry carries ``head_size``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from animalpose.data.images import probe_image_size
from animalpose.data.readers.common import load_json, require, resolve_schema, split_from_name
from animalpose.data.records import PoseDataset, PoseRecord
from animalpose.errors import DataError
from animalpose.keypoints import KeypointSchema


def is_mpii_json(path: Path) -> bool:
    """Cheap sniff: a JSON list whose first entry has "joints"."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4096).lstrip()
    except OSError:
        return False
    return head.startswith(b"[") and b'"joints"' in head


def find_mpii_json(folder: Path) -> Path:
    for cand in sorted(folder.glob("*.json")) + sorted(folder.glob("annotations/*.json")):
        if is_mpii_json(cand):
            return cand
    raise DataError(str(folder), "<folder>", "no MPII JSON (list of entries with joints) found")


def _probe(root: Path, image: str) -> tuple[int, int] | None:
    path = root / image
    real, base = os.path.realpath(path), os.path.realpath(root)
    if not real.startswith(base.rstrip(os.sep) + os.sep):
        return None  # outside the image root: not opened here (validation refuses it unless allowed)
    try:
        return probe_image_size(path)
    except DataError:
        return None  # missing/corrupt image: reported by `data check`


def _square_box(cx: float, cy: float, side: float, size: tuple[int, int] | None) -> tuple[float, ...]:
    """(x, y, w, h) of the square of ``side`` around (cx, cy), clipped to the image when its size is known."""
    x0, y0, x1, y1 = cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2
    if size is not None:
        x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(size[0])), min(y1, float(size[1]))
    return x0, y0, x1 - x0, y1 - y0


def read_mpii(path: str | Path, schema: str | KeypointSchema | None = None,
              *, image_root: str | Path | None = None) -> PoseDataset:
    """Read an MPII JSON file (or the folder holding it); images resolved against its folder or ../images."""
    path = Path(path)
    if path.is_dir():
        path = find_mpii_json(path)
    where = str(path)
    data = load_json(path)
    if not isinstance(data, list):
        raise DataError(where, "<root>", "expected a list of MPII entries")
    resolved, _ = resolve_schema(schema or "mpii", None, None, None, where)
    if image_root is None:
        first = data[0].get("image") if data and isinstance(data[0], dict) else None
        roots = [path.parent, path.parent.parent / "images", path.parent / "images"]
        image_root = next((r for r in roots if first and (r / first).exists()), path.parent)
    root = Path(image_root)
    split = split_from_name(path.stem)
    records = []
    for i, entry in enumerate(data):
        field = f"[{i}]"
        image = require(entry, "image", where, f"{field}.image")
        joints = np.asarray(require(entry, "joints", where, f"{field}.joints"), dtype=np.float32)
        if joints.ndim != 2 or joints.shape[1] != 2:
            raise DataError(where, f"{field}.joints", f"expected (K, 2) coordinates, got shape {joints.shape}")
        vis = np.asarray(entry.get("joints_vis", np.ones(len(joints))), dtype=np.float32).reshape(-1)
        if len(vis) != len(joints):
            raise DataError(where, f"{field}.joints_vis", f"{len(vis)} flags for {len(joints)} joints")
        labelled = vis > 0
        kps = np.zeros((len(joints), 3), dtype=np.float32)
        kps[labelled, :2] = joints[labelled] - 1.0
        kps[labelled, 2] = 2.0
        center = require(entry, "center", where, f"{field}.center")
        scale = float(require(entry, "scale", where, f"{field}.scale"))
        cx, cy = float(center[0]) - 1.0, float(center[1]) - 1.0
        size = _probe(root, image)
        bbox = _square_box(cx, cy, 200.0 * scale, size) if scale > 0 else None
        records.append(
            PoseRecord(
                image=str(root / image),
                keypoints=kps,
                schema=resolved.name,
                bbox=bbox,
                image_size=size,
                split=split,
                meta={
                    "origin": (where, field),
                    "center": [float(center[0]), float(center[1])],
                    "scale": scale,
                    "head_size": entry.get("head_size"),
                },
            )
        )
    return PoseDataset(records, resolved.name, "mpii", where, meta={"annotation_file": where, "image_root": str(root)})
