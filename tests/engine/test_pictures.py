"""Pictures of a model on its target: the fixed gallery of `evaluate(examples=n)` and the labelled clip."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from animalpose.engine.evaluate import evaluate
from animalpose.engine.pictures import example_indices, find_video, gallery_figure, labelled_clip
from animalpose.plots import save_figure

CLIP = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real" / "sleap-clip" / "clip.mp4"


def test_example_indices_are_evenly_spaced_with_both_ends():
    assert example_indices(10, 4) == [0, 3, 6, 9]
    assert example_indices(8, 3) == [0, 4, 7]  # linspace 0, 3.5, 7 (3.5 rounds to even)
    assert example_indices(3, 8) == [0, 1, 2]  # never more than there are
    assert example_indices(5, 1) == [0]
    assert example_indices(0, 4) == [] and example_indices(5, 0) == []


def test_evaluate_examples_are_fixed_instances_whose_joints_pool_to_the_headline(trained, dots, tmp_path):
    some = evaluate(trained, dots["val"], progress=False, examples=3)
    assert "examples" not in evaluate(trained, dots["val"], progress=False)  # only when asked for
    ex = some["examples"]
    # the same three of the 8 val images for any checkpoint: evenly spaced over the dataset's order
    assert [Path(i["image"]).name for i in ex["items"]] == ["val_0000.png", "val_0004.png", "val_0007.png"]
    assert ex["input_size"] == [64, 64] and len(ex["joints"]) == 17 and ex["skeleton"]
    every = evaluate(trained, dots["val"], progress=False, examples=100)["examples"]["items"]
    assert len(every) == 8
    # the joints coloured green are exactly those PCK@0.05 (crop) counts: every instance pools to the metric
    flags = [c for item in every for c in item["correct"] if c is not None]
    assert len(flags) == 8 * 17
    assert np.mean(flags) == pytest.approx(some["metrics"]["pck_crop@0.05"])
    # predictions in original pixels; the stored matrix maps the label into the 64-px crop
    first = every[0]
    truth = np.asarray(first["truth"])
    assert truth.shape == (17, 3) and np.all(truth[:, 2] == 2)
    m = np.asarray(first["matrix"])
    crop = truth[:, :2] @ m[:, :2].T + m[:, 2]
    assert np.all((crop > -1) & (crop < 65))

    fig = gallery_figure(ex, "trained on dots: val")
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 3
    assert images[0].get_title() == f"val_0000.png: {sum(every[0]['correct'])}/17"
    assert images[0].images[0].get_array().shape == (160, 160, 3)  # the 64-px crop, enlarged
    png = save_figure(fig, tmp_path / "gallery.png")
    assert cv2.imread(str(png)) is not None


def test_labelled_clip_of_the_first_video_among_the_targets(trained, dots, tmp_path):
    # a still-image dataset holds no video; the raw clip's frames are found under its file stem
    assert find_video([dots["val"]], "coco") is None
    found = find_video([dots["val"], CLIP], "coco")
    assert found == {"data": str(CLIP), "video": "clip"}
    gif = labelled_clip(trained, found["data"], found["video"], tmp_path / "clip.gif", "coco", seconds=1.0)
    ok, animation = cv2.imreadanimation(str(gif))
    assert ok
    # 25 fps subsampled to 12.5 (every 2nd frame), 1 s of it; 1024 px frames drawn at 320
    assert len(animation.frames) == 12 and animation.frames[0].shape[:2] == (320, 320)
    assert list(animation.durations) == [80] * 12
    # the pose is drawn: a frame differs from the same video frame resized without it
    from animalpose.data.images import read_image

    plain = cv2.resize(cv2.cvtColor(read_image(CLIP, 2), cv2.COLOR_RGB2BGR), (320, 320), interpolation=cv2.INTER_AREA)
    drawn = animation.frames[1][..., :3]
    assert np.abs(drawn.astype(int) - plain.astype(int)).max() > 100
    with pytest.raises(ValueError, match="no frames of video 'other'"):
        labelled_clip(trained, CLIP, "other", tmp_path / "x.gif", "coco")
