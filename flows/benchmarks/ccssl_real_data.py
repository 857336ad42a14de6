"""The data of `animalpose bench ccssl-real`: each real project's labelled train / val / test subsets and its
unlabelled video frames, written once under ``OUT/data`` (never in the shared folder). The three labelled subsets
are disjoint (checked); ``val`` is for choosing settings (``--screen``), ``test`` is only ever reported.

- **mirror-mouse** (``../shared/data/real/mirror-mouse``, Lightning Pose example data, Warren et al., eLife 2021):
  of SOURCES.md's training frames img01–img60, train on img01–img50 and hold out img51–img60 as val; test on
  img61–img90 (SOURCES.md's convention); the separate 994-frame video is the unlabelled target; the whole
  396×406 frame is the crop (both mirror views in it).
- **sleap** (``../shared/data/real/sleap-clip``, SLEAP test data): a 1,500-frame video of two flies in which every
  frame is labelled (13 nodes, 2 tracks). Its frames are split *in time*: a few labelled frames early in the clip
  train (default every 30th of frames 0–599: 20 frames, 40 flies); (:data:`SLEAP_SPLIT`) frames 750–1499 are both
  the unlabelled video (every ``frame_step``-th frame, labels dropped) and the test set (every 15th: 50 frames, 100
  flies; a test frame is also an unlabelled target frame, which is Lightning Pose's use: the unsupervised terms see
  the video they are scored on, never its labels). Val is the lab's val: a few frames of the video to be analysed,
  labelled by hand, here every 30th frame from 757 (25 frames, 50 flies), each 2 frames from the nearest unlabelled
  frame and 7 from the nearest test frame, never one of them. It sees the test's time range, as a lab's would, and
  is correlated with test more than a val outside the video is, so a setting chosen on it is still reported on
  test only. The earlier val, every 10th of frames 620–719 (``--sleap-val 620,720,10``: in the gap between the
  training frames and the video, never a training or an unlabelled frame), is nearly saturated (1.4–2.2 px for
  every model, against 11–13 px on test, where the flies roam elsewhere and touch each other) and cannot choose.
  Each fly is cropped around the box of its labelled nodes (the top-down setting with ground-truth boxes; on
  the unlabelled frames the box stands in for a tracker's). The COCO files keep each fly's track
  (``track_id``): the temporal loss's clips and the optical-flow check follow one fly.

Reason for the frame caches (PNG plus a COCO JSON that keeps ``video_id`` / ``frame_index``): random access into
these mp4 files costs ~0.1 s a frame (a seek decodes from the last key frame) against ~1.6 ms reading on, and the
CC-SSL target stream draws frames in random order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from animalpose.atomic import atomic_path, write_json_atomic
from animalpose.data.coco_writer import write_coco
from animalpose.data.images import read_image
from animalpose.data.readers import dataset_schema, read_dataset, read_video
from animalpose.data.records import PoseRecord
from animalpose.data.subset import records_in_range, write_subset
from animalpose.errors import DataError

MIRROR_SCHEMA = "mirror_mouse"


@dataclass(frozen=True)
class SleapSplit:
    """Frames of the SLEAP clip: train = ``range(*train)``; val = ``range(*val)``; unlabelled video = every
    ``frame_step``-th frame of ``range(*video)``; test = every ``test_step``-th frame of ``range(*test)`` (None: of
    the video's range, the default: the lab adapts on the video it analyses). Train must end before val and test
    start (a gap in time, so no val or test frame is a near-copy of a training frame). Val either lies inside the
    video between the unlabelled and the test frames (the default: the lab's val) or ends before the video starts
    (``--sleap-val 620,720,10``): never an unlabelled or a test frame (module docstring). A ``test`` range apart from
    the video's (``--sleap-video 750,1125 --sleap-test 1125,1500``) scores the adaptation on frames its unlabelled
    video does not cover."""

    train: tuple[int, int, int] = (0, 600, 30)
    val: tuple[int, int, int] = (757, 1500, 30)
    video: tuple[int, int] = (750, 1500)
    test_step: int = 15
    test: tuple[int, int] | None = None


SLEAP_SPLIT = SleapSplit()


@dataclass
class Prepared:
    """One project's prepared data: COCO files of the train, val and test labels and of the unlabelled frames."""

    train: Path
    val: Path
    test: Path
    frames: Path
    num_train: int
    num_val: int
    num_test: int
    num_frames: int
    split: str  # the split in words, for the result
    val_records: list[PoseRecord] = field(repr=False, default_factory=list)
    test_records: list[PoseRecord] = field(repr=False, default_factory=list)
    # the unlabelled frames' records with their labels, in the target's order, where the project has them (the
    # SLEAP clip): never given to the adaptation, only to score its pseudo-labels (flows.benchmarks.pseudolabel_truth)
    target_truth: list[PoseRecord] = field(repr=False, default_factory=list)
    # the labelled frames the adapted arms' rules calibrate on (ccssl.calibration_data); None: val itself
    calibration: Path | None = None
    num_calibration: int = 0
    # a second unlabelled target: the images of the val and test frames, labels dropped (add_held_out_frames)
    held_out: Path | None = None
    num_held_out: int = 0

    @property
    def targets(self) -> list[Path]:
        """The unlabelled target files of the adapted arms (``data.target``)."""
        return [self.frames, *([self.held_out] if self.held_out else [])]


# --------------------------------------------------------------------------------------------------
# frames


def decode_frames(video: Path, wanted: Iterable[int], folder: Path) -> dict[int, Path]:
    """Frames ``wanted`` of ``video`` as PNG in ``folder`` (decoded in order, reading on without seeking); a PNG
    already there is complete (written atomically) and reused. Returns frame index -> path."""
    wanted = sorted(set(wanted))
    paths = {f: folder / f"{video.stem}_{f:06d}.png" for f in wanted}
    missing = [f for f in wanted if not paths[f].is_file()]
    if missing:
        for f in range(missing[-1] + 1):
            frame = read_image(video, f)
            if f not in missing:
                continue
            with atomic_path(paths[f]) as tmp:
                if not cv2.imwrite(str(tmp), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
                    raise DataError(str(paths[f]), "image", "cannot write frame")
    return paths


def write_frame_cache(video: Path, out: Path, step: int, max_frames: int | None = None) -> tuple[Path, int]:
    """Every ``step``-th frame of the mirror-mouse ``video`` (at most ``max_frames``) as PNG plus ``video_frames.json``.

    Records keep ``video_id`` (the video's stem) and the original ``frame_index``, carry the whole frame as their
    box, and 17 unlabelled joints. Reuses an existing cache written with the same video, step and frame limit.
    Returns (json path, frames).
    """
    out = out.resolve()  # absolute image paths: write_coco keeps relative ones as they are
    path = out / "video_frames.json"
    info = {"video": str(video), "step": step, "max_frames": max_frames}
    if path.is_file():
        doc = json.loads(path.read_text())
        if {k: doc.get("info", {}).get(k) for k in info} == info:
            return path, len(doc["images"])
    ds = read_video(video, MIRROR_SCHEMA)
    chosen = [r for r in ds.records if r.frame_index % step == 0][:max_frames]
    if not chosen:
        raise DataError(str(video), "frames", "no frame to cache")
    pngs = decode_frames(video, [r.frame_index for r in chosen], out / "frames")
    w, h = ds.records[0].image_size
    records = [PoseRecord(image=str(pngs[r.frame_index]), keypoints=np.zeros((17, 3), np.float32),
                          schema=MIRROR_SCHEMA, bbox=(0.0, 0.0, float(w), float(h)), image_size=(w, h),
                          video_id=video.stem, frame_index=r.frame_index) for r in chosen]
    write_coco(records, path, MIRROR_SCHEMA, info=info)
    return path, len(records)


# --------------------------------------------------------------------------------------------------
# projects


def check_disjoint(ranges: dict[str, tuple[str, str]], records: list[PoseRecord], where: str) -> None:
    """DataError naming ``where`` when two of the named image ranges share an image."""
    names = {k: {Path(r.image).stem for r in records_in_range(records, *v, where)} for k, v in ranges.items()}
    keys = list(names)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            shared = sorted(names[a] & names[b])
            if shared:
                raise DataError(where, "range", f"{a} {ranges[a]} and {b} {ranges[b]} share images "
                                                f"{shared[:3]}: the labelled subsets must be disjoint")


def prepare_mirror(data: Path, out: Path, train_range: tuple[str, str], val_range: tuple[str, str],
                   test_range: tuple[str, str], frame_step: int, max_frames: int | None) -> Prepared:
    """Mirror-mouse: the train / val / test label subsets (by image name, disjoint) and the video frame cache
    under ``out/data``."""
    ds = read_dataset(data, "dlc", MIRROR_SCHEMA)
    where = str(ds.source)
    check_disjoint({"train": train_range, "val": val_range, "test": test_range}, ds.records, where)
    folder = out / "data"
    train_path, n_train = write_subset(ds.records, folder / "train.json", MIRROR_SCHEMA, *train_range, where=where)
    val_path, n_val = write_subset(ds.records, folder / "val.json", MIRROR_SCHEMA, *val_range, where=where)
    test_path, n_test = write_subset(ds.records, folder / "test.json", MIRROR_SCHEMA, *test_range, where=where)
    if not ds.videos:
        raise DataError(where, "videos", "no unlabelled video beside the labels")
    video = Path(sorted(ds.videos)[0])
    frames, n_frames = write_frame_cache(video, folder, frame_step, max_frames)
    val_records = read_dataset(val_path, "coco", MIRROR_SCHEMA).records
    test_records = read_dataset(test_path, "coco", MIRROR_SCHEMA).records
    split = (f"train {train_range[0]}-{train_range[1]}, val {val_range[0]}-{val_range[1]}, test "
             f"{test_range[0]}-{test_range[1]} (labelled frames); unlabelled: every {frame_step}-th frame of "
             f"{video.name}")
    return Prepared(train_path, val_path, test_path, frames, n_train, n_val, n_test, n_frames, split, val_records,
                    test_records)


def sleap_frames(split: SleapSplit, frame_step: int, max_frames: int | None, where: str
                 ) -> tuple[list[int], list[int], list[int], list[int]]:
    """(train, val, unlabelled video, test) frame indices of the SLEAP clip; DataError naming ``where`` unless
    train ends before val starts, and val either ends before the video or, inside it, shares no frame with the
    unlabelled or the test frames (module docstring: the two vals)."""
    train = list(range(*split.train))
    val = list(range(*split.val))
    video = list(range(split.video[0], split.video[1], frame_step))[:max_frames]
    test = list(range(*(split.test or split.video), split.test_step))
    if not train or not val or not video or not test:
        raise DataError(where, "split", f"empty split: train {split.train}, val {split.val}, video {split.video}, "
                                        f"test {split.test or split.video}")
    if max(train) >= min(val):
        raise DataError(where, "split", f"train frames {split.train} reach into the val frames {split.val}: "
                                        "train must end before val starts")
    if max(train) >= min(test) or max(train) >= min(video):
        raise DataError(where, "split", f"train frames {split.train} reach into the video {split.video} or the test "
                                        f"frames {split.test or split.video}: train must end before both start")
    if max(val) >= split.video[0]:
        shared = sorted(set(val) & (set(video) | set(test)))
        if shared or min(val) < split.video[0]:
            raise DataError(where, "split", f"val frames {split.val} reach into the video frames {split.video}"
                                            + (f" and share frames {shared[:3]} with the unlabelled / test frames"
                                               if shared else "") +
                            ": val must end before the video starts, or lie inside it between the unlabelled and "
                            f"test frames (e.g. val ({split.video[0] + 7}, {split.video[1]}, 30) with frame "
                            f"step {frame_step} and test step {split.test_step})")
    return train, val, video, test


def prepare_sleap(data: Path, out: Path, split: SleapSplit, frame_step: int, max_frames: int | None) -> Prepared:
    """The SLEAP clip (module docstring): train / test flies and the unlabelled fly crops under ``out/data``."""
    slp = data if data.suffix == ".slp" else data / "clip.slp"
    ds = read_dataset(slp, "slp")
    where = str(slp)
    schema = ds.meta["schema_def"]
    train_f, val_f, video_f, test_f = sleap_frames(split, frame_step, max_frames, where)
    videos = {r.image for r in ds.records}
    if len(videos) != 1:
        raise DataError(where, "videos", f"expected one labelled video, found {len(videos)}")
    folder = (out / "data").resolve()
    pngs = decode_frames(Path(videos.pop()), [*train_f, *val_f, *video_f, *test_f], folder / "frames")
    by_frame: dict[int, list[PoseRecord]] = {}
    for r in ds.records:
        by_frame.setdefault(r.frame_index, []).append(r)

    def flies(frames: list[int]) -> list[PoseRecord]:
        out_records = []
        for f in frames:
            for r in by_frame.get(f, []):
                box = r.keypoint_box()
                if box is None:
                    continue
                out_records.append(replace(r, image=str(pngs[f]), bbox=box))
        return out_records

    info = {"source": where, "split": {"train": list(split.train), "val": list(split.val), "video": list(split.video),
                                       "test_step": split.test_step, "frame_step": frame_step,
                                       **({"test": list(split.test)} if split.test else {}),
                                       "max_frames": max_frames}}
    train, val, test = flies(train_f), flies(val_f), flies(test_f)
    target_truth = flies(video_f)
    target = [replace(r, keypoints=np.zeros_like(r.keypoints)) for r in target_truth]  # the same flies, unlabelled
    paths = [write_coco(recs, folder / name, schema, info=info)
             for recs, name in ((train, "train.json"), (val, "val.json"), (test, "test.json"),
                                (target, "video_frames.json"))]
    val_records, test_records = read_dataset(paths[1], "coco").records, read_dataset(paths[2], "coco").records
    words = (f"train: every {split.train[2]}-th frame of {split.train[0]}-{split.train[1] - 1} ({len(train_f)} "
             f"frames); val: every {split.val[2]}-th frame of {split.val[0]}-{split.val[1] - 1} ({len(val_f)} "
             f"frames); unlabelled: every {frame_step}-th frame of {split.video[0]}-{split.video[1] - 1}; test: every "
             f"{split.test_step}-th frame of " + (f"{split.test[0]}-{split.test[1] - 1}" if split.test else
                                                    "the same range") + f" ({len(test_f)} frames)")
    return Prepared(paths[0], paths[1], paths[2], paths[3], len(train), len(val), len(test), len(target), words,
                    val_records, test_records, target_truth=target_truth)


def split_calibration(prep: Prepared) -> Prepared:
    """``prep`` with its val frames halved: sorted by image name, the 1st, 3rd, ... frame (every instance in it)
    become the rules' calibration frames (``val_calibration.json`` beside ``val.json``) and only the others are
    scored as val. A rule that reads its calibration frames (``ccssl.joint_gate``, ``presence_quantile``, an
    ``auto`` view reference) is then screened on frames it never read: calibrated on all of val, a gated
    mirror-mouse screen looked 0.36 px better than the same rule calibrated on half and scored on the other
    (BENCHMARKS.md, "A fair screen of the rules that read val, ..."). DataError naming val.json for fewer than 2
    frames."""
    doc = json.loads(prep.val.read_text())
    names = sorted({Path(im["file_name"]).name for im in doc["images"]})
    if len(names) < 2:
        raise DataError(str(prep.val), "images", f"{len(names)} val frame(s): halving val for the calibration "
                                                 "needs at least 2")
    calibrate = set(names[0::2])
    ids = {im["id"] for im in doc["images"] if Path(im["file_name"]).name in calibrate}
    half = {**doc, "images": [im for im in doc["images"] if im["id"] in ids],
            "annotations": [a for a in doc["annotations"] if a["image_id"] in ids]}
    path = write_json_atomic(prep.val.with_name("val_calibration.json"), half)
    scored = [r for r in prep.val_records if Path(r.image).name not in calibrate]
    return replace(prep, calibration=path, num_calibration=len(half["annotations"]), val_records=scored,
                   num_val=len(scored), split=f"{prep.split}; val halved: its frames {', '.join(sorted(calibrate))} "
                                              "calibrate the rules, the others are scored")


def add_held_out_frames(prep: Prepared, test: bool = True) -> Prepared:
    """``prep`` with the images of its held-out frames (every val and test frame, labels dropped) as a second
    unlabelled target (``held_out_frames.json`` beside ``val.json``): the transductive setting, in which the
    adaptation sees the frames it is scored on but never their labels. A lab has unlabelled video of every session it
    will analyse; a benchmark whose held-out frames come from sessions its one unlabelled video does not show
    (mirror-mouse: 90 labelled frames, one 4-s video) can only ask what such video would do by taking the held-out
    images themselves. An instance already in the target (the SLEAP clip's test flies are among its video's) is not
    added twice. Where the target has its truth (``target_truth``), the added instances' truth follows it in the
    same order. ``test=False``: the val frames' images alone, so the test frames stay unseen (inductive)."""
    val = read_dataset(prep.val, "coco")
    have = {_instance(r) for r in read_dataset(prep.frames, "coco").records}
    tests = read_dataset(prep.test, "coco").records if test else []
    truth = [r for r in (*val.records, *tests) if _instance(r) not in have]
    which = "val and test" if test else "val"
    if not truth:
        raise DataError(str(prep.val), "images", f"no {which} instance outside the unlabelled target to add")
    # image ids of two files collide: the writer numbers the images afresh
    unlabelled = [replace(r, keypoints=np.zeros_like(r.keypoints), image_id=None) for r in truth]
    path = write_coco(unlabelled, prep.val.with_name("held_out_frames.json"), dataset_schema(val),
                      info={"held_out_of": [str(prep.val), *([str(prep.test)] if test else [])],
                            "labels": "dropped"})
    return replace(prep, held_out=path, num_held_out=len(unlabelled),
                   target_truth=[*prep.target_truth, *truth] if prep.target_truth else [],
                   split=f"{prep.split}; the {which} frames' images (labels dropped) join the unlabelled target")


def _instance(record: PoseRecord) -> tuple:
    """One animal in one frame: its image (and frame, track) and box."""
    return record.image, record.frame_index, record.instance_id, record.bbox
