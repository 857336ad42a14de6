"""The CC-SSL synthetic-animal format (Mu et al., "Learning from Synthetic Animals", CVPR 2020).

Layout: ``synthetic_animal/<animal>_combineds5r5_texture/<index>_img.png`` (640×480 renders) with
``<index>_kpts.npy`` of shape (3299, 3): x, y, visibility of every mesh vertex. The 18 TigDog-order
keypoints are the rows listed per species in ``VERTEX_IDS`` (from the reference code). Visible
vertices (visibility > 0) inside the image get COCO visibility 2; the rest 0.

Split: per animal, images sorted by numeric index; the first 4/5 are "train", the last 1/5 "val"
(10,000 renders -> 8,000 / 2,000, the reference's sizes).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from animalpose.data.images import probe_image_size
from animalpose.data.readers.common import schema_by_name
from animalpose.data.records import PoseDataset, PoseRecord
from animalpose.errors import DataError
from animalpose.keypoints import KeypointSchema

NUM_VERTICES = 3299
VERTEX_IDS = {
    "horse": [1718, 1684, 1271, 1634, 1650, 1643, 1659, 925, 392, 564, 993, 726, 1585, 1556, 427, 1548, 967, 877],
    "tiger": [2753, 2679, 2032, 1451, 1287, 3085, 1632, 229, 1441, 1280, 2201, 1662, 266, 158, 270, 152, 219, 129],
}
TRAIN_FRACTION = 0.8
_FOLDER_RE = re.compile(r"^(?P<animal>[a-z]+)_combineds5r5_texture$")
_INDEX_RE = re.compile(r"^(?P<index>\d+)_img\.png$")


def species_folders(path: Path) -> list[tuple[str, Path]]:
    """(animal, folder) pairs under ``path`` (the root, ``synthetic_animal`` or one species folder)."""
    for base in (path, path / "synthetic_animal"):
        match = _FOLDER_RE.match(base.name)
        if match and base.is_dir():
            return [(match["animal"], base)]
        found = [(m["animal"], p) for p in sorted(base.iterdir()) if p.is_dir() and (m := _FOLDER_RE.match(p.name))] \
            if base.is_dir() else []
        if found:
            return found
    raise DataError(str(path), "<folder>", "no <animal>_combineds5r5_texture folder (CC-SSL synthetic_animal layout)")


def read_ccssl(
    path: str | Path,
    schema: str | KeypointSchema | None = None,
    *,
    animals: list[str] | None = None,
) -> PoseDataset:
    """Read CC-SSL synthetic renders of ``animals`` (default: every species folder found)."""
    path = Path(path)
    resolved = schema_by_name(schema or "tigdog")
    records = []
    counts = {}
    for animal, folder in species_folders(path):
        if animals is not None and animal not in animals:
            continue
        if animal not in VERTEX_IDS:
            raise DataError(str(folder), "animal", f"no keypoint vertex list for {animal!r} "
                            f"(known: {sorted(VERTEX_IDS)})")
        ids = np.asarray(VERTEX_IDS[animal])
        if len(ids) != resolved.num_joints:
            raise DataError(str(folder), "schema", f"{len(ids)} keypoints, schema {resolved.name!r} has "
                            f"{resolved.num_joints}")
        items = sorted((int(m["index"]), p) for p in folder.iterdir() if (m := _INDEX_RE.match(p.name)))
        n_train = round(TRAIN_FRACTION * len(items))
        counts[animal] = {"train": n_train, "val": len(items) - n_train}
        for pos, (index, img) in enumerate(items):
            kpt_file = folder / f"{index}_kpts.npy"
            if not kpt_file.is_file():
                raise DataError(str(kpt_file), "kpts", f"missing keypoint file for {img.name}")
            try:
                verts = np.load(kpt_file, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise DataError(str(kpt_file), "kpts", f"cannot read: {exc}") from exc
            if verts.shape != (NUM_VERTICES, 3):
                raise DataError(str(kpt_file), "kpts", f"expected shape ({NUM_VERTICES}, 3), got {verts.shape}")
            width, height = probe_image_size(img)
            pts = verts[ids].astype(np.float32)
            inside = (pts[:, 0] >= 0) & (pts[:, 0] <= width - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= height - 1)
            on = (pts[:, 2] > 0) & inside & np.isfinite(pts[:, :2]).all(axis=1)
            kps = np.zeros((len(ids), 3), dtype=np.float32)
            kps[on, :2] = pts[on, :2]
            kps[on, 2] = 2.0
            records.append(PoseRecord(
                image=str(img), keypoints=kps, schema=resolved.name, image_size=(width, height),
                split="train" if pos < n_train else "val",
                meta={"origin": (str(kpt_file), "kpts"), "animal": animal, "index": index, "synthetic": True},
            ))
    if not records:
        raise DataError(str(path), "<folder>", "no *_img.png renders found")
    return PoseDataset(records, resolved.name, "ccssl", str(path), meta={"frames_per_split": counts})
