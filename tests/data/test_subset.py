"""Image-name-range subsets (the mirror-mouse train/test split) and their COCO round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from animalpose.data.readers import read_dataset
from animalpose.data.subset import records_in_range, stem_number, write_subset
from animalpose.errors import DataError


def test_stem_number():
    assert stem_number("a/labeled-data/img07.png") == ("img", 7)
    assert stem_number("frame_000120.png") == ("frame_", 120)
    with pytest.raises(DataError, match="does not end in a number"):
        stem_number("x/img.png", "where.csv")


def test_mirror_mouse_split_is_60_and_30_disjoint(real):
    ds = read_dataset(real / "mirror-mouse", schema="mirror_mouse")
    train = records_in_range(ds.records, "img01", "img60")
    test = records_in_range(ds.records, "img61", "img90")
    assert [Path(r.image).stem for r in train] == [f"img{i:02d}" for i in range(1, 61)]
    assert [Path(r.image).stem for r in test] == [f"img{i:02d}" for i in range(61, 91)]
    with pytest.raises(DataError, match="bad image range") as err:
        records_in_range(ds.records, "img60", "img01", "the.csv")
    assert err.value.file == "the.csv"
    with pytest.raises(DataError, match="bad image range"):
        records_in_range(ds.records, "img01", "frame60")
    with pytest.raises(DataError, match="no image"):
        records_in_range(ds.records, "img91", "img99")


def test_write_subset_round_trip_keeps_labels_and_whole_frame_box(real, tmp_path):
    ds = read_dataset(real / "mirror-mouse", schema="mirror_mouse")
    path, n = write_subset(ds.records, tmp_path / "sub" / "train.json", "mirror_mouse", "img01", "img03")
    assert n == 3 and path.is_file()
    back = read_dataset(path)
    assert back.schema == "mirror_mouse" and len(back) == 3
    for orig, got in zip(ds.records[0:3], back.records, strict=True):
        assert Path(got.image).resolve() == Path(orig.image).resolve()
        np.testing.assert_allclose(got.keypoints, orig.keypoints, atol=1e-4)
        assert got.bbox == (0.0, 0.0, 396.0, 406.0)  # whole frame, not the keypoint box
    assert back.records[0].keypoints[4, 2] == 0  # tailBase_top is empty in img01 and stays unlabelled
