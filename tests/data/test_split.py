"""The DeepLabCut project reader and the seeded train/val/test split, on a project made of the real
mirror-mouse labels (tests/conftest.py: make_dlc_project)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from animalpose.data.readers import detect_format, read_dataset
from animalpose.data.split import images_outside, session_of, split_records, write_split
from animalpose.errors import DataError


@pytest.fixture(scope="module")
def project(tmp_path_factory, dlc_project) -> Path:
    return dlc_project(tmp_path_factory.mktemp("dlc") / "mirror-rick-2026-12-05", sessions=6)


def test_a_dlc_project_is_read_whole_with_the_config_schema(project):
    assert detect_format(project) == "dlc"
    ds = read_dataset(project)
    assert len(ds.records) == 90 and ds.schema == "dlc:mirror"
    schema = ds.meta["schema_def"]
    assert schema.num_joints == 17 and schema.joints[0] == "paw1LH_top"
    assert schema.skeleton == ((schema.index("nose_top"), schema.index("tailBase_top")),)
    assert [session_of(r) for r in ds.records[::15]] == [f"session{s}" for s in range(6)]
    assert list(ds.videos) == [str(project / "videos" / "test_vid.mp4")] and ds.meta["missing_videos"] == []
    # the labels are those of the original file, frame for frame
    csv = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "mirror-mouse" / "CollectedData.csv"
    original = {Path(r.image).name: r.keypoints for r in read_dataset(csv).records}
    assert all((r.keypoints == original[Path(r.image).name]).all() for r in ds.records)


def test_a_label_file_with_other_body_parts_is_named(tmp_path, dlc_project):
    root = dlc_project(tmp_path / "p", sessions=2, frames=10)
    bad = root / "labeled-data" / "session1" / "CollectedData_rick.csv"
    bad.write_text(bad.read_text().replace("nose_top", "snout_top"))
    with pytest.raises(DataError, match=r"session1/CollectedData_rick.csv: header.bodyparts"):
        read_dataset(root)


def test_split_by_video_keeps_each_video_whole_and_is_seeded(project):
    records = read_dataset(project).records
    a = split_records(records, 0.2, 0.2, by="video", seed=3)
    videos = {k: {session_of(r) for r in v} for k, v in a.items()}
    assert all(videos[x].isdisjoint(videos[y]) for x, y in (("train", "val"), ("train", "test"), ("val", "test")))
    # 6 sessions of 15 frames; 20 % of 90 = 18 frames -> 2 whole sessions each for test and val
    assert [len(a[k]) for k in ("train", "val", "test")] == [30, 30, 30]
    assert sum(len(v) for v in a.values()) == len(records)
    # the same seed gives the same split whatever the input order; another seed another one
    b = split_records(records[::-1], 0.2, 0.2, by="video", seed=3)
    assert {k: {r.image for r in v} for k, v in a.items()} == {k: {r.image for r in v} for k, v in b.items()}
    c = split_records(records, 0.2, 0.2, by="video", seed=4)
    assert {k: {r.image for r in v} for k, v in a.items()} != {k: {r.image for r in v} for k, v in c.items()}


def test_split_by_frame_and_its_errors(project):
    records = read_dataset(project).records
    s = split_records(records, 0.1, 0.3, by="frame", seed=0)
    assert [len(s[k]) for k in ("train", "val", "test")] == [54, 9, 27]
    with pytest.raises(DataError, match=r"1 video.*--by frame"):
        split_records(records[:15], 0.1, 0.1, by="video")
    with pytest.raises(DataError, match="fractions"):
        split_records(records, 0.5, 0.5)


def test_written_split_reads_back_and_moves_with_its_folder(project, tmp_path):
    ds = read_dataset(project)
    splits = split_records(ds.records, 0.2, 0.2, seed=1)
    paths = write_split(splits, ds.meta["schema_def"], tmp_path / "proj" / "splits", manifest={"seed": 1})
    manifest = json.loads(paths["manifest"].read_text())
    assert manifest["seed"] == 1 and manifest["splits"]["val"]["frames"] == 30
    doc = json.loads(paths["train"].read_text())
    assert all(not Path(im["file_name"]).is_absolute() for im in doc["images"])
    back = read_dataset(paths["test"])
    assert back.schema == "dlc:mirror" and len(back.records) == 30
    truth = {Path(r.image).resolve(): r.keypoints for r in ds.records}
    for r in back.records:
        assert Path(r.image).is_file() and r.bbox == (0.0, 0.0, 396.0, 406.0)
        got, want = r.keypoints, truth[Path(r.image).resolve()]
        assert ((got[:, 2] > 0) == (want[:, 2] > 0)).all()
        assert abs(got[want[:, 2] > 0, :2] - want[want[:, 2] > 0, :2]).max() < 1e-3


def test_split_files_outside_the_images_need_the_opt_in_and_say_so(project, tmp_path):
    """Split files written away from the project's images address them with ../ (the containment rule
    refuses those unless allow_outside_root); ``images_outside`` says which case a folder is."""
    from animalpose.data.validate import validate_dataset

    ds = read_dataset(project)
    splits = split_records(ds.records, 0.2, 0.2, seed=1)
    away = tmp_path / "elsewhere"
    paths = write_split(splits, ds.meta["schema_def"], away)
    assert images_outside(splits, away)
    # the fixture's images are links to the real data: resolved like the containment rule, they lie outside
    # the project too; a plain file under the folder does not
    one = replace(ds.records[0], image=str(tmp_path / "data" / "labeled" / "a.png"))
    assert not images_outside({"train": [one]}, tmp_path / "data") and images_outside({"train": [one]}, away)
    test_set = read_dataset(paths["test"])
    assert all(im["file_name"].startswith("../") for im in json.loads(paths["test"].read_text())["images"])
    with pytest.raises(DataError, match="outside the dataset's image root"):
        validate_dataset(test_set, None)
    assert len(validate_dataset(test_set, None, allow_outside_root=True).records) == 30


def test_frames_with_several_animals_are_cropped_per_animal(tmp_path):
    """``write_split`` crops whole frames only when each frame holds one animal; two animals in a frame keep
    the box around each one's keypoints (and both stay in one split)."""
    import numpy as np

    from animalpose.data.records import PoseRecord
    from animalpose.data.split import one_per_frame
    from animalpose.keypoints import schema_from_names

    schema = schema_from_names("t", ["a", "b"])

    def rec(frame, x):
        kp = np.array([[x, 10, 2], [x + 20, 30, 2]], np.float32)
        return PoseRecord(str(tmp_path / "v.mp4"), kp, "t", image_size=(200, 100), video_id="v", frame_index=frame)

    pairs = [rec(f, x) for f in range(6) for x in (10.0, 100.0)]
    assert not one_per_frame(pairs) and one_per_frame(pairs[::2])
    splits = split_records(pairs, 0.2, 0.2, by="frame")
    assert all(len({r.frame_index for r in v}) * 2 == len(v) for v in splits.values())  # both animals together
    paths = write_split(splits, schema, tmp_path / "s")
    boxes = {tuple(a["bbox"]) for a in json.loads(paths["train"].read_text())["annotations"]}
    assert boxes == {(10, 10, 20, 20), (100, 10, 20, 20)}
    single = write_split(split_records(pairs[::2], 0.2, 0.2, by="frame"), schema, tmp_path / "one")
    assert {tuple(a["bbox"]) for a in json.loads(single["val"].read_text())["annotations"]} == {(0, 0, 200, 100)}


def test_a_project_with_h5_labels_only(tmp_path, dlc_project):
    """DLC keeps CollectedData_<scorer>.h5 beside (or instead of) the CSV: a project of .h5 files reads to the
    same records as its CSVs."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    project = dlc_project(tmp_path / "p", sessions=2, frames=20)
    from_csv = read_dataset(project)
    for csv in sorted(project.glob("labeled-data/*/CollectedData_*.csv")):
        pd.read_csv(csv, header=[0, 1, 2], index_col=0).to_hdf(csv.with_suffix(".h5"), key="df_with_missing")
        csv.unlink()
    from_h5 = read_dataset(project)
    assert from_h5.meta["label_files"][0].endswith(".h5") and len(from_h5.records) == len(from_csv.records) == 20
    for a, b in zip(from_h5.records, from_csv.records, strict=True):
        assert a.image == b.image and session_of(a) == session_of(b)
        assert ((a.keypoints - b.keypoints) ** 2).max() < 1e-8
