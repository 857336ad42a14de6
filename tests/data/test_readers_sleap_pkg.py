"""SLEAP labels packages (``.pkg.slp``, frames embedded in the file) through the SLEAP reader.

No ``.pkg.slp`` is among the real data (../shared/data/real holds ``clip.slp``, whose frames live in
``clip.mp4``), so the packages here are written by the test: with h5py in SLEAP's layout (format 1.2:
variable-length PNG rows encoded by OpenCV, no channel order attribute; and format 1.4 with
``channel_order: RGB``), and with sleap-io's own exporter from three frames of the real clip."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from animalpose.data.images import read_image
from animalpose.data.readers import read_dataset
from animalpose.data.readers.sleap import read_sleap
from animalpose.errors import DataError

CLIP = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real" / "sleap-clip"
NODES = ["head", "thorax", "tail"]
W, H = 48, 40


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    """Extracted frames go to a private data home."""
    monkeypatch.setenv("ANIMALPOSE_HOME", str(tmp_path / "home"))


def _frame(k: int) -> np.ndarray:
    """(H, W, 3) RGB frame whose three channels differ (a swapped channel order shows)."""
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 200, 90 + 10 * k, 20
    img[5:10, 3 * k:3 * k + 6] = (10, 250, 130)
    return img


def _points(frame: int) -> np.ndarray:
    """(3, 2) labelled node positions of a frame (tail missing in frame 7)."""
    xy = np.array([[10.0 + frame, 12.0], [20.0, 15.0 + frame], [30.5, 22.25]])
    if frame == 7:
        xy[2] = np.nan
    return xy


def write_pkg(path: Path, frames: list[int], *, channel_order: str | None = None, corrupt_row: int | None = None):
    """A SLEAP labels package by hand: one video embedded as ``video0/video`` (PNG rows), one user instance per
    frame. ``channel_order`` None: SLEAP's format 1.2 (the array encoded by OpenCV, no attribute); "RGB":
    format 1.4 with true RGB images."""
    meta = {"version": "1.2.7", "nodes": [{"name": n, "weight": 1.0} for n in NODES],
            "skeletons": [{"directed": True, "graph": {"name": "fly", "num_edges_inserted": 2}, "multigraph": True,
                           "nodes": [{"id": i} for i in range(3)],
                           "links": [{"edge_insert_idx": e, "key": 0, "source": a, "target": b,
                                      "type": {"py/reduce": [{"py/type": "sleap.skeleton.EdgeType"},
                                                             {"py/tuple": [1]}]}}
                                     for e, (a, b) in enumerate([(0, 1), (1, 2)])]}],
            "videos": [], "tracks": [], "suggestions": [], "negative_anchors": {}, "provenance": {}}
    video = {"backend": {"filename": ".", "dataset": "video0/video", "input_format": "channels_last",
                         "convert_range": False}}
    source = {"backend": {"filename": "session1.mp4", "grayscale": False, "bgr": True, "dataset": "",
                          "input_format": ""}}
    frame_rows = [(i, 0, f, i, i + 1) for i, f in enumerate(frames)]
    inst_rows = [(i, 0, i, 0, -1, -1, np.nan, 3 * i, 3 * i + 3, 0.0) for i in range(len(frames))]
    pts = [(x, y, bool(np.isfinite(x)), True) for f in frames for x, y in _points(f)]
    with h5py.File(path, "w") as f:
        f.create_group("metadata")
        f["metadata"].attrs["format_id"] = 1.4 if channel_order else 1.2
        f["metadata"].attrs["json"] = np.bytes_(json.dumps(meta))
        f.create_dataset("videos_json", data=[np.bytes_(json.dumps(video))], maxshape=(None,))
        f.create_dataset("tracks_json", data=np.array([], dtype="S1"), maxshape=(None,))
        f.create_dataset("suggestions_json", data=np.array([], dtype="S1"), maxshape=(None,))
        f.create_dataset("frames", data=np.array(frame_rows, dtype=[
            ("frame_id", "<u8"), ("video", "<u4"), ("frame_idx", "<u8"), ("instance_id_start", "<u8"),
            ("instance_id_end", "<u8")]))
        f.create_dataset("instances", data=np.array(inst_rows, dtype=[
            ("instance_id", "<i8"), ("instance_type", "u1"), ("frame_id", "<u8"), ("skeleton", "<u4"),
            ("track", "<i4"), ("from_predicted", "<i8"), ("score", "<f4"), ("point_id_start", "<u8"),
            ("point_id_end", "<u8"), ("tracking_score", "<f4")]))  # tracking_score: format 1.2 on
        f.create_dataset("points", data=np.array(pts, dtype=[("x", "<f8"), ("y", "<f8"), ("visible", "?"),
                                                              ("complete", "?")]))
        f.create_dataset("pred_points", data=np.zeros(0, dtype=[("x", "<f8"), ("y", "<f8"), ("visible", "?"),
                                                                ("complete", "?"), ("score", "<f8")]))
        ds = f.create_dataset("video0/video", shape=(len(frames),), dtype=h5py.vlen_dtype(np.dtype("int8")))
        for row, frame in enumerate(frames):
            rgb = _frame(frame)
            # OpenCV's encoder takes the array as BGR: SLEAP passed the RGB array itself (channel order
            # "BGR" in sleap-io's terms); a true RGB image is the array reversed
            _, buf = cv2.imencode(".png", rgb if channel_order is None else rgb[..., ::-1])
            data = buf.reshape(-1).view(np.int8)
            ds[row] = data[:20] if row == corrupt_row else data
        ds.attrs["format"] = "png"
        ds.attrs.update({"frames": len(frames), "height": H, "width": W, "channels": 3})
        if channel_order:
            ds.attrs["channel_order"] = channel_order
        f.create_dataset("video0/frame_numbers", data=np.array(frames, dtype=np.int64))
        f.create_group("video0/source_video").attrs["json"] = json.dumps(source)
    return path


@pytest.mark.parametrize("channel_order", [None, "RGB"])
def test_a_package_is_read_with_its_embedded_frames(tmp_path, channel_order):
    pkg = write_pkg(tmp_path / "labels.v001.pkg.slp", [3, 7, 12], channel_order=channel_order)
    assert read_dataset(pkg, "auto").format == "slp"
    ds = read_sleap(pkg)
    assert ds.meta["schema_def"].joints == tuple(NODES) and ds.meta["schema_def"].name == "sleap:labels.v001"
    assert [(r.video_id, r.frame_index) for r in ds.records] == [("session1", 3), ("session1", 7), ("session1", 12)]
    for r in ds.records:
        assert r.image_size == (W, H) and r.meta["embedded"] == "video0/video" and Path(r.image).suffix == ".png"
        assert np.array_equal(read_image(r.image), _frame(r.frame_index))  # the frame as it was, RGB
        expected = _points(r.frame_index)
        ok = np.isfinite(expected).all(1)
        assert np.allclose(r.keypoints[ok, :2], expected[ok]) and (r.keypoints[:, 2] == np.where(ok, 2, 0)).all()
    # the frames are extracted once: a second read reuses the files
    stamps = [Path(r.image).stat().st_mtime_ns for r in ds.records]
    again = read_sleap(pkg)
    assert [r.image for r in again.records] == [r.image for r in ds.records]
    assert [Path(r.image).stat().st_mtime_ns for r in again.records] == stamps


def test_an_undecodable_embedded_frame_is_named(tmp_path):
    pkg = write_pkg(tmp_path / "bad.pkg.slp", [0, 1], corrupt_row=1)
    with pytest.raises(DataError, match=r"bad\.pkg\.slp: video0/video\[1\]: embedded image of frame 1 does not decode"):
        read_sleap(pkg)


@pytest.mark.skipif(not (CLIP / "clip.slp").is_file(), reason="the real SLEAP clip is not here")
def test_a_package_exported_by_sleap_io_from_the_real_clip(tmp_path):
    import sleap_io

    labels = sleap_io.load_slp(str(CLIP / "clip.slp"))
    small = sleap_io.Labels(labeled_frames=labels.labeled_frames[:3], videos=labels.videos,
                            skeletons=labels.skeletons, tracks=labels.tracks)
    small.save(str(tmp_path / "clip3.pkg.slp"), embed="user")
    pkg, ref = read_sleap(tmp_path / "clip3.pkg.slp"), read_sleap(CLIP / "clip.slp")
    assert len(pkg.records) == 6 and pkg.meta["schema_def"].joints == ref.meta["schema_def"].joints
    for a, b in zip(pkg.records, ref.records[:6], strict=True):
        assert (a.video_id, a.frame_index, a.instance_id) == (b.video_id, b.frame_index, b.instance_id) == \
            ("clip", b.frame_index, b.instance_id)
        assert np.array_equal(a.keypoints, b.keypoints) and a.image_size == (1024, 1024)
    # the embedded frame is the video's frame (both decoded from the same MP4 by OpenCV)
    assert np.array_equal(read_image(pkg.records[0].image), read_image(str(CLIP / "clip.mp4"), 0))
