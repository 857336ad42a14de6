"""SLEAP reader on a tiny .slp written with sleap-io: user instances win over predictions."""

from __future__ import annotations

import numpy as np
import pytest

from animalpose.data.readers import read_sleap
from animalpose.errors import DataError

sio = pytest.importorskip("sleap_io")


def test_user_instances_preferred_over_predicted(tmp_path, write_video):
    video_path = write_video(tmp_path / "flies.mp4", frames=4)
    skeleton = sio.Skeleton(["head", "tail"], edges=[("head", "tail")])
    video = sio.Video.from_filename(str(video_path))
    t1, t2 = sio.Track("a"), sio.Track("b")
    pred_a = sio.PredictedInstance.from_numpy(np.array([[1.0, 1.0], [2.0, 2.0]]), skeleton, score=0.5, track=t1)
    user_a = sio.Instance.from_numpy(np.array([[3.0, 4.0], [np.nan, np.nan]]), skeleton, track=t1,
                                     from_predicted=pred_a)
    pred_b = sio.PredictedInstance.from_numpy(np.array([[5.0, 6.0], [7.0, 8.0]]), skeleton, score=0.9, track=t2)
    frames = [
        sio.LabeledFrame(video=video, frame_idx=2, instances=[pred_a, user_a, pred_b]),
        sio.LabeledFrame(video=video, frame_idx=3, instances=[
            sio.PredictedInstance.from_numpy(np.array([[9.0, 9.0], [10.0, 10.0]]), skeleton, score=0.7, track=t1)]),
    ]
    labels = sio.Labels(labeled_frames=frames, videos=[video], skeletons=[skeleton], tracks=[t1, t2])
    sio.save_slp(labels, str(tmp_path / "labels.slp"), verbose=False)

    ds = read_sleap(tmp_path / "labels.slp")
    assert ds.meta["schema_def"].joints == ("head", "tail") and ds.meta["schema_def"].skeleton == ((0, 1),)
    assert ds.videos == {str(video_path): 4}
    got = [(r.frame_index, r.meta["track"], r.meta["predicted"]) for r in ds.records]
    # frame 2: the user instance of track a replaces its prediction; b has only a prediction
    assert got == [(2, "a", False), (2, "b", True), (3, "a", True)]
    np.testing.assert_array_equal(ds.records[0].keypoints, [[3, 4, 2], [0, 0, 0]])
    assert ds.records[1].meta["score"] == pytest.approx(0.9)
    assert [r.instance_id for r in ds.records] == [0, 1, 0]
    assert all(r.image == str(video_path) and r.video_id == "flies" for r in ds.records)

    with pytest.raises(DataError, match="schema 'coco' has 17"):
        read_sleap(tmp_path / "labels.slp", "coco")


def test_corrupt_slp(tmp_path):
    bad = tmp_path / "bad.slp"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="cannot read SLEAP file") as err:
        read_sleap(bad)
    assert err.value.file == str(bad)
