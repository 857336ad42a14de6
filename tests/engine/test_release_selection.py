"""``data.categories`` / ``data.split_file``: train from the release's ``train`` split, val from ``val``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from animalpose.config import parse_config
from animalpose.engine.build import build_data
from animalpose.errors import ConfigError, DataError

RELEASE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real" / "animal-pose"
pytestmark = pytest.mark.skipif(not RELEASE.is_dir(), reason=f"shared real data not found at {RELEASE}")


def _cfg(**data):
    base = {"train": [str(RELEASE / "keypoints.json")], "val": [str(RELEASE / "keypoints.json")],
            "input_size": [64, 64], "heatmap_size": [16, 16], "workers": 0}
    return parse_config({"data": {**base, **data}, "augment": {"preset": "none"}, "tracking": {"enabled": False}})


def _expected(species: str, split: str) -> set[int]:
    """image ids of the labelled animals of ``species`` in ``split``, straight from the JSON files."""
    doc = json.loads((RELEASE / "keypoints.json").read_text())
    cat = next(c["id"] for c in doc["categories"] if c["name"] == species)
    ids = set(json.loads((RELEASE / "splits.json").read_text())[species][split])
    return {a["image_id"] for a in doc["annotations"]
            if a["category_id"] == cat and a["image_id"] in ids and any(k[2] > 0 for k in a["keypoints"])}


def test_train_and_val_take_their_own_split_of_one_file():
    bundle = build_data(_cfg(categories=["horse"], split_file=str(RELEASE / "splits.json")))
    assert bundle.schema.name == "animalpose"
    assert {r.image_id for r in bundle.train.records} == _expected("horse", "train")
    (val,) = bundle.val.values()
    assert {r.image_id for r in val.records} == _expected("horse", "val")
    assert {r.split for r in bundle.train.records} == {"train"} and {r.split for r in val.records} == {"val"}
    assert {r.meta["category"] for r in bundle.train.records} == {"horse"}


def test_split_names_are_configurable_and_validated():
    bundle = build_data(_cfg(categories=["cow"], split_file=str(RELEASE / "splits.json"), val_split="test"))
    (val,) = bundle.val.values()
    assert {r.image_id for r in val.records} == _expected("cow", "test")
    message = re.escape("is in split 'holdout' (the file has: ['test', 'train', 'val'])")
    with pytest.raises(DataError, match=message) as err:
        build_data(_cfg(split_file=str(RELEASE / "splits.json"), train_split="holdout"))
    assert err.value.file.endswith("splits.json") and err.value.field == "data.train_split"


def test_split_file_without_a_release_entry_is_refused(tmp_path):
    coco = RELEASE.parent / "mmpose-tests" / "animalpose" / "test_animalpose.json"
    with pytest.raises(ConfigError, match=r"no data\.train/data\.val entry is in that format") as err:
        build_data(_cfg(train=[str(coco)], val=[], split_file=str(RELEASE / "splits.json")))
    assert "data.split_file" in str(err.value)
