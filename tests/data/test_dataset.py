"""Top-down dataset and loaders on the real fixtures: targets, map-back, normalisation cache,
corrupt images skipped with a count, video sequences that never cross a video boundary."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from animalpose.codecs import build_codec
from animalpose.data import dataset as ds
from animalpose.data.augment import build_augmenter
from animalpose.data.dataset import (
    Normalization,
    TopDownDataset,
    VideoSequenceSampler,
    build_loader,
    collate_skip,
    dataset_normalization,
)
from animalpose.data.images import read_image
from animalpose.data.records import PoseRecord
from animalpose.data.transforms import crop_to_original
from animalpose.errors import ConfigError
from animalpose.keypoints import load_schema


def coco_records(folder: Path, schema: str) -> list[PoseRecord]:
    """Records of a COCO-keypoints fixture, parsed directly (independent of the readers)."""
    path = next(folder.glob("*.json"))
    data = json.loads(path.read_text())
    files = {im["id"]: im["file_name"] for im in data["images"]}
    out = []
    for ann in data["annotations"]:
        kp = np.asarray(ann["keypoints"], np.float32).reshape(-1, 3)
        out.append(PoseRecord(str(folder / files[ann["image_id"]]), kp, schema, bbox=tuple(ann["bbox"])))
    return out


@pytest.fixture
def horse10(real):
    return coco_records(real / "mmpose-tests" / "horse10", "horse10")


@pytest.fixture
def atrw(real):
    return coco_records(real / "mmpose-tests" / "atrw", "atrw")


@pytest.mark.parametrize("kind", ["udp", "dark"])
def test_samples_map_back_to_original_keypoints(atrw, kind):
    udp = kind == "udp"
    codec = build_codec(kind, (96, 128), (24, 32), 1.5)
    data = TopDownDataset(atrw, load_schema("atrw"), codec, padding=1.25)
    assert data.udp == udp  # the crop follows the codec's convention
    with pytest.raises(ConfigError, match="augment"):  # an augmenter built for the other convention
        TopDownDataset(atrw, load_schema("atrw"), codec, build_augmenter("hourglass", load_schema("atrw"), (96, 128),
                                                                        udp=not udp))
    for i in range(len(data)):
        s = data[i]
        assert s["image"].shape == (3, 128, 96) and s["image"].dtype == torch.float32
        assert s["target"].shape == (15, 32, 24) and s["target_weight"].shape == (15,)
        meta = s["meta"]
        assert meta["index"] == i
        np.testing.assert_allclose(meta["keypoints"].numpy(), atrw[i].keypoints)
        coords, _ = codec.decode(s["target"][None])
        back = crop_to_original(coords, meta["matrix"].numpy()[None])[0]
        w = s["target_weight"].numpy() > 0
        assert w.sum() >= 10
        scale_px = meta["scale"].numpy()[0] * 200 / 96  # source pixels per crop pixel
        assert np.abs(back[w] - atrw[i].keypoints[w, :2]).max() < 0.05 * scale_px


def test_augmented_samples_and_loader_batches(horse10):
    schema = load_schema("horse10")
    codec = build_codec("gaussian", 64, 16, 1.0)
    aug = build_augmenter("strong", schema, (64, 64))
    data = TopDownDataset(horse10 * 2, schema, codec, augment=aug, seed=3)
    a, b = data[0], data[0]
    torch.testing.assert_close(a["image"], b["image"])  # same seed, epoch and index: same sample
    data.set_epoch(1)
    assert not torch.equal(data[0]["image"], a["image"])
    loader = build_loader(data, batch_size=4, num_workers=0, shuffle=False)
    batches = list(loader)
    assert [bt["image"].shape[0] for bt in batches] == [4, 2]
    assert batches[0]["target"].shape == (4, 22, 16, 16)
    assert batches[0]["meta"]["matrix"].shape == (4, 2, 3)
    assert sum(bt["skipped"] for bt in batches) == 0
    assert not batches[0]["meta"]["flipped"].any()  # horse10 has no flip pairs


def test_corrupt_image_is_skipped_with_a_count(horse10, tmp_path, caplog):
    records = []
    for r in horse10:
        dst = tmp_path / Path(r.image).name
        shutil.copy(r.image, dst)
        records.append(PoseRecord(str(dst), r.keypoints, r.schema, bbox=r.bbox))
    bad = tmp_path / "bad.png"
    bad.write_bytes(Path(records[0].image).read_bytes()[:200])  # truncated PNG
    records.insert(1, PoseRecord(str(bad), records[0].keypoints, "horse10", bbox=records[0].bbox))
    data = TopDownDataset(records, load_schema("horse10"), build_codec("dark", 64, 16, 1.0))
    with caplog.at_level(logging.WARNING, logger="animalpose.data.dataset"):
        batches = list(build_loader(data, batch_size=2, num_workers=0, shuffle=False))
    assert sum(bt["skipped"] for bt in batches) == 1
    assert sum(bt["image"].shape[0] for bt in batches) == 3
    assert any(str(bad) in r.getMessage() for r in caplog.records)
    assert data.skipped == {1}
    (listed,) = [s for bt in batches for s in bt["skipped_images"]]  # recorded, not only logged
    assert listed["image"] == str(bad) and "truncated" in listed["reason"]
    assert collate_skip([None, None]) == {"skipped": 2, "skipped_images": []}


def test_loader_with_a_worker_process(horse10):
    data = TopDownDataset(horse10, load_schema("horse10"), build_codec("gaussian", 32, 8, 1.0))
    batches = list(build_loader(data, batch_size=3, num_workers=1, shuffle=True, seed=1))
    assert sorted(batches[0]["meta"]["index"].tolist()) == [0, 1, 2]


def test_normalisation_computed_once_and_cached(atrw, tmp_path, monkeypatch):
    pixels = np.concatenate([read_image(r.image).reshape(-1, 3) / 255.0 for r in atrw])
    norm = dataset_normalization(atrw, cache_dir=tmp_path)
    np.testing.assert_allclose(norm.mean, pixels.mean(0), atol=1e-6)
    np.testing.assert_allclose(norm.std, pixels.std(0), atol=1e-6)
    cached = list(tmp_path.glob("meanstd_*.json"))
    assert len(cached) == 1 and not list(tmp_path.glob(".*tmp"))

    def fail(*_a, **_k):
        raise AssertionError("images must not be read again")

    monkeypatch.setattr(ds, "read_image", fail)
    again = dataset_normalization(atrw, cache_dir=tmp_path)
    np.testing.assert_allclose(again.mean, norm.mean)
    img = np.full((2, 2, 3), 255, np.uint8)
    t = Normalization()(img)
    np.testing.assert_allclose(t[:, 0, 0].numpy(), (1 - np.array(ds.IMAGENET_MEAN)) / ds.IMAGENET_STD, rtol=1e-6)
    np.testing.assert_array_equal(Normalization().denormalize(t), img)


def test_sequence_sampler_never_crosses_a_video_boundary():
    kp = np.zeros((3, 3), np.float32)
    records = []
    # video a: frames 0..5; video b: frames 0,1,2, then a gap, 10,11; unlabelled stills are ignored.
    for f in range(6):
        records.append(PoseRecord(f"a/{f}.png", kp, "x", video_id="a", frame_index=f))
    for f in (11, 0, 2, 10, 1):
        records.append(PoseRecord(f"b/{f}.png", kp, "x", video_id="b", frame_index=f))
    records.append(PoseRecord("still.png", kp, "x"))
    sampler = VideoSequenceSampler(records, length=3, shuffle=True, seed=0)
    windows = list(sampler)
    # a: 4 windows (0-2 .. 3-5); b: only 0-1-2 (1-2-10 and 2-10-11 jump over the gap).
    assert len(windows) == len(sampler) == 5
    for win in windows:
        vids = {records[i].video_id for i in win}
        frames = [records[i].frame_index for i in win]
        assert len(vids) == 1 and np.all(np.diff(frames) == 1)
    assert sorted(records[i].frame_index for i in windows[[records[w[0]].video_id for w in windows].index("b")]) \
        == [0, 1, 2]
    assert len(list(VideoSequenceSampler(records, length=3, max_gap=8))) == 7  # gap allowed: 2 more in b
    # stride 2 in b (0 1 2 10 11): starts 0 and 2 -> [0, 1] kept, [2, 10] crosses the gap.
    assert len(list(VideoSequenceSampler(records, length=2, stride=2, shuffle=False))) == 3 + 1


def test_bench_loader_pieces_run_on_the_fixtures(real):
    from flows.benchmarks import loader as bench

    images = bench._fixture_images(real / "mmpose-tests")
    assert len(images) == 5  # 3 Horse-10 + 2 ATRW annotations
    records = bench._records(images, copies=4)
    assert len(records) == 20 and all(r.num_joints == 18 for r in records)
    rate, workers = bench.measure_loader(records, 64, batches=1, workers=0)
    assert rate > 0 and workers == 0


def test_normalization_cache_defaults_to_the_data_home_not_the_dataset_folder(atrw, tmp_path, monkeypatch):
    """The fixtures are shared and may be read-only: nothing may be written beside them."""
    monkeypatch.setenv("ANIMALPOSE_HOME", str(tmp_path / "home"))
    before = set(Path(atrw[0].image).parent.iterdir())
    dataset_normalization(atrw)
    assert set(Path(atrw[0].image).parent.iterdir()) == before
    assert len(list((tmp_path / "home" / "cache" / "normalization").glob("meanstd_*.json"))) == 1


def test_workers_never_touch_opencvs_thread_pool(monkeypatch):
    """Regression: a forked worker calling cv2.setNumThreads after its parent had used OpenCV's pool
    hung in pthread_cond_destroy (seen once in the full suite). The pool is switched off in the parent
    at import, and the worker initialiser leaves OpenCV alone."""
    import cv2

    assert cv2.getNumThreads() == 1  # setNumThreads(0): OpenCV runs sequentially, no pool to inherit

    def forbidden(*_a):
        raise AssertionError("worker init must not call cv2.setNumThreads")

    monkeypatch.setattr(cv2, "setNumThreads", forbidden)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    ds._worker_init(0)
