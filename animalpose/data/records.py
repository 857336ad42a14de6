"""The common record every reader produces: one annotated (or unlabelled) instance.

Readers for every format (COCO JSON, TigDog, CC-SSL synthetic, MPII, DeepLabCut, SLEAP, raw
video) return :class:`PoseRecord` lists wrapped in a :class:`PoseDataset`. Images are referenced,
never loaded: a record points at an image file or at a frame of a video file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from animalpose.errors import Problem

VISIBLE, OCCLUDED, UNLABELLED = 2, 1, 0


@dataclass
class PoseRecord:
    """One instance.

    Attributes:
        image: path of the image file, or of the video file when ``frame_index`` is set.
        keypoints: (K, 3) float32 array of x, y (pixels of that image) and COCO visibility
            0 = not labelled / outside, 1 = labelled but occluded, 2 = visible. Unlabelled target
            data carries all-zero keypoints.
        bbox: (x, y, w, h) in pixels, or None when unknown (then the whole image is the box).
        schema: keypoint schema name.
        image_size: (width, height) when the reader knows it without decoding, else None.
        video_id: identifier of the video the frame belongs to, when known.
        frame_index: index of the frame in its video (also the frame to decode for video files).
        split: "train", "val", "test" or None.
        instance_id: track / instance identifier within the image, when known.
        image_id: identifier of the image within its dataset (COCO image id), when known.
        meta: format-specific extras in plain types (e.g. generator factors, MPII head size).
        padding: the crop padding factor of this instance's box (1.25 generated, 1.5 photographed), set by
            the loader that knows the source dataset; None: the padding of the dataset that crops it. A
            training set that mixes generated and real sources crops each record with its own.
    """

    image: str
    keypoints: np.ndarray
    schema: str
    bbox: tuple[float, float, float, float] | None = None
    image_size: tuple[int, int] | None = None
    video_id: str | None = None
    frame_index: int | None = None
    split: str | None = None
    instance_id: int | None = None
    image_id: int | None = None
    meta: dict = field(default_factory=dict)
    padding: float | None = None

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
        if self.keypoints.ndim != 2 or self.keypoints.shape[1] != 3:
            raise ValueError(f"{self.image}: keypoints must be (K, 3), got {self.keypoints.shape}")

    @property
    def num_joints(self) -> int:
        return self.keypoints.shape[0]

    @property
    def is_video_frame(self) -> bool:
        return self.frame_index is not None and Path(self.image).suffix.lower() in VIDEO_SUFFIXES

    @property
    def labelled(self) -> np.ndarray:
        """(K,) bool: joints with a label (visibility > 0)."""
        return self.keypoints[:, 2] > 0

    def keypoint_box(self) -> tuple[float, float, float, float] | None:
        """(x, y, w, h) around the labelled keypoints, or None when none are labelled."""
        pts = self.keypoints[self.labelled, :2]
        if len(pts) == 0:
            return None
        lo, hi = pts.min(0), pts.max(0)
        return float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])


VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


@dataclass
class PoseDataset:
    """Records of one dataset (one split or all), with where they came from."""

    records: list[PoseRecord]
    schema: str
    format: str
    source: str
    videos: dict[str, int] = field(default_factory=dict)  # video path -> frame count, where known
    # Problems a reader found but could skip (duplicate image ids, malformed entries), reported by
    # `animalpose data check` together with the validation problems; and format-specific extras.
    problems: list[Problem] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> PoseRecord:
        return self.records[i]

    def split(self, name: str) -> PoseDataset:
        records = [r for r in self.records if r.split == name]
        return PoseDataset(
            records, self.schema, self.format, self.source, self.videos, self.problems, self.meta
        )

    @property
    def images(self) -> list[tuple[str, int | None]]:
        """Distinct (image, frame_index) references, in first-seen order."""
        return list(dict.fromkeys((r.image, r.frame_index) for r in self.records))
