"""TigDog ``behaviorDiscovery2.0`` (Del Pero et al.), as prepared by the CC-SSL reference code.

Layout (``ROOT`` is ``behaviorDiscovery2.0`` or a folder holding it):

- ``ROOT/ranges/<animal>/ranges.mat``: key ``ranges``, rows (shot_id, start_frame, end_frame);
- ``ROOT/landmarks/<animal>/<shot_id>.mat``: key ``landmarks``; for frame offset f = frame - start,
  the (K, 2) coordinates are ``landmarks[f][0][0][0][0]`` and the visibilities
  ``landmarks[f][0][0][0][1]``; only the first 18 rows are used;
- ``ROOT/<animal>/%08d.jpg``: the frames, numbered globally (the file number is the frame number).

A frame is kept when its 18 visibilities sum to more than 9 (the reference's rule). Tiger rows are
reordered into the horse order with the 1-based list [1,2,3,4,5,6,7,8,15,16,17,18,13,14,9,10,11,12]
(``TIGER_TO_HORSE``). Frames run from start to end inclusive (bounded by the landmark count).

Split by video (shot): per animal, shots sorted by id, every fifth (sorted position i with
i % 5 == 4) is "val", the rest "train": about one fifth of the videos held out, deterministic.
The reference's published split (horse 8,380 / 1,772 frames, tiger 6,523 / 1,765) came from its
own list of shots, which is not part of the TigDog release; ours is a stated, reproducible rule.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from animalpose.data.readers.common import held_out_every, schema_by_name
from animalpose.data.records import PoseDataset, PoseRecord
from animalpose.errors import DataError, Problem, missing_file_reason
from animalpose.keypoints import KeypointSchema

NUM_JOINTS = 18
MIN_VISIBLE_SUM = 9  # keep a frame when its visibilities sum to more than this
TIGER_TO_HORSE = np.array([1, 2, 3, 4, 5, 6, 7, 8, 15, 16, 17, 18, 13, 14, 9, 10, 11, 12]) - 1


def tigdog_root(path: Path) -> Path:
    for cand in (path, path / "behaviorDiscovery2.0"):
        if (cand / "ranges").is_dir() and (cand / "landmarks").is_dir():
            return cand
    raise DataError(str(path), "<folder>", "not a TigDog behaviorDiscovery2.0 folder (needs ranges/ and landmarks/)")


def _loadmat(path: Path, key: str):
    from scipy.io import loadmat

    if not path.is_file():
        raise DataError(str(path), key, missing_file_reason(path))
    try:
        data = loadmat(str(path))
    except Exception as exc:  # scipy raises ValueError/TypeError/OSError for corrupt files
        raise DataError(str(path), key, f"cannot read MATLAB file: {exc}") from exc
    if key not in data:
        raise DataError(str(path), key, "missing key")
    return data[key]


def _frame_landmarks(landmarks, f: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        cell = landmarks[f][0][0][0]
        coords = np.asarray(cell[0], dtype=np.float32).reshape(-1, 2)
        vis = np.asarray(cell[1], dtype=np.float32).reshape(-1)
    except (IndexError, TypeError, ValueError) as exc:
        raise DataError(where, f"landmarks[{f}]", f"unexpected structure: {exc}") from exc
    if len(coords) < NUM_JOINTS or len(vis) < NUM_JOINTS:
        raise DataError(where, f"landmarks[{f}]", f"{len(coords)} landmarks, need at least {NUM_JOINTS}")
    return coords[:NUM_JOINTS], vis[:NUM_JOINTS]


def read_tigdog(
    path: str | Path,
    schema: str | KeypointSchema | None = None,
    *,
    animals: list[str] | None = None,
) -> PoseDataset:
    """Read TigDog frames of ``animals`` (default: every folder under ``ranges/``) into records."""
    root = tigdog_root(Path(path))
    resolved = schema_by_name(schema or "tigdog")
    if resolved.num_joints != NUM_JOINTS:
        raise DataError(str(root), "schema", f"TigDog has {NUM_JOINTS} joints, schema {resolved.name!r} has "
                        f"{resolved.num_joints}")
    if animals is None:
        animals = sorted(p.name for p in (root / "ranges").iterdir() if p.is_dir())
    records: list[PoseRecord] = []
    problems: list[Problem] = []
    counts = {}
    for animal in animals:
        ranges_file = root / "ranges" / animal / "ranges.mat"
        ranges = np.asarray(_loadmat(ranges_file, "ranges"))
        if ranges.ndim != 2 or ranges.shape[1] < 3:
            raise DataError(str(ranges_file), "ranges", f"expected rows of (shot_id, start, end), got {ranges.shape}")
        shots = sorted({int(r[0]) for r in ranges})
        held = dict(zip(shots, held_out_every(len(shots)), strict=True))
        counts[animal] = {"train": 0, "val": 0}
        for row, (shot, start, end) in enumerate(ranges[:, :3].astype(int)):
            mat = root / "landmarks" / animal / f"{shot}.mat"
            landmarks = _loadmat(mat, "landmarks")
            n = end - start + 1
            if len(landmarks) < n:
                problems.append(Problem(str(mat), "landmarks", f"{len(landmarks)} frames, ranges.mat row {row} "
                                        f"declares {n} ({start}..{end})", severity="warning"))
                n = len(landmarks)
            split = "val" if held[int(shot)] else "train"
            for f in range(n):
                coords, vis = _frame_landmarks(landmarks, f, str(mat))
                if animal == "tiger":
                    coords, vis = coords[TIGER_TO_HORSE], vis[TIGER_TO_HORSE]
                if vis.sum() <= MIN_VISIBLE_SUM:
                    continue
                kps = np.zeros((NUM_JOINTS, 3), dtype=np.float32)
                on = vis > 0
                kps[on, :2] = coords[on]
                kps[on, 2] = 2.0
                frame = start + f
                records.append(PoseRecord(
                    image=str(root / animal / f"{frame:08d}.jpg"), keypoints=kps, schema=resolved.name,
                    video_id=f"{animal}/{shot}", frame_index=f, split=split,
                    meta={"origin": (str(mat), f"landmarks[{f}]"), "animal": animal, "frame": int(frame)},
                ))
                counts[animal][split] += 1
    return PoseDataset(records, resolved.name, "tigdog", str(root), problems=problems,
                       meta={"animals": animals, "frames_per_split": counts, "image_root": str(root)})
