"""Safer CC-SSL pseudo-labels (issue 23): a confidence threshold calibrated on labelled frames, agreement with
the temporal prior, and a λ per round; hand-computed cases, then the rounds that use them."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from animalpose.adapt.calibration import calibrated_threshold, correct_joints
from animalpose.adapt.ccssl import CCSSLConfig, CCSSLRun, select
from animalpose.adapt.multiview_loss import fit_multiview_pca
from animalpose.adapt.pca_loss import fit_pose_pca
from animalpose.adapt.prior_agreement import prior_agreement
from animalpose.adapt.temporal_agreement import temporal_agreement
from animalpose.config import parse_config
from animalpose.data.coco_writer import write_coco
from animalpose.data.records import PoseRecord
from animalpose.errors import ConfigError, DataError

SIZE = 64  # tests/adapt/conftest.py's dots


def test_calibrated_threshold_by_hand():
    conf = np.array([0.5, 0.9, 0.8, 0.3, 0.8, np.nan])
    right = np.array([True, True, True, False, False, True])
    # sorted: 0.9 R (1/1), 0.8 R + 0.8 W together (2/3), 0.5 R (3/4), 0.3 W (3/5); the NaN is left out
    c = calibrated_threshold(conf, right, 0.75)
    assert (c.threshold, c.precision, c.coverage, c.joints) == (0.5, 0.75, 0.8, 5)
    c = calibrated_threshold(conf, right, 0.9)  # the tie at 0.8 cannot be split: only 0.9 qualifies
    assert (c.threshold, c.precision, c.coverage) == (0.9, 1.0, 0.2)
    assert calibrated_threshold(conf, right, 0.6).threshold == 0.3  # 3/5 = 0.6 reaches it: everything kept
    none = calibrated_threshold(np.array([0.9, 0.2]), np.array([False, True]), 0.8)
    assert none.threshold == float("inf") and np.isnan(none.precision) and none.coverage == 0.0
    with pytest.raises(ValueError, match="precision"):
        calibrated_threshold(conf, right, 0.0)


def test_correct_joints_uses_the_labelled_box_as_pck_does():
    truth = np.zeros((1, 3, 3))
    truth[0] = [[0, 0, 2], [100, 40, 2], [50, 50, 0]]  # box 100 x 40: tolerance 0.05 -> 5 px
    pred = np.array([[[4, 0], [100, 46], [50, 50]]], float)
    correct, labelled = correct_joints(pred, truth, 0.05)
    assert labelled.tolist() == [[True, True, False]]
    assert correct.tolist() == [[True, False, False]]


def _frames(n: int, video: str = "v", track: int | None = None, step: int = 1) -> list[PoseRecord]:
    return [PoseRecord(f"{video}_{f}.png", np.zeros((1, 3), np.float32), "coco", video_id=video,
                       frame_index=f * step, instance_id=track) for f in range(n)]


def test_temporal_agreement_by_hand():
    recs = _frames(5)
    x = np.array([0.0, 1.0, 2.0, 12.0, 4.0])  # frame 3 jumps away
    xy = np.stack([x, np.zeros(5)], -1)[:, None, :]  # (5, 1, 2)
    ok = temporal_agreement(xy, recs, 1, 3.0)
    # refs: f0 -> f1 = 1 (1 px), f1 -> (0 + 2) / 2 = 1 (0), f2 -> (1 + 12) / 2 = 6.5 (4.5), f3 -> (2 + 4) / 2 = 3 (9),
    # f4 -> f3 = 12 (8): the jump and the frames next to it disagree
    assert ok[:, 0].tolist() == [True, True, False, False, False]
    # a photo and a frame without neighbours at this step stay eligible; a shuffled order gives the same answer
    recs2 = [*recs, PoseRecord("photo.png", np.zeros((1, 3), np.float32), "coco"),
             PoseRecord("w_7.png", np.zeros((1, 3), np.float32), "coco", video_id="w", frame_index=7)]
    xy2 = np.concatenate([xy, np.full((2, 1, 2), 500.0)])
    perm = np.array([6, 2, 0, 5, 4, 1, 3])
    ok2 = temporal_agreement(xy2[perm], [recs2[i] for i in perm], 1, 3.0)
    assert ok2[:, 0].tolist() == [True, False, True, True, False, True, False]
    # two animals in the same frames are two tracks: each is judged on its own
    a, b = _frames(3, track=1), _frames(3, track=2)
    xy3 = np.array([[0.0, 0], [1, 0], [2, 0], [100, 0], [140, 0], [101, 0]])[:, None, :]
    ok3 = temporal_agreement(xy3, a + b, 1, 3.0)
    assert ok3[:, 0].tolist() == [True, True, True, False, False, False]
    with pytest.raises(ValueError, match="distance"):
        temporal_agreement(xy, recs, 1, 0.0)


def test_select_takes_an_eligibility_mask_and_an_absolute_threshold():
    from animalpose.adapt.pseudolabel import PseudoLabelSet

    n, k = 2, 3
    labels = PseudoLabelSet(records=_frames(n), xy=np.full((n, k, 2), 10.0, np.float32),
                            confidence=np.array([[0.9, 0.5, 0.2], [0.7, 0.6, 0.1]], np.float32), components={},
                            matrices=np.tile(np.eye(2, 3, dtype=np.float32), (n, 1, 1)), input_size=(64, 64),
                            flow_conf=np.full((n, k), np.nan), replaced=np.zeros((n, k), bool),
                            weights=np.zeros((n, k), np.float32))
    mask = np.array([[True, True, True], [False, True, True]])
    top = select(labels, 0.5, eligible=mask)  # median of the 5 eligible (0.9 0.5 0.2 0.6 0.1) = 0.5
    assert top.weights.tolist() == [[1, 1, 0], [0, 1, 0]]
    fixed = select(labels, 0.5, eligible=mask, threshold=0.55)
    assert fixed.weights.tolist() == [[1, 0, 0], [0, 1, 0]] and fixed.threshold == 0.55


def test_settings_that_cannot_work_are_named(dots_config):
    with pytest.raises(ConfigError, match=r"ccssl\.lambda_rounds.*3 values for 2 rounds"):
        dots_config(lambda_rounds=[0.1, 0.2, 0.3])
    with pytest.raises(ConfigError, match="lambda_rounds"):
        dots_config(lambda_rounds=[-1.0, 1.0])
    with pytest.raises(ConfigError, match="temporal_agreement"):
        dots_config(temporal_agreement=0.0)


@pytest.mark.parametrize(("key", "value"), [("calibration_precision", 0.9), ("presence_quantile", 0.1),
                                            ("joint_gate", 0.2)])
def test_rules_calibrated_on_labelled_frames_need_them(dots_config, key, value):
    cfg = dots_config(**{key: value}).model_dump(mode="json")
    cfg["data"]["val"] = []
    with pytest.raises(ConfigError, match=rf"ccssl\.{key}.*calibration_data or data\.val"):
        parse_config(cfg, CCSSLConfig)


def test_rounds_use_the_lambda_per_round_calibration_and_temporal_agreement(dots_config, tmp_path):
    cfg = dots_config(lambda_rounds=[0.0, 4.0], temporal_agreement=2.0, calibration_precision=0.1,
                  calibration_tolerance=0.5)
    run = CCSSLRun(cfg, tmp_path / "run", progress=False)
    lambdas = []
    for r in range(2):
        m = run.round(r)
        lambdas.append(run.trainer.lambda_target)
        assert m["pseudo/calibration_joints"] == 4 * 17  # data.val: 4 images x 17 labelled dots
        thr = m["pseudo/calibration_threshold"]
        summary = json.loads((tmp_path / "run" / f"round_{r}" / "summary.json").read_text())
        # the round's file too (a threshold no level reached is written as null: JSON has no infinity)
        assert summary["calibration_threshold"] == (thr if np.isfinite(thr) else None)
        assert "temporal_disagreeing" in summary
        doc = json.loads((tmp_path / "run" / f"round_{r}" / "pseudo_labels.json").read_text())
        images = {im["id"]: im for im in doc["images"]}
        anns = sorted(doc["annotations"], key=lambda a: a["record"])
        xy = np.array([np.reshape(a["keypoints"], (-1, 3))[:, :2] for a in anns])
        recs = [PoseRecord(images[a["image_id"]]["file_name"], np.zeros((17, 3), np.float32), "coco",
                           video_id=images[a["image_id"]]["video_id"],
                           frame_index=images[a["image_id"]]["frame_index"]) for a in anns]
        agree = temporal_agreement(xy, recs, 1, 2.0)
        conf = np.array([a["confidence"] for a in anns])
        kept = np.array([a["weight"] for a in anns]) > 0
        # kept exactly where the confidence reaches the calibrated threshold and the track agrees
        assert np.array_equal(kept, (conf >= thr) & agree)
        assert m["pseudo/temporal_disagreeing"] == pytest.approx(1 - agree.mean())
    assert lambdas == [0.0, 4.0]


def test_prior_agreement_by_hand():
    # pose prior: joint 1 is always joint 0 + (10, 0); joint 0 moves along x (a 1-D subspace)
    t = np.arange(6.0)
    poses = np.stack([np.stack([t, 0 * t], -1), np.stack([t + 10, 0 * t], -1)], 1)  # (6, 2, 2)
    pca = fit_pose_pca(poses, components=1, epsilon=1.0, joints=(0, 1))
    # multi-view prior: keypoint 3 is keypoint 2 seen 100 px lower (views [[2, 3]]), the point moves freely
    rng = np.random.default_rng(0)
    kps = []
    for _ in range(8):
        kp = np.zeros((5, 3))
        kp[2, :2] = rng.uniform(0, 50, 2)
        kp[3, :2] = kp[2, :2] + [0, 100]
        kp[2:4, 2] = 2
        kps.append(kp)
    mv = fit_multiview_pca(kps, [[2, 3]], components=2, epsilon=5.0)
    xy = np.zeros((2, 5, 2), np.float32)
    xy[0] = [[5, 0], [15, 0], [20, 20], [20, 120], [0, 0]]  # fits both priors
    xy[1] = [[5, 0], [15, 4], [10, 10], [30, 110], [0, 0]]  # joint 1 off by 4 px (> 1); the views 10 px apart
    ok = prior_agreement(xy, pca, mv)
    # sample 1's views: the residual of (10, 10, 30, 110) off the views' subspace is (-10, 0, 10, 0): 10 px each
    assert ok.tolist() == [[True] * 5, [True, False, False, False, True]]
    assert prior_agreement(xy, pca).tolist() == [[True] * 5, [True, False, True, True, True]]
    assert prior_agreement(xy).all()


def test_rounds_drop_pseudo_labels_that_disagree_with_the_pose_prior(dots_config, tmp_path):
    cfg = dots_config(prior_agreement=["pca"], pca_loss_components=3, keep_fractions=[1.0, 1.0],
                  pca_loss_joints=["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder"])
    run = CCSSLRun(cfg, tmp_path / "run", progress=False)
    m = run.round(0)
    doc = json.loads((tmp_path / "run" / "round_0" / "pseudo_labels.json").read_text())
    anns = sorted(doc["annotations"], key=lambda a: a["record"])
    xy = np.array([np.reshape(a["keypoints"], (-1, 3))[:, :2] for a in anns])
    kept = np.array([a["weight"] for a in anns]) > 0
    agree = prior_agreement(xy, run._priors()[0])
    assert 0 < agree.mean() < 1  # the fresh model's pseudo-labels: some fit the dots' poses, some do not
    assert np.array_equal(kept, agree)  # all kept by confidence: exactly the joints the prior accepts
    assert m["pseudo/prior_disagreeing"] == pytest.approx(1 - agree.mean())


def test_the_control_section_turns_every_target_ingredient_off(dots_config):
    on = dots_config(lambda_rounds=[0.5, 1.0], temporal_agreement=20.0, calibration_precision=0.9,
                 prior_agreement=["pca"], temporal_loss_weight=1.0, pca_loss_weight=1.0, multiview_loss_weight=1.0,
                 num_geometric=3, gallery=2, temporal=True).ccssl
    c = on.as_control()
    assert (c.lambda_target, c.lambda_rounds, c.temporal_agreement, c.calibration_precision, c.prior_agreement) == (
        0.0, None, None, None, [])
    assert (c.temporal_loss_weight, c.pca_loss_weight, c.multiview_loss_weight) == (0.0, 0.0, 0.0)
    assert (c.num_geometric, c.invariance, c.temporal, c.gallery) == (0, False, False, 0)
    assert (c.regenerate_every, c.keep_fractions, c.lr) == (on.regenerate_every, on.keep_fractions, on.lr)


def test_calibration_data_without_labels_is_named(dots_config, tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((SIZE, SIZE, 3), np.uint8))
    recs = [PoseRecord(str(tmp_path / "a.png"), np.zeros((17, 3), np.float32), "coco", bbox=(0, 0, 8, 8),
                       image_size=(SIZE, SIZE), image_id=1)]
    empty = write_coco(recs, tmp_path / "unlabelled.json", "coco")
    run = CCSSLRun(dots_config(calibration_precision=0.9, calibration_data=[str(empty)]), tmp_path / "run",
                   progress=False)
    run.prepare()
    with pytest.raises(DataError, match=r"unlabelled\.json.*annotations.*ccssl\.calibration_data \(or data\.val\) "
                                        r"has no labels"):
        run._calibrate(0)


def test_temporal_infill_by_hand():
    """One track at frames 0, 5, 10, 15 (step 5), two joints. Frame 5's joint 0 was left out, its neighbours (0, 0)
    and (10, 0) were kept and lie 10 px apart: it takes (5, 0). Frame 5's joint 1 is not filled (frame 10 left it
    out too), nor frame 10's joint 1 (frame 5's is not kept: an infilled or left-out joint is never a neighbour)."""
    from animalpose.adapt.temporal_infill import temporal_infill

    recs = _frames(4, step=5)
    xy = np.array([[[0, 0], [0, 0]], [[50, 50], [9, 9]], [[10, 0], [4, 4]], [[20, 0], [100, 100]]], np.float32)
    w = np.array([[1, 1], [0, 0], [1, 0], [1, 1]], np.float32)
    out, weights, filled = temporal_infill(xy, w, recs, 5, 15.0)
    assert filled.tolist() == [[False, False], [True, False], [False, False], [False, False]]
    assert out[1, 0].tolist() == [5.0, 0.0] and weights[1].tolist() == [1.0, 0.0]
    np.testing.assert_array_equal(np.delete(out.reshape(-1, 2), 2, 0), np.delete(xy.reshape(-1, 2), 2, 0))
    assert xy[1, 0].tolist() == [50.0, 50.0] and w[1, 0] == 0  # the inputs are left as they were
    # neighbours 10 px apart but a 9-px limit: nothing filled
    assert not temporal_infill(xy, w, recs, 5, 9.0)[2].any()
    # frame 10 missing from the target: frames 0 and 15 are not neighbours of 5 (15 - 5 is not the step)
    gap = [recs[0], recs[1], recs[3]]
    assert not temporal_infill(xy[[0, 1, 3]], w[[0, 1, 3]], gap, 5, 50.0)[2].any()
    # two animals in the same frames: each track is its own sequence (track 1's neighbours are 40 px apart)
    a, b = _frames(3, track=0, step=5), _frames(3, track=1, step=5)
    xy2 = np.concatenate([xy[:3], xy[:3] * [4, 1]])
    w2 = np.concatenate([w[:3], w[:3]])
    got = temporal_infill(xy2, w2, a + b, 5, 15.0)[2]
    assert got[:, 0].tolist() == [False, True, False, False, False, False]
    with pytest.raises(ValueError, match="distance"):
        temporal_infill(xy, w, recs, 5, 0.0)


def test_a_round_infills_between_kept_neighbours(dots_config, tmp_path):
    """A round with temporal_infill: the kept set is the selection (confidence at the round's threshold) plus the
    joints the rule filled, each at the midpoint of its selected neighbours (frame - 1 and + 1 of its video)."""
    run = CCSSLRun(dots_config(temporal_infill=1000.0), tmp_path / "run", progress=False)
    m = run.round(0)
    doc = json.loads((tmp_path / "run" / "round_0" / "pseudo_labels.json").read_text())
    images = {im["id"]: im for im in doc["images"]}
    anns = sorted(doc["annotations"], key=lambda a: a["record"])
    where = {(images[a["image_id"]]["video_id"], images[a["image_id"]]["frame_index"]): n for n, a in enumerate(anns)}
    xy = np.array([np.reshape(a["keypoints"], (-1, 3))[:, :2] for a in anns])
    kept = np.array([a["weight"] for a in anns]) > 0
    selected = np.array([a["confidence"] for a in anns]) >= m["pseudo/threshold"]
    filled = kept & ~selected
    assert not (selected & ~kept).any() and filled.sum() == m["pseudo/temporal_infilled"] > 0
    for n, k in zip(*np.nonzero(filled), strict=True):
        video, frame = images[anns[n]["image_id"]]["video_id"], images[anns[n]["image_id"]]["frame_index"]
        before, after = where[(video, frame - 1)], where[(video, frame + 1)]
        assert selected[before, k] and selected[after, k]
        np.testing.assert_allclose(xy[n, k], (xy[before, k] + xy[after, k]) / 2, atol=1e-3)


def test_presence_floors_by_hand():
    from animalpose.adapt.presence import presence_floors, present

    conf = np.array([[0.9, 0.2, 0.5],
                     [0.7, 0.4, 0.6],
                     [0.8, np.nan, 0.1],
                     [0.1, 0.3, 0.9]])
    labelled = np.array([[True, True, False],
                         [True, True, False],
                         [True, True, False],
                         [False, True, False]])
    # joint 0: labelled 0.9, 0.7, 0.8 (the unlabelled 0.1 ignored) -> quantile 0 = 0.7, 0.5 = 0.8;
    # joint 1: 0.2, 0.4, 0.3 (the NaN left out) -> 0.2, 0.3; joint 2: never labelled -> NaN (no floor)
    np.testing.assert_allclose(presence_floors(conf, labelled, 0.0), [0.7, 0.2, np.nan])
    floors = presence_floors(conf, labelled, 0.5)
    np.testing.assert_allclose(floors, [0.8, 0.3, np.nan])
    np.testing.assert_allclose(presence_floors(conf, labelled, 0.25), [0.75, 0.25, np.nan])  # interpolated
    ok = present(np.array([[0.8, 0.29, 0.0], [0.79, 0.3, np.nan], [np.nan, 1.0, 5.0]]), floors)
    # at the floor is present; below is not; a NaN confidence never is; an unfloored joint always is
    assert ok.tolist() == [[True, False, True], [False, True, True], [False, True, True]]
    with pytest.raises(ValueError, match="quantile"):
        presence_floors(conf, labelled, 1.0)
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        presence_floors(conf, labelled[:, :2], 0.1)
    with pytest.raises(ValueError, match="floors"):
        present(conf, floors[:2])


def test_presence_quantile_bounds_and_control(dots_config):
    with pytest.raises(ConfigError, match="presence_quantile"):
        dots_config(presence_quantile=1.0)
    assert dots_config(presence_quantile=0.1).ccssl.as_control().presence_quantile is None


def test_a_round_drops_pseudo_labels_below_their_joints_presence_floor(dots, dots_config, tmp_path):
    """The floors come from the calibration frames' labelled joints; a joint they never label gets none (named in
    the round's summary); every kept pseudo-label reaches its joint's floor, and the rule drops exactly the
    pseudo-labels below it (the round's selection is then by confidence among the rest)."""
    from animalpose.data.readers import read_dataset

    val = read_dataset(dots["val"], "coco").records
    for r in val:  # joint 5 never labelled in the calibration frames
        r.keypoints[5] = 0
    calib = write_coco(val, dots["val"].parent / "val_no_joint5.json", "coco")  # beside its images' root
    run = CCSSLRun(dots_config(presence_quantile=0.5, calibration_data=[str(calib)], keep_fractions=[1.0, 1.0]),
                   tmp_path / "run", progress=False)
    m = run.round(0)
    summary = json.loads((tmp_path / "run" / "round_0" / "summary.json").read_text())
    floors = summary["presence_floors"]
    assert floors[run.schema.joints[5]] is None and summary["presence_unfloored"] == [run.schema.joints[5]]
    assert all(v is not None for k, v in floors.items() if k != run.schema.joints[5])
    doc = json.loads((tmp_path / "run" / "round_0" / "pseudo_labels.json").read_text())
    conf = np.array([a["confidence"] for a in doc["annotations"]])
    kept = np.array([a["weight"] for a in doc["annotations"]]) > 0
    floor = np.array([np.nan if floors[n] is None else floors[n] for n in run.schema.joints])
    below = conf < np.nan_to_num(floor, nan=-np.inf)[None, :] - 1e-5  # the summary rounds floors to 5 places
    assert below.any() and not (kept & below).any()
    assert m["pseudo/presence_absent"] == pytest.approx(below.mean(), abs=2 / conf.size)
    assert kept[:, 5].any()  # the unfloored joint is kept like any other


def test_joint_errors_and_the_gate_by_hand():
    from animalpose.adapt.joint_gate import joint_errors, worsened

    truth = np.zeros((3, 3, 3))
    truth[..., 2] = 2
    truth[2, 1, 2] = 0  # joint 1 labelled in 2 frames
    truth[:, 2, 2] = 0  # joint 2 never labelled
    pred = np.zeros((3, 3, 2))
    pred[:, 0] = [[3, 4], [0, 1], [6, 8]]  # errors 5, 1, 10 -> 16 / 3
    pred[:, 1] = [[0, 2], [2, 0], [50, 50]]  # 2, 2 (frame 2 not labelled: its 70.7 px is not counted)
    e = joint_errors(pred, truth, min_instances=2)
    np.testing.assert_allclose(e, [16 / 3, 2.0, np.nan])
    np.testing.assert_allclose(joint_errors(pred, truth, min_instances=3), [16 / 3, np.nan, np.nan])
    ref = np.array([4.0, 1.0, np.nan])
    # joint 0: 16/3 > 4 x 1.2 = 4.8 and rose 1.33 px >= 1; joint 1: 2 > 1.2 but rose only 1.0 px (>= 1: shut)
    assert worsened(e, ref, 0.2, 1.0).tolist() == [True, True, False]
    assert worsened(e, ref, 0.2, 1.5).tolist() == [False, False, False]  # neither rose 1.5 px
    assert worsened(e, ref, 0.4, 0.0).tolist() == [False, True, False]  # 16/3 < 4 x 1.4 = 5.6
    with pytest.raises(ValueError, match="match"):
        worsened(e, ref[:2], 0.2, 1.0)
    with pytest.raises(ValueError, match="match"):
        joint_errors(pred[:, :2], truth)


def test_joint_gate_control_and_bounds(dots_config):
    with pytest.raises(ConfigError, match="joint_gate"):
        dots_config(joint_gate=-0.1)
    assert dots_config(joint_gate=0.2).ccssl.as_control().joint_gate is None


def test_a_round_shuts_a_worsened_joint_for_good(dots_config, tmp_path):
    """Round 0 records the source model's per-joint calibration errors (the summary's and the state's agree); a
    joint whose reference is made 0 px is worse by round 1 and shut: none of its pseudo-labels is kept in round 1,
    it is named in the summary, and a resumed run keeps it shut in round 2; every other joint stays open."""
    doc = dots_config(joint_gate=0.0, joint_gate_pixels=0.0, joint_gate_instances=1,
                      keep_fractions=[1.0] * 3).model_dump(mode="json")
    doc["train"]["epochs"] = 3
    cfg = parse_config(doc, CCSSLConfig)
    run = CCSSLRun(cfg, tmp_path / "run", progress=False)
    run.round(0)
    s0 = json.loads((tmp_path / "run" / "round_0" / "summary.json").read_text())
    names = run.schema.joints
    ref = run.state["joint_gate"]["reference"]
    assert ref == pytest.approx([s0["joint_gate_errors"][n] for n in names], abs=1e-3)
    assert s0["joint_gate_shut"] == [] and s0["joint_gate_dropped"] == 0.0
    # joint 3 had a perfect reference, every other joint one it cannot exceed
    run.state["joint_gate"]["reference"] = [0.0 if k == 3 else 1e6 for k in range(len(names))]
    run._save_state()
    m1 = run.round(1)
    s1 = json.loads((tmp_path / "run" / "round_1" / "summary.json").read_text())
    assert s1["joint_gate_errors"][names[3]] > 0 and s1["joint_gate_shut"] == [names[3]]
    assert m1["pseudo/joint_gate_dropped"] == pytest.approx(1 / len(names))

    def kept(r):
        doc = json.loads((tmp_path / "run" / f"round_{r}" / "pseudo_labels.json").read_text())
        return np.array([a["weight"] for a in doc["annotations"]]) > 0

    assert kept(0)[:, 3].any() and not kept(1)[:, 3].any()
    assert np.delete(kept(1), 3, axis=1).any()
    resumed = CCSSLRun(cfg, tmp_path / "run", progress=False)
    resumed.round(2)
    assert not kept(2)[:, 3].any()
    s2 = json.loads((tmp_path / "run" / "round_2" / "summary.json").read_text())
    assert s2["joint_gate_shut"] == [names[3]]
