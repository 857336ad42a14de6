"""A lab's own project to ready-to-run configs: ``animalpose init --from-dlc PROJECT`` / ``--from-lp DATA|CONFIG``
/ ``--from-sleap FILE``.

Reads the labelled frames (a DeepLabCut project: ``config.yaml`` + ``labeled-data/<video>/CollectedData_*``,
:func:`~animalpose.data.readers.dlc.read_dlc_project`; a Lightning Pose data folder or config,
:func:`~animalpose.data.readers.lp_project.read_lp_project`, whose mirror rig's views become train.yaml's
``multiview.views``; a SLEAP ``.slp``), makes a seeded train / val /
test split (:mod:`animalpose.data.split`: by video when the project has at least three, else by frame),
and writes into the output folder::

    data/train.json, data/val.json, data/test.json, data/split.json    the split (paths relative to data/)
    data/video_frames.json   a SLEAP file's predicted animals on its unlabelled frames: CC-SSL's target
    train.yaml          supervised training on data/train.json, the epoch chosen on data/val.json
    adapt_ccssl.yaml    CC-SSL on the project's videos (base: train.yaml), supervised training first

A SLEAP file's predicted instances (SLEAP's own inference, saved into the ``.slp``) are never labels: they are
left out of the split, and those on frames without a user label give CC-SSL its unlabelled animals (each one's
box and track; :func:`sleap_target`). Without predictions a SLEAP file gets no ``adapt_ccssl.yaml``: its animals
are cropped around their keypoints, and nothing says where they are on an unlabelled frame (no detector here).

Every path in them is relative to the file, so the folder works from any working directory and moves
with the project. The schema is the project's own (its body parts, from the label files' header); the
configs leave ``data.schema`` unset and carry the joint count (``model.num_joints``), the body-part names
sit in the header comment. Both files are loaded and validated before this returns.

The model settings are those of the mirror-mouse experiment (``configs/experiments/mirror_mouse.yaml``:
a one-stack hourglass of 64 channels at 128 px, whole-frame crops for single-animal DLC frames, no flip
augmentation: a flipped rig is not a view the camera ever sees).
"""

from __future__ import annotations

import itertools
import math
import os
import textwrap
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import numpy as np
import yaml

from animalpose.atomic import write_text_atomic
from animalpose.data.coco_writer import write_coco
from animalpose.data.images import video_info
from animalpose.data.readers import dataset_schema, read_dataset
from animalpose.data.records import PoseDataset, PoseRecord
from animalpose.data.split import SplitBy, images_outside, one_per_frame, session_of, split_records, write_split
from animalpose.data.validate import validate_dataset
from animalpose.errors import DataError

# CC-SSL pseudo-labels about this many frames per video per round (a 250-fps video is mostly repeats)
TARGET_FRAMES_PER_VIDEO = 300
# CC-SSL's weight of the pseudo-labels and the share of joints kept each round in a SLEAP file's config: the SLEAP
# clip template's (chosen on its lab val, BENCHMARKS.md "λ 2 and the top 80 %", "Every pseudo-label on the SLEAP
# clip")
SLEAP_LAMBDA = 2.0
SLEAP_KEEP = 1.0


@dataclass
class Target:
    """Unlabelled animals of instance crops (a SLEAP file's predictions): CC-SSL's target."""
    records: list[PoseRecord]  # keypoints all zero, each with its box (and track, where tracked)
    step: int  # frame-index step between a track's consecutive target frames (ccssl.video_step)
    tracked: bool  # every record has a track id: the temporal checks can follow each animal


def sleap_target(predicted: list[PoseRecord], per_video: int = TARGET_FRAMES_PER_VIDEO) -> Target | None:
    """The predicted animals of about ``per_video`` frames of each video, as CC-SSL's unlabelled target.

    The kept frames are ``first + n * step`` of each video, ``step`` a multiple of the predictions' own spacing
    (SLEAP can predict every N-th frame) chosen so that the longest video keeps about ``per_video`` frames: a
    track's consecutive target frames are then exactly ``step`` apart, as the temporal check and the
    optical-flow check assume (``ccssl.video_step``). Each record keeps its box (around its predicted keypoints)
    and track, and loses its keypoints: a prediction is not a label. None when no prediction has a keypoint.
    """
    boxed = [(r, r.keypoint_box()) for r in predicted if r.frame_index is not None]
    boxed = [(r, b) for r, b in boxed if b is not None]
    if not boxed:
        return None
    frames: dict[str, list[int]] = {}
    for r, _ in boxed:
        frames.setdefault(str(r.video_id), []).append(int(r.frame_index))
    frames = {v: sorted(set(f)) for v, f in frames.items()}
    spacing = math.gcd(*[b - a for f in frames.values() for a, b in itertools.pairwise(f)]) or 1
    longest = max((f[-1] - f[0]) // spacing + 1 for f in frames.values())
    step = spacing * max(1, math.ceil(longest / per_video))
    records = [replace(r, keypoints=np.zeros_like(r.keypoints), bbox=b) for r, b in boxed
               if (int(r.frame_index) - frames[str(r.video_id)][0]) % step == 0]
    return Target(records, step, all(r.instance_id is not None for r in records))


@dataclass
class InitResult:
    out: Path
    train_config: Path
    adapt_config: Path | None
    split: dict[str, Path]
    schema: str
    bodyparts: list[str]
    videos: list[Path]
    by: str
    notes: list[str] = field(default_factory=list)


def _check_target_frames(value: int, where: str) -> int:
    """``target_frames`` itself; DataError naming it when below 1."""
    if value < 1:
        raise DataError(where, "target_frames", f"must be at least 1, got {value}")
    return value


def _rel(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(folder))).as_posix()


def _dump(header: list[str], body: dict) -> str:
    return "".join(f"# {line}\n" if line else "#\n" for line in header) + yaml.safe_dump(
        body, sort_keys=False, default_flow_style=None, width=110)


def init_project(dataset: PoseDataset, videos: list[Path], out: str | Path, *, source: str, val: float = 0.1,
                 test: float = 0.1, by: SplitBy | None = None, seed: int = 0, whole_frame: bool | None = None,
                 adapt: bool = True, notes: list[str] | None = None, allow_outside_root: bool = False,
                 target: Target | None = None, views: list[list[str]] | None = None,
                 target_frames: int = TARGET_FRAMES_PER_VIDEO) -> InitResult:
    """Split ``dataset``, write the two configs into ``out`` and validate them.

    Args:
        dataset: the labelled frames (their schema: the project's).
        videos: the project's videos, the unlabelled target of ``adapt_ccssl.yaml``.
        source: what the configs were made from (named in their header).
        by: "video" or "frame"; None: by video when there are at least 3 videos with labels, else by frame.
        whole_frame: crop each labelled frame whole (DeepLabCut's way), or around each instance's keypoints
            (False); None: whole-frame when every frame holds one animal.
        target_frames: about this many frames of the longest video are CC-SSL's target each round (the
            videos' frame step, ``ccssl.video_step``, is chosen so); a SLEAP file's target is chosen by the caller.
        adapt: write ``adapt_ccssl.yaml``: on the videos, cropped whole-frame as the labelled frames must be
            then, or with instance crops on ``target``.
        allow_outside_root: keep labelled frames whose paths resolve outside the project (links leading out).
        target: the unlabelled animals of instance crops (:func:`sleap_target`), written as
            ``data/video_frames.json``.
        views: a multi-view rig's body parts, each one's keypoint in every view: train.yaml's ``multiview.views``
            (the views' subspace is fitted and stored; no group is mended until the user names one).
    """
    from animalpose.config import load_config

    out = Path(out)
    notes = list(notes or [])
    schema = dataset_schema(dataset)
    if schema is None:
        raise DataError(dataset.source, "schema", "no keypoint labels to train on")
    _check_target_frames(target_frames, source)  # these checks before anything is written
    unknown = sorted({n for part in views or [] for n in part} - set(schema.joints))
    if unknown:
        raise DataError(source, "views", f"keypoints {unknown} are not among the labels' body parts")
    records = [r for r in validate_dataset(dataset, schema, allow_outside_root=allow_outside_root).records
               if (r.keypoints[:, 2] > 0).any()]
    if not records:
        raise DataError(dataset.source, "annotations", "no labelled frame")
    if whole_frame is None:
        whole_frame = one_per_frame(records)
    sessions = sorted({session_of(r) for r in records})
    if by is None:
        by = "video" if len(sessions) >= 3 else "frame"
        if by == "frame":
            notes.append(f"{len(sessions)} labelled video(s): split by frame, so val/test frames have neighbours "
                         "in train; label frames of more videos for an honest held-out error")
    splits = split_records(records, val, test, by=by, seed=seed, where=dataset.source)
    data_dir = out / "data"
    paths = write_split(splits, schema, data_dir, manifest={"source": source, "seed": seed, "by": by,
                                                            "val": val, "test": test},
                        whole_frame=whole_frame)
    # the project's own images, outside data/ (labeled-data/ beside it): the configs opt in to reading them
    outside = images_outside(splits, data_dir)
    counts = {k: len(v) for k, v in splits.items()}
    header = [f"{schema.name}: made by `animalpose init` from {source} on {date.today().isoformat()}.",
              f"{schema.num_joints} body parts (the schema is the project's own, from its label files):",
              *textwrap.wrap(", ".join(schema.joints), 100, initial_indent="  ", subsequent_indent="  "),
              f"Split (data/split.json, seed {seed}, by {by}): train {counts['train']}, val {counts['val']}, "
              f"test {counts['test']} labelled instances; the epoch is chosen on val, test is never looked at.",
              "Run: animalpose train --config train.yaml",
              "Score: animalpose evaluate --checkpoint CHECKPOINT --data data/test.json"
              + (" --allow-outside-root" if outside else "")]
    train = {
        "data": {"train": [_rel(paths["train"], out)], "val": [_rel(paths["val"], out)] if "val" in paths else [],
                 "input_size": [128, 128], "heatmap_size": [32, 32],
                 **({"bbox_padding_real": 1.0} if whole_frame else {}),
                 **({"allow_outside_root": True} if outside else {}), "workers": 0},
        "model": {"name": "hourglass1", "channels": 64, "num_joints": schema.num_joints},
        "codec": {"kind": "dark", "sigma": 1.5},
        "augment": {"preset": "hourglass", "scale": [0.85, 1.15], "rotation": 20.0, "flip_prob": 0.0},
        # 180 epochs, the rate cut at 144: chosen on val for both real lab projects of issue 23 (mirror-mouse,
        # the SLEAP clip); at 90 both were far from trained (BENCHMARKS.md, "From trained-out models")
        "train": {"optimizer": "adam", "lr": 2.0e-3, "epochs": 180, "milestones": [144], "batch_size": 8,
                  "flip_test": False, "select_on": "val" if "val" in paths else "last", "device": "auto"},
        "tracking": {"experiment": schema.name.replace(":", "-")},
    }
    if views and "val" in paths:
        # on the real mirror-mouse test frames, the groups found on a 10-frame val mended every model of 3 seeds
        # (BENCHMARKS.md, "multiview.correct: auto")
        train["multiview"] = {"views": views, "correct": "auto"}
        header += [f"multiview.views: the rig's {len(views)} body parts seen in {len(views[0])} views; correct: auto "
                   "mends, in every prediction, the look-alike",
                   "parts (paws) the trained model swaps on data/val.json, from the view it places them best in "
                   "(found when training ends;",
                   "`evaluate` names them). To name the groups yourself: multiview.correct: [[...]] and "
                   "multiview.reference (README, multi-view rig)."]
    elif views:
        train["multiview"] = {"views": views}
        header += [f"multiview.views: the rig's {len(views)} body parts seen in {len(views[0])} views; to mend a group "
                   "of look-alike parts (paws) in every prediction, add",
                   "multiview.correct: [[...]] and multiview.reference (correct: auto finds them, but needs a val "
                   "split: init --val)",
                   "(README, multi-view rig)."]
    train_path = write_text_atomic(out / "train.yaml", _dump(header, train))
    load_config(train_path)  # validate now, not at the user's first run
    adapt_path = None
    if adapt and not whole_frame and target is None:
        adapt = False
        notes.append("adapt_ccssl.yaml not written: the labelled animals are cropped around their keypoints, and "
                     "nothing gives their boxes on the unlabelled frames (a SLEAP file gives them by its predicted "
                     "instances: run SLEAP's inference on the video and save the predictions into the .slp)")
    if adapt and not whole_frame:
        adapt_path = _write_instance_adapt(out, data_dir, schema, target, source, notes)
    elif adapt and videos:
        adapt_path = _write_video_adapt(out, videos, source, target_frames, rig=bool(views) and "val" in paths)
    elif adapt:
        notes.append("no video found: adapt_ccssl.yaml not written")
    return InitResult(out, train_path, adapt_path, paths, schema.name, list(schema.joints), list(videos), by, notes)


def _write_video_adapt(out: Path, videos: list[Path], source: str, target_frames: int, rig: bool) -> Path:
    """``adapt_ccssl.yaml`` on the raw videos, cropped whole-frame (DeepLabCut's single-animal frames); ``rig``: a
    multi-view rig with a val split, which gets the mirror-mouse rig's best setting (below)."""
    frames = max(video_info(v)["frames"] for v in videos)
    step = max(1, math.ceil(frames / target_frames))
    ccssl = {"source_epochs": 180, "regenerate_every": 9, "lambda_target": 1.0, "keep_fractions": [0.2, 0.2, 0.2],
             "num_geometric": 4, "scale_sigma": 0.1, "rotation_sigma": 10.0, "num_photometric": 2, "temporal": True,
             "video_step": step, "gallery": 4}
    rounds = "the top 20% of joint confidences each"
    if rig:
        # the mirror-mouse rig's setting chosen on its fair val screen (BENCHMARKS.md "What `init` writes for a
        # mirror rig"): every pseudo-label that lies within 20 px of its track neighbours, the views' median as its
        # point, the joint gate and presence floors calibrated on data/val.json, and the look-alike parts the source
        # model confuses on val re-assigned across the views
        ccssl.update(keep_fractions=[1.0, 1.0, 1.0], temporal_agreement=20.0, label_point="median_views",
                     joint_gate=0.2, presence_quantile=0.05, view_assignment="auto", view_assignment_reference="auto")
        rounds = ("every pseudo-label the checks pass, look-alike parts re-assigned across the views, the joint gate "
                  "and presence floors calibrated on data/val.json")
    ada = {
        "base": "train.yaml",
        "data": {"target": [_rel(v, out) for v in videos]},
        # 27 epochs in rounds of 9: on both real projects of issue 23 the longer schedule made the control
        # and CC-SSL better than 9 in rounds of 3 (BENCHMARKS.md, "27 epochs"); at 2e-4, the rate the
        # supervised schedule ends at (at 5e-4 the control fell behind the model it continued: "From
        # trained-out models")
        "train": {"lr": 2.0e-4, "epochs": 27, "milestones": []},
        "ccssl": ccssl,
    }
    header = textwrap.wrap(f"CC-SSL on the unlabelled video(s) of {source}: 180 epochs of supervised training on "
                           f"data/train.json, then 27 epochs in 3 rounds of pseudo-labels ({rounds}) on "
                           f"{'every' if step == 1 else f'every {step}-th'} video frame (lambda 1, consistency "
                           "views sized to a fixed camera).", 110)
    return _write_adapt(out, header, ada)


def _write_adapt(out: Path, header: list[str], body: dict) -> Path:
    """Write ``out/adapt_ccssl.yaml`` (``header`` then the lines every such config ends its header with) and
    validate it now, not at the user's first run."""
    from animalpose.adapt.ccssl import CCSSLConfig
    from animalpose.config import load_config

    header = [*header,
              "`animalpose adapt ccssl` also trains the supervised control (the same epochs on the labels alone),",
              "scores both and the supervised model on data/val.json and keeps the best as final.ckpt "
              "(--no-control: CC-SSL only).",
              "Run: animalpose adapt ccssl --config adapt_ccssl.yaml",
              "(after `animalpose train --config train.yaml`, add ccssl.source_checkpoint=<its best.ckpt> to adapt "
              "that model instead of training one first)"]
    path = write_text_atomic(out / "adapt_ccssl.yaml", _dump(header, body))
    load_config(path, CCSSLConfig)
    return path


def _write_instance_adapt(out: Path, data_dir: Path, schema, target: Target, source: str, notes: list[str]) -> Path:
    """``adapt_ccssl.yaml`` on ``target``'s animals, each cropped around its box as the labelled ones are: the
    SLEAP clip's template (configs/adapt/ccssl_sleap_clip.yaml, chosen on its lab val), for free-moving animals."""
    # the target's own videos may lie elsewhere than the labelled ones (a video SLEAP only predicted on)
    outside = images_outside({"target": target.records}, data_dir)
    rows = [replace(r, image=_rel(Path(r.image), data_dir)) for r in target.records]
    frames = len({(r.video_id, r.frame_index) for r in target.records})
    path = write_coco(rows, data_dir / "video_frames.json", schema, image_root=data_dir,
                      info={"split": "target", "source": source, "video_step": target.step})
    ccssl = {"source_epochs": 180, "regenerate_every": 9, "lambda_target": SLEAP_LAMBDA,
             "keep_fractions": [SLEAP_KEEP] * 5, "num_geometric": 4, "scale_sigma": 0.1,
             "rotation_sigma": 30.0, "num_photometric": 2, "temporal": target.tracked, "video_step": target.step,
             "gallery": 4}
    if target.tracked:
        ccssl["temporal_agreement"] = 20.0
    else:
        notes.append("the predicted instances have no tracks: adapt_ccssl.yaml turns the temporal checks off "
                     "(they follow each animal by its track)")
    ada = {"base": "train.yaml",
           "data": {"target": [_rel(path, out)], **({"allow_outside_root": True} if outside else {})},
           # the SLEAP clip's schedule: 45 epochs in 5 rounds of 9 at 2e-4 (BENCHMARKS.md, "From trained-out
           # models"; "λ 2 and the top 80 %"; "Every pseudo-label on the SLEAP clip")
           "train": {"lr": 2.0e-4, "epochs": 45, "milestones": []},
           "ccssl": ccssl}
    header = [f"CC-SSL on the unlabelled frames of {source}: 180 epochs of supervised training on data/train.json,",
              f"then 45 epochs in 5 rounds of pseudo-labels on the {len(rows)} animals SLEAP predicted on "
              f"{frames} unlabelled frames",
              f"(data/video_frames.json: {'every' if target.step == 1 else f'every {target.step}-th'} frame, each "
              "animal's box and track, its predicted "
              "keypoints dropped);",
              (f"the top {SLEAP_KEEP:.0%} of joint confidences" if SLEAP_KEEP < 1 else "every pseudo-label the checks "
               "pass") + f" each round, lambda {SLEAP_LAMBDA:g}"
              + (", pseudo-labels more than 20 px from their track neighbours' midpoint dropped." if target.tracked
                 else "; no temporal check (untracked).")]
    return _write_adapt(out, header, ada)


def init_from_dlc(project: str | Path, out: str | Path | None = None, **options) -> InitResult:
    """:func:`init_project` for a DeepLabCut project folder (default output: ``PROJECT/animalpose``)."""
    from animalpose.data.readers.dlc import read_dlc_project

    project = Path(project)
    dataset = read_dlc_project(project)
    notes = [f"video listed in config.yaml but not found: {v}" for v in dataset.meta["missing_videos"]]
    return init_project(dataset, [Path(v) for v in dataset.videos], out or project / "animalpose",
                        source=f"the DeepLabCut project {project.resolve()}", notes=notes, **options)


def init_from_lp(path: str | Path, out: str | Path | None = None, **options) -> InitResult:
    """:func:`init_project` for a Lightning Pose data folder or config file (default output:
    ``<data_dir>/animalpose``); a config's ``mirrored_column_matches`` become ``multiview.views``."""
    from animalpose.data.readers.dlc import read_dlc
    from animalpose.data.readers.lp_project import read_lp_project

    project = read_lp_project(path)
    dataset = read_dlc(project.csv)
    header = list(dataset.meta["schema_def"].joints)
    if project.keypoint_names is not None and project.keypoint_names != header:
        raise DataError(str(path), "data.keypoint_names", f"{project.keypoint_names} differ from the body parts of "
                        f"{project.csv}: {header}")
    return init_project(dataset, project.videos, out or project.data_dir / "animalpose", source=project.source,
                        notes=project.notes, views=project.views, **options)


def init_from_sleap(slp: str | Path, out: str | Path | None = None, **options) -> InitResult:
    """:func:`init_project` for a SLEAP ``.slp`` (default output: ``<folder>/<stem>-animalpose``).

    Instances are cropped around their keypoints (SLEAP arenas are large and often hold several animals). Only
    user-labelled instances are labels: the predicted ones (SLEAP's inference) on frames without a user label
    become CC-SSL's target (:func:`sleap_target`); without any, no ``adapt_ccssl.yaml`` is written."""
    slp = Path(slp)
    per_video = _check_target_frames(options.get("target_frames", TARGET_FRAMES_PER_VIDEO), str(slp))
    dataset = read_dataset(slp, "slp")
    user = [r for r in dataset.records if not r.meta.get("predicted")]
    predicted = [r for r in dataset.records if r.meta.get("predicted")]
    labelled = {(r.video_id, r.frame_index) for r in user}
    unlabelled = [r for r in predicted if (r.video_id, r.frame_index) not in labelled]
    notes = []
    if predicted:
        notes.append(f"{len(predicted)} predicted instances are not labels and are left out of the split; "
                     f"{len(unlabelled)} of them, on frames without a user label, are CC-SSL's unlabelled target"
                     + ("" if len(unlabelled) == len(predicted) else
                        f" (the other {len(predicted) - len(unlabelled)} on frames with a user label are dropped)"))
    target = sleap_target(unlabelled, per_video) if unlabelled else None
    return init_project(replace(dataset, records=user), [Path(v) for v in dataset.videos],
                        out or slp.parent / f"{slp.stem}-animalpose", source=f"the SLEAP file {slp.resolve()}",
                        whole_frame=False, target=target, notes=notes, **options)
