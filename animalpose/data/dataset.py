"""Top-down training samples: record -> crop -> augmentation -> codec targets -> tensors.

:class:`TopDownDataset` returns, per record, a dict with

- ``image``: (3, H, W) float32, normalised by mean/std (ImageNet or the dataset's own, cached);
- ``target``: (K, h, w) float32 heatmaps from the codec; ``target_weight``: (K,) float32;
- ``meta``: ``center`` (2,), ``scale`` (2,), ``matrix`` (2, 3) source→crop affine, ``keypoints``
  (K, 3) original-image keypoints, ``crop_keypoints`` (K, 3), ``index`` (record index), ``flipped``.

Predictions map back with :func:`animalpose.data.transforms.crop_to_original` on ``meta["matrix"]``.
A corrupt image does not stop an epoch: the sample comes back as a (falsy) :class:`SkippedSample`
naming the image and the reason, is logged once, and :func:`collate_skip` drops it, counts it in the
batch's ``skipped`` field and lists it in ``skipped_images``, so that the loops record what they
skipped (summary.json, state.json, MLflow ``data/skipped_images``) instead of only logging it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from animalpose.atomic import write_json_atomic
from animalpose.codecs import Codec
from animalpose.data import transforms as T
from animalpose.data.augment import Augmenter
from animalpose.data.image_cache import ImageCache
from animalpose.data.images import read_image
from animalpose.data.records import PoseRecord
from animalpose.errors import ConfigError, DataError
from animalpose.keypoints import KeypointSchema
from animalpose.paths import data_home

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def default_num_workers() -> int:
    """Loader worker processes: one core is left to the trainer, at most 8 workers."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std of RGB images scaled to [0, 1]."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 -> (3, H, W) float32 normalised."""
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return x.sub_(mean).div_(std)

    def to_dict(self) -> dict:
        """Plain JSON for a checkpoint's ``extra["normalization"]`` (:meth:`from_dict` reads it back)."""
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, doc: dict | None) -> Normalization:
        """A checkpoint's stored normalisation; ImageNet's when it stores none."""
        return cls(tuple(doc["mean"]), tuple(doc["std"])) if doc else cls()

    def denormalize(self, tensor: torch.Tensor) -> np.ndarray:
        """(3, H, W) normalised -> (H, W, 3) uint8."""
        x = tensor.detach().cpu().float() * torch.tensor(self.std).view(3, 1, 1) + torch.tensor(self.mean).view(3, 1, 1)
        return (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def _atomic_write_json(path: Path, data: dict) -> None:
    write_json_atomic(path, data, indent=2)


def dataset_normalization(
    records: Sequence[PoseRecord], cache_dir: str | Path | None = None, max_images: int = 500, seed: int = 0
) -> Normalization:
    """Mean/std of a dataset's images, computed once and cached (the CC-SSL reference does the same).

    Statistics are over the pixels of up to ``max_images`` distinct images (a seeded sample). The
    cache is ``meanstd_<hash>.json`` in ``cache_dir`` (default: ``<data home>/cache/normalization``,
    never the dataset's own folder, which may be read-only or shared), keyed by the list of images,
    and written atomically. Unreadable images are skipped and logged.
    """
    refs = list(dict.fromkeys((r.image, r.frame_index) for r in records))
    if not refs:
        raise DataError("<records>", "records", "no images to compute mean/std from")
    digest = hashlib.sha1(json.dumps(refs).encode()).hexdigest()[:12]
    folder = Path(cache_dir) if cache_dir is not None else data_home() / "cache" / "normalization"
    cache = folder / f"meanstd_{digest}.json"
    if cache.is_file():
        try:
            data = json.loads(cache.read_text())
            return Normalization(tuple(data["mean"]), tuple(data["std"]))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("%s: unreadable mean/std cache (%s); recomputing", cache, exc)
    rng = np.random.default_rng(seed)
    chosen = [refs[i] for i in sorted(rng.permutation(len(refs))[:max_images])]
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for path, frame in chosen:
        try:
            img = read_image(path, frame).reshape(-1, 3).astype(np.float64) / 255.0
        except DataError as exc:
            log.warning("mean/std: skipping %s", exc)
            continue
        total += img.sum(0)
        total_sq += (img**2).sum(0)
        count += len(img)
    if count == 0:
        raise DataError(str(refs[0][0]), "image", "no readable image to compute mean/std from")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 1e-12))
    norm = Normalization(tuple(float(v) for v in mean), tuple(float(v) for v in std))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write_json(cache, {"mean": norm.mean, "std": norm.std, "images": len(chosen), "pixels": count})
    except OSError as exc:
        log.warning("cannot cache mean/std at %s: %s", cache, exc)
    return norm


class TopDownDataset(Dataset):
    """Top-down samples of pose records.

    Args:
        records: the instances; records without a bbox use their whole image (``image_size`` or
            the decoded size).
        schema: keypoint schema of the records.
        codec: target codec (its ``input_size`` is the crop size, its ``udp`` the crop's pixel convention).
        augment: an :class:`Augmenter`, or None for the plain crop; one built for another input size or
            pixel convention than the codec's is a ConfigError.
        padding: box padding factor (CC-SSL: 1.5 real, 1.25 synthetic) of the records that carry none of
            their own (``PoseRecord.padding``, set per source dataset by ``engine.build.load_records``).
        normalization: mean/std; default ImageNet.
        seed: base seed; sample i of epoch e draws from ``default_rng((seed, e, i))``.
        image_cache: decoded images kept across epochs (:class:`ImageCache`, may be shared between
            datasets); None decodes every image on every use. Samples are the same either way.
    """

    def __init__(
        self,
        records: Sequence[PoseRecord],
        schema: KeypointSchema,
        codec: Codec,
        augment: Augmenter | None = None,
        padding: float = T.PADDING_REAL,
        normalization: Normalization | None = None,
        seed: int = 0,
        image_cache: ImageCache | None = None,
    ):
        self.records = list(records)
        for i, r in enumerate(self.records):
            if r.num_joints != schema.num_joints:
                raise DataError(r.image, f"records[{i}].keypoints",
                                f"{r.num_joints} joints, schema {schema.name!r} has {schema.num_joints}")
        self.schema = schema
        self.codec = codec
        self.input_size = tuple(codec.input_size)
        self.udp = codec.udp  # the crop follows the codec's pixel convention (UDP or not)
        if augment is not None and (augment.udp != self.udp or tuple(augment.input_size) != self.input_size):
            raise ConfigError("<dataset>", "augment", "augmenter's input_size/udp differ from the codec's")
        self.augment = augment
        self.padding = padding
        self.normalization = normalization or Normalization()
        self.seed = seed
        self.image_cache = image_cache
        self.epoch = 0
        self.skipped: set[int] = set()

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def center_scale(self, record: PoseRecord, image_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Crop centre (2,) and scale (2,) of a record: its bbox (else its whole image) times its own padding,
        else the dataset's."""
        bbox = record.bbox if record.bbox is not None else (0.0, 0.0, image_shape[1], image_shape[0])
        aspect = self.input_size[0] / self.input_size[1]
        return T.box_to_center_scale(bbox, aspect, self.padding if record.padding is None else record.padding)

    def read(self, record: PoseRecord) -> np.ndarray:
        """The record's decoded (H, W, 3) uint8 image, through the cache when there is one (read-only then)."""
        if self.image_cache is None:
            return read_image(record.image, record.frame_index)
        return self.image_cache.read(record.image, record.frame_index)

    def fill_cache(self) -> None:
        """Decode every image into the cache now, in this process (up to its budget), so that DataLoader
        workers forked afterwards share it instead of each decoding its own; images that fail are left to
        ``__getitem__`` (which skips and reports them)."""
        if self.image_cache is None:
            return
        for record in self.records:
            try:
                self.image_cache.read(record.image, record.frame_index)
            except DataError:
                continue
            if (str(record.image), record.frame_index) not in self.image_cache:  # the budget is spent
                break

    def __getitem__(self, index: int) -> dict | SkippedSample:
        record = self.records[index]
        try:
            image = self.read(record)
        except DataError as exc:
            if index not in self.skipped:
                log.warning("skipping corrupt sample %d: %s", index, exc)
                self.skipped.add(index)
            return SkippedSample(index, str(record.image), record.frame_index, str(exc))
        center, scale = self.center_scale(record, image.shape)
        keypoints = record.keypoints
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            sample = self.augment(image, keypoints, center, scale, rng)
            crop, crop_kp, matrix, flipped = sample.image, sample.keypoints, sample.matrix, sample.flipped
        else:
            matrix = T.crop_matrix(center, scale, self.input_size, 0.0, self.udp)
            crop = T.warp_image(image, matrix, self.input_size)
            crop_kp, flipped = T.transform_points(keypoints, matrix), False
        target, weight = self.codec.encode(crop_kp)
        return {
            "image": self.normalization(crop),
            "target": torch.from_numpy(target),
            "target_weight": torch.from_numpy(weight),
            "meta": {
                "center": torch.from_numpy(center.astype(np.float32)),
                "scale": torch.from_numpy(scale.astype(np.float32)),
                "matrix": torch.from_numpy(np.asarray(matrix, dtype=np.float64)),
                "keypoints": torch.from_numpy(keypoints.astype(np.float32)),
                "crop_keypoints": torch.from_numpy(crop_kp.astype(np.float32)),
                "index": index,
                "flipped": flipped,
            },
        }


@dataclass(frozen=True)
class SkippedSample:
    """What :meth:`TopDownDataset.__getitem__` returns for an image that does not decode (falsy, so that
    ``if sample:`` tells a sample from a skip)."""

    index: int
    image: str
    frame_index: int | None
    reason: str

    def __bool__(self) -> bool:
        return False

    def to_dict(self) -> dict:
        return {"image": self.image, "frame_index": self.frame_index, "reason": self.reason}


def collate_skip(samples: list[dict | SkippedSample | None]) -> dict:
    """Collate the readable samples of a batch; ``skipped`` (int) counts the corrupt ones dropped and
    ``skipped_images`` lists them (``SkippedSample.to_dict()``)."""
    good = [s for s in samples if s]
    batch = default_collate(good) if good else {}
    batch["skipped"] = len(samples) - len(good)
    batch["skipped_images"] = [s.to_dict() for s in samples if isinstance(s, SkippedSample)]
    return batch


def images_left_out(records: Sequence[PoseRecord], kept: Sequence[PoseRecord], stage: str) -> list[dict]:
    """The images of ``records`` with no record in ``kept`` (a pass that drops what does not decode, e.g.
    pseudo-labelling), each once, as :meth:`SkippedSample.to_dict` entries."""
    done = {(r.image, r.frame_index) for r in kept}
    missed = {(r.image, r.frame_index) for r in records} - done
    return [{"image": image, "frame_index": frame, "reason": f"did not decode ({stage} skipped it)"}
            for image, frame in sorted(missed, key=lambda k: (k[0], -1 if k[1] is None else k[1]))]


class SkippedImages:
    """The images a loop skipped because they did not decode, each once: ``add(batch)`` per batch."""

    def __init__(self, items: list[dict] | None = None):
        self._items: dict[tuple[str, int | None], dict] = {}
        for item in items or []:
            self._items.setdefault((item["image"], item.get("frame_index")), dict(item))

    def add(self, batch: dict) -> None:
        for item in batch.get("skipped_images", ()):
            self._items.setdefault((item["image"], item.get("frame_index")), item)

    def __len__(self) -> int:
        return len(self._items)

    def to_list(self) -> list[dict]:
        return [self._items[k] for k in sorted(self._items, key=lambda k: (k[0], -1 if k[1] is None else k[1]))]


class VideoSequenceSampler(Sampler[list[int]]):
    """Batches of ``length`` consecutive frames of one video, never across a video boundary.

    Records are grouped by video (``video_id``, else the video file for video-frame records) and
    ordered by ``frame_index``; a window is kept only when its frames are consecutive (index steps
    of at most ``max_gap``). Records without a video are never sampled. Use as ``batch_sampler``.

    Args:
        records: dataset records, indexed like the dataset.
        length: frames per sequence.
        stride: step between window starts within a video.
        max_gap: largest allowed frame-index step inside a window.
        shuffle: shuffle the windows each epoch (seeded by ``seed`` and :meth:`set_epoch`).
    """

    def __init__(
        self,
        records: Sequence[PoseRecord],
        length: int,
        stride: int = 1,
        max_gap: int = 1,
        shuffle: bool = True,
        seed: int = 0,
    ):
        if length < 1 or stride < 1 or max_gap < 1:
            raise ValueError("length, stride and max_gap must be positive")
        self.length, self.shuffle, self.seed, self.epoch = length, shuffle, seed, 0
        videos: dict[str, list[tuple[int, int]]] = {}
        for i, r in enumerate(records):
            key = r.video_id if r.video_id is not None else (r.image if r.is_video_frame else None)
            if key is None or r.frame_index is None:
                continue
            videos.setdefault(key, []).append((r.frame_index, i))
        self.windows: list[list[int]] = []
        for frames in videos.values():
            frames.sort()
            for start in range(0, len(frames) - length + 1, stride):
                win = frames[start : start + length]
                steps = np.diff([f for f, _ in win])
                if np.all((steps >= 1) & (steps <= max_gap)):
                    self.windows.append([i for _, i in win])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.windows)

    def __iter__(self) -> Iterator[list[int]]:
        order = np.arange(len(self.windows))
        if self.shuffle:
            order = np.random.default_rng((self.seed, self.epoch)).permutation(len(self.windows))
        for k in order:
            yield list(self.windows[k])


def _worker_init(_: int) -> None:
    """One compute thread per worker: parallelism comes from the worker processes.

    OpenCV's own thread pool is switched off in the parent when this module is imported (below):
    calling ``cv2.setNumThreads`` in a forked worker whose parent had already used that pool
    deadlocks in ``pthread_cond_destroy`` (seen in the full test suite).
    """
    torch.set_num_threads(1)


# Per-sample warps of small crops gain nothing from OpenCV's threads, and a pool that exists when
# DataLoader forks its workers can deadlock them (see _worker_init). Parallelism comes from workers.
cv2.setNumThreads(0)


def build_loader(
    dataset: Dataset,
    batch_size: int = 16,
    shuffle: bool = True,
    num_workers: int | None = None,
    drop_last: bool = False,
    batch_sampler: Sampler | None = None,
    seed: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader over top-down samples that skips corrupt images (see :func:`collate_skip`).

    Args:
        dataset: usually a :class:`TopDownDataset`.
        batch_size, shuffle, drop_last: as in DataLoader (ignored with ``batch_sampler``).
        num_workers: worker processes; default :func:`default_num_workers`.
        batch_sampler: e.g. :class:`VideoSequenceSampler` for temporal batches.
        seed: seed of the shuffling generator.
    """
    workers = default_num_workers() if num_workers is None else num_workers
    common = {
        "num_workers": workers,
        "collate_fn": collate_skip,
        "pin_memory": pin_memory,
        "persistent_workers": workers > 0,
        "worker_init_fn": _worker_init if workers > 0 else None,
    }
    if workers > 0:
        common["prefetch_factor"] = 4
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, **common)
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, generator=gen, **common)
