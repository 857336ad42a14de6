"""Frames embedded in a SLEAP package (``.pkg.slp``: labels with their images), extracted once to PNG files.

SLEAP's "export labels package" stores each video's labelled frames inside the labels file (SLEAP's
``sleap.io.video.HDF5Video``; sleap-io's ``io.slp`` writes the same layout, format 1.4 adds the channel order):

- ``videos_json[i]`` names the dataset, ``backend.dataset = "video<i>/video"`` (``filename`` "." or the
  file itself);
- ``video<i>/video``: one encoded image per row (attribute ``format``: ``png`` or ``jpg``), as
  variable-length ``int8`` rows (SLEAP) or fixed-length ``int8`` rows zero-padded (sleap-io);
- ``video<i>/frame_numbers``: the source-video frame index of each row;
- attribute ``channel_order``: ``"BGR"`` when the frame array was encoded by OpenCV (decoding with OpenCV
  gives the array back as it was), ``"RGB"`` when encoded as a true RGB image; absent (files before format
  1.4): ``"BGR"``, as SLEAP encoded with OpenCV;
- ``video<i>/source_video`` (attribute or dataset ``json``): the original video's metadata.

The rest of the project reads images from files, so :func:`extract_embedded_frames` writes each embedded
frame to ``<data home>/cache/sleap-pkg/<file stem>-<stamp>/video<i>/<frame>.png`` (the stamp hashes the
file's path, size and modification time, so an edited package is extracted again) and records point at
those files; a finished extraction is reused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from animalpose.atomic import atomic_path, write_json_atomic
from animalpose.errors import DataError
from animalpose.paths import data_home

DONE = "extracted.json"


def embedded_dataset(video) -> str | None:
    """The HDF5 dataset holding ``video``'s embedded frames (a sleap-io ``Video`` loaded with
    ``open_videos=False``), or None for a video that lives in its own file."""
    meta = getattr(video, "backend_metadata", None) or {}
    dataset = meta.get("dataset") or ""
    return dataset if dataset and (meta.get("has_embedded_images") or meta.get("type") == "HDF5Video"
                                   or str(meta.get("filename", "")) == ".") else None


def cache_folder(path: Path) -> Path:
    """Where the frames of the package at ``path`` are extracted to."""
    st = path.stat()
    stamp = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return data_home() / "cache" / "sleap-pkg" / f"{path.name.split('.')[0]}-{stamp}"


def extract_embedded_frames(path: str | Path, dataset: str,
                            out: Path | None = None) -> dict[int, tuple[Path, tuple[int, int]]]:
    """Write every embedded frame of ``dataset`` in the package at ``path`` as a PNG file (once: a finished
    extraction is read back from its index, ``extracted.json``).

    Args:
        out: the extraction folder (default :func:`cache_folder`).

    Returns:
        ``{frame index: (png path, (width, height))}``.

    Raises:
        DataError naming the file and the dataset (row) for a missing dataset or an image that does not decode.
    """
    import cv2
    import h5py

    path = Path(path)
    where = str(path)
    folder = (out or cache_folder(path)) / dataset.split("/")[0]
    done = folder / DONE
    if done.is_file():
        return {int(k): (folder / v["file"], tuple(v["size"])) for k, v in json.loads(done.read_text()).items()}
    try:
        with h5py.File(path, "r") as f:
            if dataset not in f:
                raise DataError(where, dataset, "embedded video dataset not in the file")
            ds = f[dataset]
            parent = dataset.rsplit("/", 1)[0]
            numbers_key = f"{parent}/frame_numbers"
            numbers = (f[numbers_key][:].astype(int).tolist() if numbers_key in f else list(range(len(ds))))
            if len(numbers) != len(ds):
                raise DataError(where, numbers_key, f"{len(numbers)} frame numbers for {len(ds)} embedded images")
            order = ds.attrs.get("channel_order", "BGR")
            order = order.decode() if isinstance(order, bytes) else str(order)
            index: dict[int, tuple[Path, tuple[int, int]]] = {}
            for row, frame in enumerate(numbers):
                raw = np.asarray(ds[row]).view(np.uint8).reshape(-1)
                img = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
                if img is None:
                    raise DataError(where, f"{dataset}[{row}]", f"embedded image of frame {frame} does not decode "
                                    f"(format {ds.attrs.get('format', '?')!r})")
                if img.ndim == 3 and img.shape[2] == 3 and order == "BGR":
                    img = img[..., ::-1]  # OpenCV-encoded frame array: decoding gave that array (RGB) back
                png = folder / f"{frame:06d}.png"
                with atomic_path(png) as tmp:
                    if not cv2.imwrite(str(tmp), np.ascontiguousarray(img)):
                        raise OSError(f"cannot write {png}")
                index[frame] = (png, (int(img.shape[1]), int(img.shape[0])))
    except OSError as exc:
        raise DataError(where, dataset, f"cannot read embedded frames: {exc}") from exc
    write_json_atomic(done, {str(k): {"file": p.name, "size": list(s)} for k, (p, s) in index.items()})
    return index
