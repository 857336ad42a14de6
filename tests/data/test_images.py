"""Image and video-frame access: colour order, sizes from headers, truncated/missing/corrupt files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from animalpose.data.images import (
    VideoFrameReader,
    count_video_frames,
    image_trailer_ok,
    probe_image_size,
    read_image,
    video_info,
)
from animalpose.errors import DataError


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_read_image_is_rgb_and_probe_matches(tmp_path, suffix):
    bgr = np.zeros((24, 40, 3), np.uint8)
    bgr[..., 2] = 250  # red in OpenCV's BGR order
    path = tmp_path / f"red{suffix}"
    cv2.imwrite(str(path), bgr)
    img = read_image(path)
    assert img.shape == (24, 40, 3) and img.dtype == np.uint8
    assert img[..., 0].mean() > 240 and img[..., 2].mean() < 10  # red first
    assert probe_image_size(path) == (40, 24)
    assert image_trailer_ok(path)


def test_greyscale_and_16_bit_become_rgb_uint8(tmp_path):
    grey = tmp_path / "g.png"
    cv2.imwrite(str(grey), np.full((5, 7), 100, np.uint8))
    assert read_image(grey).shape == (5, 7, 3) and read_image(grey)[0, 0].tolist() == [100, 100, 100]
    deep = tmp_path / "d.png"
    cv2.imwrite(str(deep), np.full((5, 7), 256 * 200, np.uint16))
    assert read_image(deep)[0, 0].tolist() == [200, 200, 200]


def test_probe_reads_only_the_header(tmp_path):
    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), np.zeros((300, 500, 3), np.uint8))
    data = path.read_bytes()
    cut = tmp_path / "head.jpg"
    cut.write_bytes(data[: len(data) // 3])  # pixels cut off, header intact
    assert probe_image_size(cut) == (500, 300)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_image_names_the_file(tmp_path, suffix):
    path = tmp_path / f"t{suffix}"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(path), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.7)])
    assert not image_trailer_ok(path)
    with pytest.raises(DataError, match="truncated") as err:
        read_image(path)
    assert err.value.file == str(path)


def test_missing_and_corrupt_images(tmp_path):
    with pytest.raises(DataError, match="not found") as err:
        read_image(tmp_path / "nope.png")
    assert err.value.file == str(tmp_path / "nope.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"hello, not an image")
    with pytest.raises(DataError, match="cannot decode"):
        read_image(junk)
    with pytest.raises(DataError, match="not found"):
        probe_image_size(tmp_path / "nope.jpg")


def test_video_frames_by_index(tmp_path, write_video):
    path = write_video(tmp_path / "v.mp4", frames=10)
    assert video_info(path)["frames"] == 10 and count_video_frames(path) == 10
    # frame i is grey 20*i (lossy codec: a few levels off)
    assert abs(read_image(path, 5).mean() - 100) < 8
    with VideoFrameReader() as reader:
        means = [reader.read(path, i).mean() for i in (2, 3, 4, 8, 1)]  # sequential, then seeking
    np.testing.assert_allclose(means, [40, 60, 80, 160, 20], atol=8)
    with pytest.raises(DataError, match="frame 10") as err:
        read_image(path, 10)
    assert err.value.file == str(path)
    with pytest.raises(DataError, match="not found"):
        read_image(tmp_path / "missing.mp4", 0)


def test_reader_closes_least_recently_used(tmp_path, write_video):
    paths = [write_video(tmp_path / f"v{i}.mp4", frames=2) for i in range(3)]
    reader = VideoFrameReader(max_open=2)
    for p in paths:
        reader.read(p, 1)
    assert list(reader._caps) == [str(paths[1]), str(paths[2])]
    reader.close()
    assert not reader._caps
