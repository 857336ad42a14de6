"""Backgrounds cut from photographs outside their animal boxes (synthetic.backgrounds)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from animalpose.errors import ConfigError
from synthetic import generate_dataset
from synthetic.backgrounds import MAX_OVERLAP, load_sceneries, overlap_area, scenery_background
from synthetic.scene import render_scene
from synthetic.styles import StyleConfig


def _coco(tmp_path, boxes, size=(100, 200)):
    """One (H, W) = size photograph whose left part is red and right part green, with ``boxes`` [x, y, w, h]."""
    h, w = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (0, 0, 255)  # BGR red
    img[:, w // 2:] = (0, 255, 0)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    doc = {"images": [{"id": 7, "file_name": "a.png", "width": w, "height": h}],
           "annotations": [{"id": i, "image_id": 7, "bbox": b} for i, b in enumerate(boxes)]}
    path = tmp_path / "target.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_overlap_area_by_hand():
    assert overlap_area((0, 0, 10, 10), (5, 5, 20, 20)) == 25.0
    assert overlap_area((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching edges
    assert overlap_area((0, 0, 10, 10), (2, 3, 4, 8)) == 10.0  # inside


def test_crops_keep_out_of_the_animal_boxes(tmp_path):
    source = _coco(tmp_path, [[0, 0, 100, 100]])  # the left half (red) holds the animal
    (scene,) = load_sceneries(source)
    assert scene.boxes == ((0.0, 0.0, 100.0, 100.0),) and scene.image == str(tmp_path / "a.png")
    rng = np.random.default_rng(0)
    for _ in range(40):
        got = scenery_background(rng, 32, source)
        assert got is not None
        crop, info = got
        x0, y0, side = info["crop"]
        assert overlap_area((x0, y0, x0 + side, y0 + side), (0, 0, 100, 100)) <= MAX_OVERLAP * side * side
        assert crop.shape == (32, 32, 3) and crop.dtype == np.uint8
        assert crop[..., 1].mean() > 200 and crop[..., 0].mean() < 30  # green (RGB), never the red animal half


def test_a_photograph_filled_by_its_animal_gives_nothing_and_the_render_says_so(tmp_path):
    source = _coco(tmp_path, [[0, 0, 200, 100]])
    assert scenery_background(np.random.default_rng(0), 32, source) is None
    style = StyleConfig.make("cad", None, source, 1.0)
    bg = render_scene("horse", style, 3, 64).factors["beta"]["background"]
    assert bg["scenery_miss"] is True and bg["kind"] != "scenery"  # the fallback is recorded, not silent


def test_a_folder_source_and_clear_errors(tmp_path):
    cv2.imwrite(str(tmp_path / "b.jpg"), np.full((40, 60, 3), 128, np.uint8))
    (scene,) = load_sceneries(str(tmp_path))
    assert scene.boxes == ()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no image found") as err:
        load_sceneries(str(empty))
    assert str(empty) in str(err.value)
    with pytest.raises(ConfigError, match="folder of images or a COCO"):
        load_sceneries(str(tmp_path / "missing.txt"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [{"id": 1, "file_name": "b.jpg"}], "annotations": [{"image_id": 1}]}))
    with pytest.raises(ConfigError, match=r"annotations\[0\]\.bbox"):
        load_sceneries(str(bad))


def test_a_dataset_over_photographs_counts_them_and_others_keep_their_hash(tmp_path):
    source = _coco(tmp_path, [[0, 0, 100, 100]])
    plain = generate_dataset(tmp_path / "plain", "horse", "cad", 3, 64, 0)
    over = generate_dataset(tmp_path / "over", "horse", "cad", 3, 64, 0, backgrounds=source, backgrounds_p=1.0)
    m_plain, m_over = (json.loads((d / "manifest.json").read_text()) for d in (plain, over))
    assert "backgrounds" not in m_plain and "backgrounds" not in m_plain["config"]["style"]
    assert m_over["backgrounds"] == {"source": source, "used": 3, "missed": 0}
    assert m_over["config_hash"] != m_plain["config_hash"]
    assert StyleConfig.make("cad").to_dict() == {"name": "cad", "gap": 0.0}  # earlier datasets' hashes unchanged
