"""Raw video as unlabelled frames, and SLEAP .slp labels referencing video frames."""

from __future__ import annotations

import numpy as np
import pytest

from animalpose.data.readers import detect_format, read_dataset, read_sleap, read_video
from animalpose.errors import DataError


def test_tiny_video_every_nth_frame(tmp_path, write_video):
    path = write_video(tmp_path / "v.mp4", frames=10)
    assert detect_format(path) == "video" and detect_format(tmp_path) == "video"
    ds = read_video(path, step=3)
    assert [r.frame_index for r in ds.records] == [0, 3, 6, 9]
    assert ds.videos == {str(path): 10} and ds.schema == "unlabelled"
    assert all(r.keypoints.shape == (0, 3) and r.video_id == "v" and r.image_size == (32, 24) for r in ds.records)
    labelled_shape = read_video(path, "tigdog", verify=True)
    assert len(labelled_shape) == 10 and labelled_shape.records[0].keypoints.shape == (18, 3)
    assert not labelled_shape.records[0].keypoints.any()
    with pytest.raises(DataError, match="step"):
        read_video(path, step=0)


def test_undecodable_video(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"not a video at all" * 10)
    with pytest.raises(DataError) as err:
        read_video(path)
    assert err.value.file == str(path)


def test_real_mouse_video(real):
    path = real / "mirror-mouse" / "videos" / "test_vid.mp4"
    ds = read_dataset(path, step=100)
    assert ds.videos == {str(path): 994} and len(ds) == 10


def test_sleap_clip(real):
    path = real / "sleap-clip"
    assert detect_format(path) == "slp"
    ds = read_sleap(path)
    schema = ds.meta["schema_def"]
    assert ds.schema == "sleap:clip" and schema.num_joints == 13
    assert schema.joints[:3] == ("head", "thorax", "abdomen")
    assert (schema.index("head"), schema.index("eyeL")) in schema.skeleton
    assert (schema.index("wingL"), schema.index("wingR")) in schema.flip_pairs  # from the L/R names
    assert len(ds) == 3000 and len(ds.images) == 1500
    assert ds.videos == {str(path / "clip.mp4"): 1500}
    frames = {}
    for r in ds.records:
        frames.setdefault(r.frame_index, []).append(r)
    assert sorted(frames) == list(range(1500)) and all(len(v) == 2 for v in frames.values())
    assert {r.meta["track"] for r in frames[0]} == {"male", "female"}
    first = frames[0][0]
    assert first.image == str(path / "clip.mp4") and first.video_id == "clip" and first.image_size == (1024, 1024)
    np.testing.assert_allclose(first.keypoints[0], [335.25, 444.75, 2])
    female = next(r for r in frames[0] if r.meta["track"] == "female")
    np.testing.assert_array_equal(female.keypoints[7], [0, 0, 0])  # midlegL4 missing (NaN in SLEAP)
    assert not any(r.meta["predicted"] for r in ds.records)
