"""The decoded-image cache: the same samples as decoding every time, invalidation, budget, worker sharing."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from animalpose.codecs import build_codec
from animalpose.data.augment import build_augmenter
from animalpose.data.dataset import TopDownDataset, collate_skip
from animalpose.data.image_cache import ImageCache
from animalpose.data.records import PoseRecord
from animalpose.errors import DataError
from animalpose.keypoints import load_schema


def _noise_png(path: Path, seed: int, size: tuple[int, int] = (96, 80)) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    return path


def _records(folder: Path, n: int = 6) -> list[PoseRecord]:
    """Two instances per image (the second image decode of a record is a cache hit), 18 TigDog joints."""
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        img = _noise_png(folder / f"im{i // 2}.png", i // 2)
        box = (10.0 + i, 8.0, 60.0, 50.0)
        kp = np.stack([rng.uniform(10, 70, 18), rng.uniform(8, 58, 18), np.full(18, 2.0)], 1)
        out.append(PoseRecord(str(img), kp, "tigdog", bbox=box))
    return out


def _dataset(records, cache: ImageCache | None) -> TopDownDataset:
    schema = load_schema("tigdog")
    codec = build_codec("gaussian", (64, 64), (16, 16), 1.0)
    return TopDownDataset(records, schema, codec, build_augmenter("hourglass", schema, (64, 64)), padding=1.25,
                          seed=3, image_cache=cache)


def _same(a: dict, b: dict) -> None:
    for key in ("image", "target", "target_weight"):
        assert torch.equal(a[key], b[key]), key
    for key, value in a["meta"].items():
        other = b["meta"][key]
        assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other, key


def test_cached_samples_equal_decoded_samples_bitwise_over_epochs(tmp_path):
    records = _records(tmp_path)
    cache = ImageCache(2**30)
    cached, plain = _dataset(records, cache), _dataset(records, None)
    for epoch in range(2):  # epoch 1 is served from memory; the augmentation differs per epoch
        cached.set_epoch(epoch)
        plain.set_epoch(epoch)
        for i in range(len(records)):
            _same(cached[i], plain[i])
    assert (len(cache), cache.misses, cache.hits) == (3, 3, 2 * len(records) - 3)
    assert cache.nbytes == 3 * 96 * 80 * 3


def test_a_changed_file_is_decoded_again(tmp_path):
    path = _noise_png(tmp_path / "a.png", 0)
    cache = ImageCache(2**20)
    first = cache.read(path)
    assert cache.read(path) is first and cache.hits == 1
    st = os.stat(path)
    _noise_png(path, 1)  # same size in pixels, other content
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a new mtime even on a coarse clock
    second = cache.read(path)
    assert cache.misses == 2 and not np.array_equal(first, second)
    assert np.array_equal(second, cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
    assert len(cache) == 1 and cache.nbytes == second.nbytes  # replaced, not added


def test_a_file_of_the_same_mtime_but_another_size_is_decoded_again(tmp_path):
    path = _noise_png(tmp_path / "a.png", 0, (40, 30))
    cache = ImageCache(2**20)
    cache.read(path)
    st = os.stat(path)
    _noise_png(path, 0, (20, 30))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size != st.st_size
    assert cache.read(path).shape == (30, 20, 3) and cache.misses == 2


def test_a_removed_file_is_an_error_naming_it_not_a_stale_image(tmp_path):
    path = _noise_png(tmp_path / "gone.png", 0)
    cache = ImageCache(2**20)
    cache.read(path)
    path.unlink()
    with pytest.raises(DataError) as err:
        cache.read(path)
    assert "gone.png" in str(err.value)
    assert len(cache) == 0 and cache.nbytes == 0


def test_budget_keeps_what_fits_and_decodes_the_rest(tmp_path):
    a, b = _noise_png(tmp_path / "a.png", 0), _noise_png(tmp_path / "b.png", 1)
    one = 96 * 80 * 3
    cache = ImageCache(one + one // 2)
    cache.read(a)
    cache.read(b)
    cache.read(b)
    assert len(cache) == 1 and (str(a), None) in cache and cache.misses == 3
    assert ImageCache(0).read(a).flags.writeable  # nothing kept: the caller's own array


def test_cached_images_are_read_only(tmp_path):
    img = ImageCache(2**20).read(_noise_png(tmp_path / "a.png", 0))
    with pytest.raises(ValueError):
        img[0, 0, 0] = 1


def test_fill_cache_decodes_each_image_once_and_stops_at_the_budget(tmp_path):
    records = _records(tmp_path)
    full = _dataset(records, ImageCache(2**30))
    full.fill_cache()
    assert len(full.image_cache) == 3 and full.image_cache.misses == 3
    small = _dataset(records, ImageCache(96 * 80 * 3))
    small.fill_cache()
    assert len(small.image_cache) == 1 and small.image_cache.misses == 2  # the second image did not fit: stop


def test_loader_workers_use_the_filled_cache(tmp_path, monkeypatch):
    """Filled in the parent, the cache serves the forked workers: with decoding broken after the fill, a
    worker that decoded would skip every sample."""
    records = _records(tmp_path)
    ds = _dataset(records, ImageCache(2**30))
    ds.fill_cache()

    def broken(path, frame_index=None):
        raise DataError(str(path), "image", "decoded again")

    monkeypatch.setattr("animalpose.data.image_cache.read_image", broken)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=1, collate_fn=collate_skip)
    batches = list(loader)
    assert [b["skipped"] for b in batches] == [0, 0]
    plain = _dataset(records, None)
    _same(collate_skip([plain[i] for i in range(3)]), batches[0])
