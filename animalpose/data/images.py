"""Image and video-frame access: decode on demand, probe sizes cheaply, name the file on failure.

Readers only reference images; this module is the one place that opens them. Every failure is a
:class:`~animalpose.errors.DataError` naming the file, so a bad image is found without a debugger.

- :func:`read_image` decodes an image file, or one frame of a video, to an (H, W, 3) uint8 RGB array.
- :func:`probe_image_size` reads (width, height) from a PNG or JPEG header without decoding pixels.
- :func:`image_trailer_ok` tells whether a PNG/JPEG file ends where its format says it must
  (a truncated download still decodes partially in OpenCV, so decoding alone does not catch it).
- :class:`VideoFrameReader` keeps a few videos open and reads frames sequentially where it can.

Pixel limit (decompression bombs: a 20000x20000 PNG of a few kB decodes to 1.2 GB): an image or video
frame over :func:`max_image_pixels` (default 100 megapixels, 12 times a 4K frame) is a DataError
naming the file, found from the PNG/JPEG header before any pixel is decoded. Raise it with
``data.max_image_pixels``, ``predict --max-pixels`` or the ``ANIMALPOSE_MAX_IMAGE_PIXELS`` variable.
"""

from __future__ import annotations

import os
import struct
import threading
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from animalpose.data.records import VIDEO_SUFFIXES
from animalpose.errors import DataError, missing_file_reason

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"
_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
# JPEG start-of-frame markers (baseline, extended, progressive, lossless, ...) that carry the size.
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


DEFAULT_MAX_PIXELS = 100_000_000
MAX_PIXELS_ENV = "ANIMALPOSE_MAX_IMAGE_PIXELS"


def max_image_pixels() -> int:
    """The pixel limit in force: ``$ANIMALPOSE_MAX_IMAGE_PIXELS`` when set, else :data:`DEFAULT_MAX_PIXELS`."""
    raw = os.environ.get(MAX_PIXELS_ENV)
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise DataError(f"${MAX_PIXELS_ENV}", MAX_PIXELS_ENV, f"expected a positive whole number, got {raw!r}")
    return value


def set_max_image_pixels(limit: int) -> None:
    """Set the limit for this process and the worker processes it starts (through the environment)."""
    if int(limit) < 1:
        raise DataError("<settings>", "max_image_pixels", f"expected a positive whole number, got {limit}")
    os.environ[MAX_PIXELS_ENV] = str(int(limit))


def check_pixels(path: str | Path, width: int, height: int, limit: int | None = None) -> None:
    """DataError naming ``path`` when width x height exceeds ``limit`` (default :func:`max_image_pixels`)."""
    limit = max_image_pixels() if limit is None else limit
    if int(width) * int(height) > limit:
        raise DataError(str(path), "image", f"{width}x{height} = {width * height / 1e6:.1f} megapixels exceeds the "
                        f"limit of {limit / 1e6:g} megapixels (a decompression bomb?); raise data.max_image_pixels, "
                        f"predict --max-pixels or ${MAX_PIXELS_ENV} to read it")


def header_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from a PNG IHDR or JPEG SOF header without decoding; None for other files."""
    with Path(path).open("rb") as fh:
        head = fh.read(32)
        if head.startswith(_PNG_SIGNATURE) and head[12:16] == b"IHDR":
            width, height = struct.unpack(">II", head[16:24])
            return int(width), int(height)
        if head.startswith(_JPEG_SOI):
            fh.seek(2)
            return _jpeg_size(fh)
    return None


def is_video_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def folder_videos(folder: str | Path) -> list[Path]:
    """The video files directly in ``folder`` (by suffix), sorted; [] when it is not a folder (a project's
    ``videos/``)."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and is_video_path(p)) if folder.is_dir() else []


def probe_image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image, from the PNG IHDR or JPEG SOF header when possible.

    Other formats (and headers this parser does not understand) fall back to a full decode.
    Raises DataError naming the file when it is missing or unreadable.
    """
    path = Path(path)
    try:
        size = header_size(path)
        if size is not None:
            return size
    except (FileNotFoundError, IsADirectoryError):
        raise DataError(str(path), "image", missing_file_reason(path)) from None
    except OSError as exc:
        raise DataError(str(path), "image", f"cannot read: {exc}") from exc
    img = read_image(path)
    return img.shape[1], img.shape[0]


def _jpeg_size(fh) -> tuple[int, int] | None:
    """Walk JPEG marker segments up to the first SOF; None when the stream is not as expected."""
    while True:
        byte = fh.read(1)
        while byte == b"\xff":  # fill bytes before a marker
            byte = fh.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            continue
        seg = fh.read(2)
        if len(seg) < 2:
            return None
        length = struct.unpack(">H", seg)[0]
        if marker in _JPEG_SOF:
            data = fh.read(5)
            if len(data) < 5:
                return None
            height, width = struct.unpack(">HH", data[1:5])
            return int(width), int(height)
        fh.seek(length - 2, 1)


def image_trailer_ok(path: str | Path) -> bool:
    """False when a PNG or JPEG file is cut short (no IEND chunk / no end-of-image marker).

    Other formats return True (their decoder is the only check). Trailing zero padding after the
    JPEG end marker, which some cameras write, is accepted.
    """
    path = Path(path)
    with path.open("rb") as fh:
        head = fh.read(8)
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - 4096))
        tail = fh.read()
    if head.startswith(_PNG_SIGNATURE):
        return tail.rstrip(b"\x00").endswith(_PNG_IEND)
    if head.startswith(_JPEG_SOI):
        return tail.rstrip(b"\x00\r\n ").endswith(_JPEG_EOI)
    return True


def read_image(path: str | Path, frame_index: int | None = None) -> np.ndarray:
    """Decode an image file, or frame ``frame_index`` of a video file.

    Returns:
        (H, W, 3) uint8 RGB. Greyscale and 16-bit images are converted; alpha is dropped.

    Raises:
        DataError naming the file: missing, truncated (PNG/JPEG), undecodable, or a video frame that
        does not exist or cannot be decoded.
    """
    path = Path(path)
    if is_video_path(path):
        return _default_video_reader().read(path, 0 if frame_index is None else frame_index)
    if not path.is_file():
        raise DataError(str(path), "image", missing_file_reason(path))
    if not image_trailer_ok(path):
        raise DataError(str(path), "image", "truncated file (image data ends early)")
    limit = max_image_pixels()
    size = header_size(path)
    if size is not None:  # before decoding: the bomb never reaches memory
        check_pixels(path, *size, limit)
    buf = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if img is None:
        raise DataError(str(path), "image", "cannot decode image")
    check_pixels(path, img.shape[1], img.shape[0], limit)  # formats without a header parser here
    return _to_rgb_uint8(img)


def _to_rgb_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def video_info(path: str | Path) -> dict:
    """Container metadata without decoding: frames, fps, width, height.

    The frame count is what the container declares; :func:`count_video_frames` verifies it by
    decoding. Raises DataError naming the file when it is missing or cannot be opened.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "video", missing_file_reason(path))
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DataError(str(path), "video", "cannot open video")
        info = {
            "frames": int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
            "fps": float(cap.get(cv2.CAP_PROP_FPS)),
            "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        }
    finally:
        cap.release()
    if info["frames"] <= 0 or info["width"] <= 0:
        raise DataError(str(path), "video", "container declares no frames (undecodable video?)")
    check_pixels(path, info["width"], info["height"])
    return info


def count_video_frames(path: str | Path) -> int:
    """Number of frames that actually decode (slow: decodes the whole video)."""
    path = Path(path)
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(str(path), "video", "cannot open video")
    n = 0
    try:
        while cap.grab():
            n += 1
    finally:
        cap.release()
    return n


class VideoFrameReader:
    """Random access to video frames with a small cache of open captures.

    Consecutive requests on one video read on without seeking (fast and exact); other requests
    seek with ``CAP_PROP_POS_FRAMES``. ``max_open`` captures stay open (least recently used closed).
    Thread-safe by a lock: decoding is sequential per reader.
    """

    def __init__(self, max_open: int = 4):
        self.max_open = max_open
        self._caps: OrderedDict[str, tuple[cv2.VideoCapture, list[int]]] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, path: str | Path, frame_index: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB frame ``frame_index`` (0-based) of the video at ``path``."""
        key = str(path)
        with self._lock:
            cap, pos = self._open(key)
            if frame_index < 0:
                raise DataError(key, f"frame {frame_index}", "negative frame index")
            if pos[0] != frame_index:
                cap.set(cv2.CAP_PROP_POS_FRAMES, frame_index)
            ok, frame = cap.read()
            if not ok or frame is None:
                pos[0] = -1
                raise DataError(key, f"frame {frame_index}", "cannot decode frame (past the end or corrupt)")
            pos[0] = frame_index + 1
        return _to_rgb_uint8(frame)

    def _open(self, key: str) -> tuple[cv2.VideoCapture, list[int]]:
        if key in self._caps:
            self._caps.move_to_end(key)
            return self._caps[key]
        if not Path(key).is_file():
            raise DataError(key, "video", missing_file_reason(key))
        cap = cv2.VideoCapture(key)
        if not cap.isOpened():
            raise DataError(key, "video", "cannot open video")
        self._caps[key] = (cap, [0])
        while len(self._caps) > self.max_open:
            _, (old, _) = self._caps.popitem(last=False)
            old.release()
        return self._caps[key]

    def close(self) -> None:
        with self._lock:
            for cap, _ in self._caps.values():
                cap.release()
            self._caps.clear()

    def __enter__(self) -> VideoFrameReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_DEFAULT_READER: VideoFrameReader | None = None


def _default_video_reader() -> VideoFrameReader:
    global _DEFAULT_READER
    if _DEFAULT_READER is None:
        _DEFAULT_READER = VideoFrameReader()
    return _DEFAULT_READER
