"""CC-SSL synthetic-animal reader on tiny renders and (3299, 3) vertex files in the release layout."""

from __future__ import annotations

import numpy as np
import pytest

from animalpose.data.readers import detect_format, read_ccssl
from animalpose.data.readers.ccssl import VERTEX_IDS
from animalpose.errors import DataError


def build(root, animal, n, write_image, width=64, height=48):
    folder = root / "synthetic_animal" / f"{animal}_combineds5r5_texture"
    ids = VERTEX_IDS.get(animal, VERTEX_IDS["horse"])
    for i in range(n):
        write_image(folder / f"{i}_img.png", width, height)
        verts = np.full((3299, 3), -5.0)
        for k, v in enumerate(ids):
            verts[v] = (k + i, 2 * k, 1.0)  # keypoint k at (k + i, 2k), visible
        verts[ids[17]] = (k, 2 * k, 0.0)  # last keypoint hidden
        verts[ids[16]] = (width + 10, 5, 1.0)  # visible but outside the render
        np.save(folder / f"{i}_kpts.npy", verts)
    return folder


def test_vertex_rows_split_and_visibility(tmp_path, write_image):
    build(tmp_path, "horse", 10, write_image)
    assert detect_format(tmp_path) == "ccssl"
    ds = read_ccssl(tmp_path)
    assert ds.schema == "tigdog" and len(ds) == 10
    # numeric order (0, 1, ..., 9, not 0, 1, 10...): first 8 train, last 2 val
    assert [r.meta["index"] for r in ds.records] == list(range(10))
    assert [r.split for r in ds.records] == ["train"] * 8 + ["val"] * 2
    rec = ds.records[3]
    assert rec.image_size == (64, 48)
    np.testing.assert_allclose(rec.keypoints[:16, 0], np.arange(16) + 3)
    np.testing.assert_allclose(rec.keypoints[:16, 1], 2 * np.arange(16))
    np.testing.assert_array_equal(rec.keypoints[:16, 2], 2)
    np.testing.assert_array_equal(rec.keypoints[16:], 0)  # outside the image / hidden -> not labelled


def test_species_folder_and_animals_filter(tmp_path, write_image):
    build(tmp_path, "horse", 2, write_image)
    tiger = build(tmp_path, "tiger", 5, write_image)
    assert len(read_ccssl(tmp_path)) == 7
    only = read_ccssl(tmp_path, animals=["tiger"])
    assert len(only) == 5 and {r.meta["animal"] for r in only.records} == {"tiger"}
    assert len(read_ccssl(tiger)) == 5  # a species folder on its own


def test_bad_vertex_file_and_unknown_species(tmp_path, write_image):
    folder = build(tmp_path, "horse", 1, write_image)
    np.save(folder / "0_kpts.npy", np.zeros((10, 3)))
    with pytest.raises(DataError, match=r"\(3299, 3\)") as err:
        read_ccssl(tmp_path)
    assert err.value.file.endswith("0_kpts.npy")
    build(tmp_path / "other", "sheep", 1, write_image)
    with pytest.raises(DataError, match="no keypoint vertex list for 'sheep'"):
        read_ccssl(tmp_path / "other")
