"""MPII JSON reader (mmpose form) on the real fixture and on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from animalpose.data.readers import detect_format, read_dataset, read_mpii
from animalpose.errors import DataError


def test_real_fixture(real):
    path = real / "mmpose-tests" / "mpii"
    assert detect_format(path) == "mpii"
    ds = read_dataset(path)
    assert (ds.format, ds.schema, len(ds), len(ds.images)) == ("mpii", "mpii", 5, 5)
    data = json.loads((path / "test_mpii.json").read_text())
    for rec, entry in zip(ds.records, data, strict=True):
        assert rec.keypoints.shape == (16, 3) and rec.meta["head_size"] is None
        vis = np.asarray(entry["joints_vis"]) > 0
        # MATLAB 1-based -> 0-based pixels
        np.testing.assert_allclose(rec.keypoints[vis, :2], np.asarray(entry["joints"])[vis] - 1, rtol=1e-6)
        np.testing.assert_array_equal(rec.keypoints[~vis], 0)
        x, y, w, h = rec.bbox
        width, height = rec.image_size
        assert x >= 0 and y >= 0 and x + w <= width and y + h <= height  # clipped to the image
    first = ds.records[0]
    # scale 4.718488 -> side 943.7 px around (965, 339): clipped at the top (y = 0) of the 1280x720 image
    assert first.bbox[1] == 0.0
    np.testing.assert_allclose(first.bbox[0], 965 - 943.6976 / 2, rtol=1e-6)


def test_bad_entries(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps([{"image": "a.jpg", "joints": [[1, 2]] * 16, "joints_vis": [1] * 15,
                                 "center": [5, 5], "scale": 1.0}]))
    with pytest.raises(DataError) as err:
        read_mpii(path)
    assert (err.value.file, err.value.field) == (str(path), "[0].joints_vis")
    path.write_text(json.dumps([{"image": "a.jpg", "joints": [[1, 2]] * 16}]))
    with pytest.raises(DataError) as err:
        read_mpii(path)
    assert err.value.field == "[0].center"
