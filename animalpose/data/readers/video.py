"""Raw video (OpenCV) as unlabelled target data: one record per frame, or per ``step``-th frame.

Records carry all-zero keypoints (visibility 0): (K, 3) for a given schema, else (0, 3) with the
schema name "unlabelled". ``video_id`` is the file stem, ``frame_index`` the 0-based frame. The
frame count is the container's (``CAP_PROP_FRAME_COUNT``); ``verify=True`` decodes the whole
video to count the frames that really decode and uses that count instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from animalpose.data.images import count_video_frames, video_info
from animalpose.data.readers.common import schema_by_name
from animalpose.data.records import VIDEO_SUFFIXES, PoseDataset, PoseRecord
from animalpose.errors import DataError
from animalpose.keypoints import KeypointSchema


def find_videos(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    vids = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not vids:
        raise DataError(str(path), "<folder>", f"no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
    return vids


def read_video(
    path: str | Path,
    schema: str | KeypointSchema | None = None,
    *,
    step: int = 1,
    verify: bool = False,
) -> PoseDataset:
    """Read a video file, or every video under a folder, as unlabelled frame records."""
    path = Path(path)
    if step < 1:
        raise DataError(str(path), "step", f"must be >= 1, got {step}")
    resolved = schema_by_name(schema) if schema is not None else None
    k = resolved.num_joints if resolved is not None else 0
    name = resolved.name if resolved is not None else "unlabelled"
    records, videos, declared = [], {}, {}
    for vid in find_videos(path):
        info = video_info(vid)
        frames = count_video_frames(vid) if verify else info["frames"]
        videos[str(vid)] = frames
        declared[str(vid)] = info["frames"]
        for f in range(0, frames, step):
            records.append(PoseRecord(
                image=str(vid), keypoints=np.zeros((k, 3), dtype=np.float32), schema=name,
                image_size=(info["width"], info["height"]), video_id=vid.stem, frame_index=f,
                meta={"origin": (str(vid), f"frame {f}")},
            ))
    meta = {"declared_frames": declared, "step": step, "verified": verify}
    return PoseDataset(records, name, "video", str(path), videos=videos, meta=meta)
