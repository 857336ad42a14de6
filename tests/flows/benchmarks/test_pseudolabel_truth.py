"""Pseudo-labels against the unlabelled frames' own labels, on a hand-made round (values computed by hand)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from animalpose.data.records import PoseRecord
from animalpose.errors import DataError
from flows.benchmarks.pseudolabel_truth import round_truth_errors


def _truth() -> list[PoseRecord]:
    def rec(frame, kps):
        return PoseRecord(image="f.png", keypoints=np.array(kps, np.float32), schema="s", frame_index=frame)

    return [rec(10, [[0, 0, 2], [10, 0, 2]]), rec(11, [[0, 0, 2], [0, 0, 0]])]


def _round(run, r, annotations, frames=(10, 11)):
    folder = run / f"round_{r}"
    folder.mkdir(parents=True)
    doc = {"images": [{"id": n + 1, "frame_index": f} for n, f in enumerate(frames)], "annotations": annotations}
    (folder / "pseudo_labels.json").write_text(json.dumps(doc))


def test_kept_and_all_errors_per_round(tmp_path):
    # record 0: joint 0 kept 5 px off (3-4-5), joint 1 rejected 1 px off; record 1: joint 0 kept 6 px off, joint 1
    # has no truth (left out whatever its pseudo-label)
    _round(tmp_path, 0, [{"image_id": 1, "record": 0, "keypoints": [3, 4, 2, 10, 1, 0]},
                         {"image_id": 2, "record": 1, "keypoints": [0, 6, 2, 5, 5, 2]}])
    _round(tmp_path, 1, [{"image_id": 1, "record": 0, "keypoints": [0, 0, 0, 10, 0, 0]}])
    rows = round_truth_errors(tmp_path, _truth())
    assert len(rows) == 2
    first = rows[0]
    assert (first["round"], first["joints"], first["kept"]) == (0, 3, 2)
    assert first["kept_share"] == pytest.approx(2 / 3)
    assert (first["kept_mean_px"], first["kept_median_px"], first["kept_within_5px"]) == pytest.approx((5.5, 5.5, 0.5))
    assert (first["all_mean_px"], first["all_median_px"]) == pytest.approx((4.0, 5.0))
    # nothing kept: the kept figures are NaN, the all-joint ones exact (both joints on their truth)
    assert rows[1]["kept"] == 0 and np.isnan(rows[1]["kept_mean_px"]) and rows[1]["all_mean_px"] == 0.0
    assert round_truth_errors(tmp_path / "nothing", _truth()) == []


def test_a_round_of_another_target_is_refused(tmp_path):
    _round(tmp_path, 0, [{"image_id": 2, "record": 1, "keypoints": [0, 0, 2, 0, 0, 2]}], frames=(10, 12))
    with pytest.raises(DataError, match=r"pseudo_labels.json: annotations\[0\].record"):
        round_truth_errors(tmp_path, _truth())
