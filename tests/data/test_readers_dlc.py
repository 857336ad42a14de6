"""DeepLabCut CollectedData.csv reader: the mirror-mouse fixture, multi-animal files, bad CSV."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from animalpose.data.readers import detect_format, read_dataset, read_dlc
from animalpose.errors import DataError


def test_mirror_mouse(real):
    path = real / "mirror-mouse"
    assert detect_format(path) == "dlc"
    ds = read_dataset(path)
    assert ds.format == "dlc" and ds.schema == "dlc:mirror-mouse"
    schema = ds.meta["schema_def"]
    assert schema.num_joints == 17
    assert schema.joints[:3] == ("paw1LH_top", "paw2LF_top", "paw3RF_top") and schema.joints[-1] == "obsLow_bot"
    assert len(ds) == 90 and len(ds.images) == 90
    assert all(r.image.endswith(f"img{i:02d}.png") for i, r in enumerate(ds.records, start=1))
    assert ds.videos == {str(path / "videos" / "test_vid.mp4"): 994}
    first = ds.records[0]
    np.testing.assert_allclose(first.keypoints[0], [77.25, 36.25, 2])
    np.testing.assert_array_equal(first.keypoints[4], [0, 0, 0])  # tailBase_top empty in img01
    # labelled counts per joint equal the non-empty x cells of the file
    with (path / "CollectedData.csv").open() as fh:
        rows = list(csv.reader(fh))[3:]
    expected = [sum(1 for row in rows if row[1 + 2 * k].strip()) for k in range(17)]
    got = np.sum([r.keypoints[:, 2] > 0 for r in ds.records], axis=0)
    np.testing.assert_array_equal(got, expected)


MULTI = """scorer,,,me,me,me,me,me,me,me,me
individuals,,,mouse1,mouse1,mouse2,mouse2,single,single,mouse1,mouse1
bodyparts,,,nose,nose,nose,nose,led,led,tail,tail
coords,,,x,y,x,y,x,y,x,y
labeled-data,vid1,img0.png,1,2,3,4,5,6,7,8
labeled-data,vid1,img1.png,1,2,,,5,6,,
"""


def test_multi_animal_three_index_columns(tmp_path):
    path = tmp_path / "proj" / "CollectedData_me.csv"
    path.parent.mkdir()
    path.write_text(MULTI)
    ds = read_dlc(path)
    assert ds.meta["schema_def"].joints == ("nose", "tail")
    assert ds.meta["individuals"] == ["mouse1", "mouse2"] and ds.meta["unique_bodyparts_skipped"] == 1
    # img0: mouse1 and mouse2; img1: only mouse1 has labels
    assert [(r.image.split("/")[-1], r.instance_id) for r in ds.records] == [
        ("img0.png", 0), ("img0.png", 1), ("img1.png", 0)]
    np.testing.assert_array_equal(ds.records[0].keypoints, [[1, 2, 2], [7, 8, 2]])
    np.testing.assert_array_equal(ds.records[1].keypoints, [[3, 4, 2], [0, 0, 0]])  # mouse2 has no tail
    assert ds.records[0].image == str(path.parent / "labeled-data" / "vid1" / "img0.png")


def test_malformed_csv(tmp_path):
    path = tmp_path / "CollectedData.csv"
    path.write_text("scorer,a,a\nbodyparts,nose,nose\ncoords,x,y\nimg.png,1,2,3\n")
    with pytest.raises(DataError) as err:
        read_dlc(path)
    assert (err.value.file, err.value.field) == (str(path), "row 4")
    path.write_text("scorer,a,a\ncoords,x,y\nimg.png,1,2\n")
    with pytest.raises(DataError) as err:
        read_dlc(path)
    assert err.value.field == "header.bodyparts"
    path.write_text("scorer,a,a\nbodyparts,nose,nose\ncoords,x,y\nimg.png,1,abc\n")
    with pytest.raises(DataError, match="not a number") as err:
        read_dlc(path)
    assert err.value.field == "row 4.nose"


def _same_records(a, b):
    assert len(a.records) == len(b.records)
    for x, y in zip(a.records, b.records, strict=True):
        assert (x.image, x.instance_id) == (y.image, y.instance_id)
        np.testing.assert_allclose(x.keypoints, y.keypoints)


def test_h5_labels_read_as_their_csv_export(tmp_path, real):
    """DLC also saves its labels as a pandas HDF store (CollectedData_<scorer>.h5, key df_with_missing):
    the same frame written as .h5 reads to exactly the CSV's records, single- and multi-animal."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    # single animal, one index column: the real mirror-mouse labels
    frame = pd.read_csv(real / "mirror-mouse" / "CollectedData.csv", header=[0, 1, 2], index_col=0)
    csv_path = real / "mirror-mouse" / "CollectedData.csv"
    proj = tmp_path / "mouse"
    proj.mkdir()
    (proj / "labeled-data").symlink_to(real / "mirror-mouse" / "labeled-data")
    frame.to_hdf(proj / "CollectedData_me.h5", key="df_with_missing", mode="w")
    assert detect_format(proj) == "dlc" and detect_format(proj / "CollectedData_me.h5") == "dlc"
    from_h5, from_csv = read_dataset(proj), read_dataset(csv_path)
    assert from_h5.meta["schema_def"].joints == from_csv.meta["schema_def"].joints
    assert [r.image.split("/")[-1] for r in from_h5.records] == [r.image.split("/")[-1] for r in from_csv.records]
    for x, y in zip(from_h5.records, from_csv.records, strict=True):
        np.testing.assert_allclose(x.keypoints, y.keypoints)
    # multi-animal, three index columns
    path = tmp_path / "proj" / "CollectedData_me.csv"
    path.parent.mkdir()
    path.write_text(MULTI)
    multi = pd.read_csv(path, header=[0, 1, 2, 3], index_col=[0, 1, 2])
    multi.to_hdf(path.with_suffix(".h5"), key="df_with_missing", mode="w")
    _same_records(read_dlc(path.with_suffix(".h5")), read_dlc(path))


def test_a_broken_h5_is_named(tmp_path):
    path = tmp_path / "CollectedData_me.h5"
    path.write_bytes(b"\x89HDF not really")
    with pytest.raises(DataError, match="not a DeepLabCut HDF5 label file") as err:
        read_dlc(path)
    assert err.value.file == str(path)
