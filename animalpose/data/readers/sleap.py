"""SLEAP ``.slp`` labels through ``sleap-io``: one record per labelled instance of a video frame.

The skeleton becomes the schema (:func:`animalpose.keypoints.schema_from_names` with its edges,
named ``sleap:<file stem>`` unless a schema is given). Each record references the video file and
the frame index; ``video_id`` is the video's file stem and ``instance_id`` the track index
(``meta["track"]`` its name). User-labelled instances are preferred over predicted ones: a predicted
instance is kept only when no user instance of the same frame covers its track (or was made from it).
Missing nodes (NaN in SLEAP) get visibility 0, labelled nodes 2.

A labels package (``.pkg.slp``, the frames embedded in the file) is read too: its embedded frames are
extracted once to PNG files (:mod:`animalpose.data.readers.sleap_embedded`) and each record points at its
frame's PNG (``video_id`` and ``frame_index`` still name the source video and frame, ``meta["embedded"]``
the dataset in the package).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from animalpose.data.images import video_info
from animalpose.data.readers.common import schema_by_name
from animalpose.data.readers.sleap_embedded import embedded_dataset, extract_embedded_frames
from animalpose.data.records import PoseDataset, PoseRecord
from animalpose.errors import DataError, missing_file_reason
from animalpose.keypoints import KeypointSchema, schema_from_names


def _video_path(video, slp_path: Path) -> Path:
    raw = video.filename
    if isinstance(raw, list):  # image sequence videos: a list of frame files
        raise DataError(str(slp_path), "videos", "image-sequence videos are not supported; export a video file")
    cand = Path(raw)
    # a copy beside the .slp first: SLEAP records the labeller's own (often absolute) path, which is
    # outside the file's folder, so using it first would need data.allow_outside_root for no reason
    # (a relative path is the .slp's own: relative to its folder, never to the working directory)
    cands = [slp_path.parent / cand.name, cand] if cand.is_absolute() else [slp_path.parent / cand,
                                                                             slp_path.parent / cand.name]
    for p in cands:
        if p.is_file():
            return p
    return cands[-1] if cand.is_absolute() else cands[0]  # missing: named where it was looked for


def read_sleap(path: str | Path, schema: str | KeypointSchema | None = None) -> PoseDataset:
    """Read a ``.slp`` file (or the folder holding one)."""
    import sleap_io

    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*.slp"))
        if not found:
            raise DataError(str(path), "<folder>", "no .slp file found")
        path = found[0]
    where = str(path)
    if not path.is_file():
        raise DataError(where, "<file>", missing_file_reason(path))
    try:
        labels = sleap_io.load_slp(where, open_videos=False)
    except Exception as exc:  # h5py/sleap-io raise many types for a corrupt file
        raise DataError(where, "<file>", f"cannot read SLEAP file: {type(exc).__name__}: {exc}") from exc
    if not labels.skeletons:
        raise DataError(where, "skeletons", "no skeleton in file")
    if len(labels.skeletons) > 1:
        raise DataError(where, "skeletons", f"{len(labels.skeletons)} skeletons; only one is supported")
    skel = labels.skeletons[0]
    names = list(skel.node_names)
    if schema is None:
        edges = [(names[a], names[b]) for a, b in skel.edge_inds]
        # a package (labels.pkg.slp) names its schema like its labels file (labels.slp)
        resolved = schema_from_names(f"sleap:{path.name.removesuffix('.slp').removesuffix('.pkg')}", names, edges)
    else:
        resolved = schema_by_name(schema)
        if resolved.num_joints != len(names):
            raise DataError(where, "skeletons[0].nodes",
                            f"{len(names)} nodes but schema {resolved.name!r} has {resolved.num_joints}")
    tracks = list(labels.tracks)
    # a package's embedded frames: {video index: {frame index: (png, (w, h))}}, and the source video's stem
    embedded = {v: extract_embedded_frames(path, ds) for v, video in enumerate(labels.videos)
                if (ds := embedded_dataset(video)) is not None}
    video_paths = [_video_path(v.source_video if i in embedded and v.source_video is not None else v, path)
                   for i, v in enumerate(labels.videos)]
    videos: dict[str, int] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for i, vp in enumerate(video_paths):
        if i in embedded:
            continue  # its frames are the extracted PNGs; the source video need not exist
        try:
            info = video_info(vp)
        except DataError:
            continue  # reported by check as a missing/undecodable video
        videos[str(vp)] = info["frames"]
        sizes[str(vp)] = (info["width"], info["height"])
    records = []
    for f, lf in enumerate(labels.labeled_frames):
        v = labels.videos.index(lf.video)
        vp = str(video_paths[v])
        image, size = vp, sizes.get(vp)
        if v in embedded:
            if int(lf.frame_idx) not in embedded[v]:
                raise DataError(where, f"labeled_frames[{f}]", f"frame {lf.frame_idx} of video {v} is not embedded "
                                "in the package")
            png, size = embedded[v][int(lf.frame_idx)]
            image = str(png)
        user = list(lf.user_instances)
        covered_tracks = {id(i.track) for i in user if i.track is not None}
        sources = {id(i.from_predicted) for i in user if getattr(i, "from_predicted", None) is not None}
        chosen = [(i, False) for i in user]
        for inst in lf.predicted_instances:
            if id(inst) in sources or (inst.track is not None and id(inst.track) in covered_tracks):
                continue
            chosen.append((inst, True))
        for n, (inst, predicted) in enumerate(chosen):
            xy = np.asarray(inst.numpy(), dtype=np.float32)[:, :2]
            kps = np.zeros((len(names), 3), dtype=np.float32)
            ok = np.isfinite(xy).all(axis=1)
            kps[ok, :2] = xy[ok]
            kps[ok, 2] = 2.0
            meta = {"origin": (where, f"labeled_frames[{f}].instances[{n}]"),
                    "track": inst.track.name if inst.track is not None else None, "predicted": predicted}
            if predicted and getattr(inst, "score", None) is not None:
                meta["score"] = float(inst.score)
            if v in embedded:
                meta["embedded"] = embedded_dataset(labels.videos[v])
            records.append(PoseRecord(
                image=image, keypoints=kps, schema=resolved.name, image_size=size,
                video_id=Path(vp).stem, frame_index=int(lf.frame_idx),
                instance_id=tracks.index(inst.track) if inst.track in tracks else None, meta=meta,
            ))
    meta = {"annotation_file": where, "schema_def": resolved, "tracks": [t.name for t in tracks],
            "image_root": str(path.parent)}
    return PoseDataset(records, resolved.name, "slp", where, videos=videos, meta=meta)
