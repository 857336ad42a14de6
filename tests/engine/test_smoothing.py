"""Track smoothing (animalpose.engine.smoothing), per-joint drawing (animalpose.engine.drawing),
`predict --smooth` on a generated video, and `predict` with an ensemble of checkpoints (with `--smooth eks`)."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from animalpose.cli import app
from animalpose.engine.drawing import PANEL, draw_pose, joint_colours, legend_width, with_legend
from animalpose.engine.ensemble import eks_smooth, ensemble_pose
from animalpose.engine.predict import predict
from animalpose.engine.smoothing import SmoothingConfig, fill_gaps, kalman_smooth, smooth_track
from animalpose.errors import ConfigError, DataError

T = 240


def _truth(t: np.ndarray) -> np.ndarray:
    """(T, 2, 3): two keypoints on smooth curves, likelihood 0.9."""
    tr = np.zeros((len(t), 2, 3))
    tr[:, 0, 0], tr[:, 0, 1] = 100 + 40 * np.sin(t / 15), 80 + 30 * np.cos(t / 20)
    tr[:, 1, 0], tr[:, 1, 1] = 60 + 0.5 * t, 50 + 20 * np.sin(t / 30)
    tr[:, :, 2] = 0.9
    return tr


def _error(track: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(track[..., :2] - truth[..., :2], axis=-1).mean())


@pytest.mark.parametrize("method", ["savgol", "kalman"])
def test_a_constant_velocity_track_passes_through_unchanged(method):
    t = np.arange(50)
    track = np.zeros((50, 3, 3))
    track[:, :, 0] = 5 + 1.5 * t[:, None] * np.array([1, -2, 0.5])
    track[:, :, 1] = 100 - 0.7 * t[:, None]
    track[:, :, 2] = np.linspace(0.3, 1.0, 50)[:, None]  # the likelihood changes nothing on a clean track
    assert np.allclose(smooth_track(track, SmoothingConfig(method)), track, atol=1e-9)


@pytest.mark.parametrize("method", ["savgol", "kalman"])
def test_smoothing_lowers_the_error_of_a_noisy_track(method):
    rng = np.random.default_rng(0)
    truth = _truth(np.arange(T, dtype=float))
    noisy = truth.copy()
    noisy[..., :2] += rng.normal(0, 3, size=(T, 2, 2))
    smoothed = smooth_track(noisy, SmoothingConfig(method))
    assert _error(smoothed, truth) < 0.7 * _error(noisy, truth)
    assert np.array_equal(smoothed[..., 2], noisy[..., 2])  # likelihoods as predicted
    # frames lost by the network (a jump of ~40 px, likelihood 0.05) are filled / skipped, not followed
    lost = rng.random(T) < 0.1
    noisy[lost, 0, :2] += rng.normal(0, 40, size=(lost.sum(), 2))
    noisy[lost, 0, 2] = 0.05
    smoothed = smooth_track(noisy, SmoothingConfig(method))
    assert _error(smoothed[:, :1], truth[:, :1]) < 0.5 * _error(noisy[:, :1], truth[:, :1])
    # without the likelihood (every frame confident) the outliers pull the track away
    blind = smooth_track(np.concatenate([noisy[..., :2], np.ones((T, 2, 1))], -1), SmoothingConfig(method))
    assert _error(smoothed[:, :1], truth[:, :1]) < _error(blind[:, :1], truth[:, :1])


def test_savgol_fills_low_confidence_frames_by_interpolation():
    xy = np.array([[0.0, 0.0], [99.0, 99.0], [2.0, 4.0], [3.0, 6.0], [50.0, 50.0]])
    good = np.array([True, False, True, True, False])
    # frame 1 between (0, 0) and (2, 4): (1, 2); frame 4 after the last good frame: held at (3, 6)
    assert fill_gaps(xy, good).tolist() == [[0, 0], [1, 2], [2, 4], [3, 6], [3, 6]]
    track = np.concatenate([xy, np.array([[0.9], [0.01], [0.9], [0.9], [0.02]])], -1)[:, None]
    out = smooth_track(track, SmoothingConfig("savgol", window=3, polyorder=1))
    # a 3-frame linear fit over the filled track [0, 1, 2, 3, 3] (x): ends by the edge fit
    assert out[:, 0, 0] == pytest.approx([0.0, 1.0, 2.0, 8 / 3, 19 / 6])


def test_kalman_weighs_a_measurement_by_its_likelihood():
    z = np.zeros((21, 2))
    z[10] = 10.0  # one jump in the middle of a still track
    w_sure = np.full((21, 2), 1.0)
    w_unsure = w_sure.copy()
    w_unsure[10] = 0.3
    sure = kalman_smooth(z, w_sure, 1.0, 2.0)[10, 0]
    unsure = kalman_smooth(z, w_unsure, 1.0, 2.0)[10, 0]
    missing = kalman_smooth(z, np.where(np.arange(21)[:, None] == 10, 0.0, 1.0), 1.0, 2.0)[10, 0]
    assert 10 > sure > unsure > missing == pytest.approx(0.0, abs=1e-9)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="odd number"):
        SmoothingConfig("savgol", window=6)
    with pytest.raises(ValueError, match="not one of none, savgol, kalman"):
        SmoothingConfig("median")  # type: ignore[arg-type]
    track = np.full((5, 1, 3), np.nan)  # a keypoint never predicted stays as it is
    assert np.isnan(smooth_track(track, SmoothingConfig("kalman"))).all()


def test_joints_are_drawn_in_their_own_colours_with_a_legend():
    colours = joint_colours(5)
    assert len(set(colours)) == 5
    frame = np.zeros((200, 200, 3), np.uint8)
    kp = np.array([[100, 40, 0.9], [40, 150, 0.9], [160, 150, 0.9], [100, 100, 0.9], [150, 60, 0.2]], float)
    draw_pose(frame, kp, [(0, 3)], colours=colours)
    for j in range(4):  # confident joints: a filled disc in the joint's colour
        assert tuple(int(v) for v in frame[int(kp[j, 1]), int(kp[j, 0])]) == colours[j]
    # the unsure joint is a ring: its centre stays dark, its rim has its colour
    assert frame[60, 150].sum() == 0 and (frame[55:66, 145:156] == colours[4]).all(-1).any()
    names = ["nose", "ear", "tail", "paw", "hip"]
    shown = with_legend(frame, names, colours)
    # the legend is a panel to the right: the frame's own pixels are all there, uncovered
    assert shown.shape == (200, 200 + legend_width(200, names), 3) and legend_width(200, names) > 0
    assert np.array_equal(shown[:, :200], frame)
    panel = shown[:, 200:]
    assert (panel[-1, -1] == PANEL).all()
    for c in colours:  # every joint's swatch is in the legend
        assert (panel == c).all(-1).any()
    # a short frame: rows of 6 px, 15 to a column (100 px), so 30 names take two columns side by side
    many, many_colours = [f"joint{j}" for j in range(30)], joint_colours(30)
    short = with_legend(np.zeros((100, 50, 3), np.uint8), many, many_colours)[:, 50:]
    left, right = short[:, :short.shape[1] // 2], short[:, short.shape[1] // 2:]
    assert (left == many_colours[0]).all(-1).any() and not (right == many_colours[0]).all(-1).any()
    assert (right == many_colours[15]).all(-1).any() and not (left == many_colours[15]).all(-1).any()
    assert with_legend(frame, names, colours, width=301).shape[1] == 200 + 301  # widened on request
    assert with_legend(frame, [], []) is frame


def _video(path, frames: int = 12, size: int = 64) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (size, size))
    rng = np.random.default_rng(1)
    for f in range(frames):
        img = rng.integers(0, 40, size=(size, size, 3), dtype=np.uint8)
        cv2.circle(img, (10 + 3 * f, 30), 3, (0, 200, 255), -1)
        writer.write(img)
    writer.release()


def _rows(path) -> np.ndarray:
    rows = list(csv.reader(path.open()))[3:]
    return np.array([[float(v) for v in r[1:]] for r in rows]).reshape(len(rows), -1, 3)


def test_predict_smooth_writes_filtered_tables_and_draws_them(trained, tmp_path):
    clip = tmp_path / "clip.mp4"
    _video(clip)
    res = CliRunner().invoke(app, ["predict", str(clip), "--checkpoint", str(trained), "--out", str(tmp_path / "o"),
                                   "--smooth", "kalman", "--no-progress"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    names = sorted(p.split("/")[-1] for p in out["outputs"])
    assert names == ["clip.csv", "clip.json", "clip_filtered.csv", "clip_filtered.json", "clip_labelled.mp4"]
    raw, filtered = _rows(tmp_path / "o" / "clip.csv"), _rows(tmp_path / "o" / "clip_filtered.csv")
    assert raw.shape == filtered.shape == (12, 17, 3)
    # the filtered table is the Kalman smoother of the raw one (the CSV's 3 decimals of low likelihoods move the
    # measurement weights by ~1 %: 0.013 px here)
    assert np.allclose(filtered, smooth_track(raw, SmoothingConfig("kalman")), atol=0.05)
    assert not np.allclose(filtered[..., :2], raw[..., :2], atol=1e-2)
    assert len(json.loads((tmp_path / "o" / "clip_filtered.json").read_text())) == 12
    cap = cv2.VideoCapture(str(tmp_path / "o" / "clip_labelled.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    # the frame (64 px) and the legend's panel of the model's joints beside it
    joints = torch.load(trained, weights_only=False, map_location="cpu")["schema"]["joints"]
    panel = legend_width(64, joints)
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 64 + panel + panel % 2  # an even width for the codec
    cap.release()
    bad = CliRunner().invoke(app, ["predict", str(clip), "--checkpoint", str(trained), "--out", str(tmp_path / "b"),
                                   "--smooth", "savgol", "--smooth-window", "4"])
    assert bad.exit_code == 2 and "odd number" in bad.output


def test_predict_smooth_refuses_several_animals_per_frame(trained, tmp_path):
    clip = tmp_path / "clip.mp4"
    _video(clip, frames=3)
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": 1, "bbox": [0, 0, 30, 30], "score": 1.0, "category_id": 1},
                                {"image_id": 1, "bbox": [30, 30, 30, 30], "score": 1.0, "category_id": 1}]))
    with pytest.raises(DataError, match=r"dets\.json: bbox: --smooth savgol follows one animal.*image_id 1 has 2"):
        predict(trained, [clip], tmp_path / "o", detections=dets, progress=False,
                smoothing=SmoothingConfig("savgol"))


def test_predict_with_one_checkpoint_twice_is_the_single_model(trained, tmp_path):
    clip = tmp_path / "clip.mp4"
    _video(clip, frames=6)
    single = predict(trained, [clip], tmp_path / "one", progress=False, write_video=False)
    both = predict([trained, trained], [clip], tmp_path / "two", progress=False, write_video=False)
    assert single["ensemble"] == 1 and both["ensemble"] == 2
    assert np.allclose(_rows(tmp_path / "one" / "clip.csv"), _rows(tmp_path / "two" / "clip.csv"))
    results = json.loads((tmp_path / "two" / "clip.json").read_text())
    assert len(results) == 6 and all(max(r["ensemble_std"]) == 0 for r in results)


def test_predict_with_an_ensemble_writes_its_median_and_eks_track(trained, perturbed, tmp_path):
    clip = tmp_path / "clip.mp4"
    _video(clip, frames=12)
    members = [trained, *(perturbed(trained, tmp_path / f"{n}.ckpt", seed=n) for n in (1, 2))]
    res = CliRunner().invoke(app, ["predict", str(clip), "--checkpoint", str(members[0]), "--checkpoint",
                                   str(members[1]), "--checkpoint", str(members[2]), "--out", str(tmp_path / "o"),
                                   "--smooth", "eks", "--no-progress", "--no-video"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["ensemble"] == 3 and set(out["eks_smoothing"]) == {"clip"}
    singles = [_rows_of(m, clip, tmp_path / f"s{i}") for i, m in enumerate(members)]
    raw, filtered = _rows(tmp_path / "o" / "clip.csv"), _rows(tmp_path / "o" / "clip_filtered.csv")
    pose, var = ensemble_pose(np.stack(singles))
    assert np.allclose(raw, pose, atol=2e-3)  # the CSV's 3 decimals
    assert np.allclose(filtered, eks_smooth(pose, var)[0], atol=0.05)
    results = json.loads((tmp_path / "o" / "clip.json").read_text())
    assert np.allclose([r["ensemble_std"] for r in results], np.sqrt(var.sum(-1)), atol=2e-3)
    assert np.sqrt(var.sum(-1)).max() > 1 and not np.allclose(filtered[..., :2], raw[..., :2], atol=0.1)
    assert "_ensemble-of-3" in (tmp_path / "o" / "clip.csv").read_text().splitlines()[0]


def _rows_of(checkpoint, clip, out):
    predict(checkpoint, [clip], out, progress=False, write_video=False)
    return _rows(out / "clip.csv")


def test_eks_needs_an_ensemble_and_members_must_share_a_schema(trained, tmp_path):
    clip = tmp_path / "clip.mp4"
    _video(clip, frames=3)
    with pytest.raises(ConfigError, match=r"eks.*two or more"):
        predict(trained, [clip], tmp_path / "o", progress=False, smoothing=SmoothingConfig("eks"))
    other = torch.load(trained, weights_only=False, map_location="cpu")
    other["schema"] = {**other["schema"], "joints": list(reversed(other["schema"]["joints"]))}
    torch.save(other, tmp_path / "other.ckpt")
    with pytest.raises(ConfigError, match=r"other\.ckpt.*joints"):
        predict([trained, tmp_path / "other.ckpt"], [clip], tmp_path / "o", progress=False)
