"""TigDog behaviorDiscovery2.0 reader on tiny .mat files written in exactly the release layout."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from animalpose.data.readers import detect_format, read_dataset, read_tigdog
from animalpose.data.validate import validate_dataset
from animalpose.errors import DataError
from animalpose.keypoints import load_schema

SCHEMA = load_schema("tigdog")


def _landmarks(frames: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """A MATLAB cell array (N, 1) of 1x1 structs with fields (coords, visibility), as in the release."""
    cells = np.empty((len(frames), 1), dtype=object)
    for f, (coords, vis) in enumerate(frames):
        s = np.zeros((1, 1), dtype=[("coords", "O"), ("visibility", "O")])
        s[0, 0]["coords"] = coords
        s[0, 0]["visibility"] = vis.reshape(-1, 1)
        cells[f, 0] = s
    return cells


def _frame(shift: float, visible: int, k: int = 19) -> tuple[np.ndarray, np.ndarray]:
    coords = np.stack([np.arange(k) * 10.0 + shift, np.arange(k) + 100.0 + shift], axis=1)
    vis = np.zeros(k)
    vis[:visible] = 1
    return coords, vis


def build_tigdog(root: Path, animal: str, shots: dict[int, tuple[int, list]]) -> Path:
    """shots: shot_id -> (start_frame, [(coords, vis) per frame]); returns behaviorDiscovery2.0."""
    base = root / "behaviorDiscovery2.0"
    (base / "ranges" / animal).mkdir(parents=True, exist_ok=True)
    (base / "landmarks" / animal).mkdir(parents=True, exist_ok=True)
    rows = []
    for shot, (start, frames) in shots.items():
        rows.append([shot, start, start + len(frames) - 1])
        scipy.io.savemat(base / "landmarks" / animal / f"{shot}.mat", {"landmarks": _landmarks(frames)})
    scipy.io.savemat(base / "ranges" / animal / "ranges.mat", {"ranges": np.array(rows, dtype=np.float64)})
    return base


def test_frames_kept_by_visibility_sum_and_image_names(tmp_path):
    # shot 3: frame offsets 0..2 with 18 / 9 / 10 visible joints in the first 18 rows (row 18 ignored)
    build_tigdog(tmp_path, "horse", {3: (101, [_frame(0, 19), _frame(1, 9), _frame(2, 10)])})
    assert detect_format(tmp_path) == "tigdog"
    ds = read_tigdog(tmp_path)
    assert ds.schema == "tigdog" and ds.format == "tigdog"
    # visibility sum 9 is not > 9: dropped; 10 kept
    assert [r.frame_index for r in ds.records] == [0, 2]
    rec = ds.records[1]
    assert rec.image == str(tmp_path / "behaviorDiscovery2.0" / "horse" / "00000103.jpg")
    assert rec.video_id == "horse/3" and rec.meta["frame"] == 103
    assert rec.keypoints.shape == (18, 3)
    np.testing.assert_array_equal(rec.keypoints[:10, 2], 2)
    np.testing.assert_array_equal(rec.keypoints[10:], 0)  # invisible joints carry no coordinates
    np.testing.assert_allclose(rec.keypoints[4, :2], [42.0, 106.0])  # row 4: (4*10 + 2, 4 + 100 + 2)


def test_tiger_rows_are_reordered_into_horse_order(tmp_path):
    build_tigdog(tmp_path, "tiger", {1: (1, [_frame(0, 19)])})
    rec = read_tigdog(tmp_path).records[0]
    order = [1, 2, 3, 4, 5, 6, 7, 8, 15, 16, 17, 18, 13, 14, 9, 10, 11, 12]
    # output joint k holds tiger row order[k] - 1, whose x is 10 * (order[k] - 1)
    np.testing.assert_allclose(rec.keypoints[:, 0], [10.0 * (o - 1) for o in order])
    assert rec.keypoints[8, 0] == 140.0  # L_F_Knee <- tiger row 15 (1-based)


def test_split_by_video_holds_out_every_fifth_shot(tmp_path):
    shots = {s: (100 * s, [_frame(0, 18), _frame(1, 18)]) for s in (12, 3, 7, 40, 25, 8, 9, 30, 1, 2)}
    build_tigdog(tmp_path, "horse", shots)
    ds = read_tigdog(tmp_path)
    # shots sorted: 1 2 3 7 8 9 12 25 30 40 -> positions 4 and 9 (shots 8 and 40) held out
    val_videos = sorted({r.video_id for r in ds.records if r.split == "val"})
    assert val_videos == ["horse/40", "horse/8"]
    assert ds.meta["frames_per_split"]["horse"] == {"train": 16, "val": 4}
    assert len(read_dataset(tmp_path, split="val")) == 4
    # every frame of a video lands in one split
    by_video = {}
    for r in ds.records:
        by_video.setdefault(r.video_id, set()).add(r.split)
    assert all(len(s) == 1 for s in by_video.values())


def test_missing_key_and_short_landmarks(tmp_path):
    base = build_tigdog(tmp_path, "horse", {3: (1, [_frame(0, 18)])})
    scipy.io.savemat(base / "ranges" / "horse" / "ranges.mat", {"other": np.zeros((1, 3))})
    with pytest.raises(DataError) as err:
        read_tigdog(tmp_path)
    assert err.value.field == "ranges" and err.value.file.endswith("ranges.mat")
    # ranges declares 3 frames, the landmark file holds 1: a warning, the frame present is read
    scipy.io.savemat(base / "ranges" / "horse" / "ranges.mat", {"ranges": np.array([[3.0, 1.0, 3.0]])})
    ds = read_tigdog(tmp_path)
    assert len(ds) == 1 and ds.problems[0].severity == "warning" and "declares 3" in ds.problems[0].message


def test_frames_through_a_link_leading_out_of_the_root_are_refused(tmp_path):
    """Containment (issue 26): the frames must stay under the TigDog root unless data.allow_outside_root."""
    base = build_tigdog(tmp_path / "td", "horse", {3: (1, [_frame(0, 19)])})
    real = tmp_path / "elsewhere" / "horse"
    real.mkdir(parents=True)
    cv2.imwrite(str(real / "00000001.jpg"), np.full((300, 400, 3), 90, np.uint8))
    (base / "horse").symlink_to(real, target_is_directory=True)
    ds = read_dataset(base, "tigdog")
    assert ds.meta["image_root"] == str(base)
    mat = str(base / "landmarks" / "horse" / "3.mat")
    with pytest.raises(DataError, match=r"00000001\.jpg resolves to .*elsewhere/horse/00000001\.jpg") as info:
        validate_dataset(ds, SCHEMA)
    assert info.value.file == mat and info.value.field == "landmarks[0].image"
    assert len(validate_dataset(ds, SCHEMA, allow_outside_root=True).records) == 1
