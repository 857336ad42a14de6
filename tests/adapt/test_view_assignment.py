"""Re-assignment of look-alike body parts across views (animalpose.adapt.view_assignment), by hand and in a round."""

from __future__ import annotations

import json

import numpy as np
import pytest

import animalpose.adapt.ccssl as ccssl_module
from animalpose.adapt.ccssl import CCSSLConfig, CCSSLRun, view_groups
from animalpose.adapt.label_report import label_report
from animalpose.adapt.multiview_loss import fit_multiview_pca
from animalpose.adapt.pseudolabel import PseudoLabelSet
from animalpose.adapt.view_assignment import (
    agreeing_views,
    assignment_cost,
    best_view,
    confused_groups,
    confusion_rates,
    group_keypoints,
    project_views,
    reassign_views,
)
from animalpose.config import parse_config
from animalpose.errors import ConfigError

OFF = np.array([0.0, 100.0])  # view 1 sees every part this much lower


def _rig() -> object:
    """Keypoints 0..2 are three parts in view 0; 3..5 the same parts in view 1, always 100 px lower: the views'
    subspace (2 axes) is (x, y, x, y + 100); a sample (a, c + (0, 100)) has the residual ±(a − c) / 2 in each
    view, so its summed error is |a − c|."""
    rng = np.random.default_rng(0)
    kps = []
    for _ in range(10):
        kp = np.zeros((6, 3))
        kp[:3, :2] = rng.uniform(0, 80, (3, 2))
        kp[3:, :2] = kp[:3, :2] + [0, 100]
        kp[:, 2] = 2
        kps.append(kp)
    return fit_multiview_pca(kps, [[0, 3], [1, 4], [2, 5]], components=2, epsilon=1.0)


def test_assignment_cost_and_reassignment_by_hand():
    mv = _rig()
    top = np.array([[0.0, 0.0], [50.0, 0.0], [0.0, 30.0]])
    xy = np.zeros((2, 6, 2))
    xy[0, :3], xy[0, 3:] = top, top[[1, 0, 2]] + OFF  # frame 0: parts 0 and 1 swapped in view 1
    xy[1, :3], xy[1, 3:] = top, top + OFF  # frame 1: consistent
    # C[p, q] = | view-0 point of p − view-1 point of q (minus the offset) |
    c = assignment_cost(xy, mv, [0, 1, 2], view=1)
    d = np.linalg.norm(top[:, None] - top[[1, 0, 2]][None], axis=-1)
    np.testing.assert_allclose(c[0], d, atol=1e-4)  # the subspace is float32
    assert c[0][0, 1] == pytest.approx(0.0, abs=1e-4) and c[0][0, 0] == pytest.approx(50.0, abs=1e-4)
    # reference view 0: view 1's keypoints 3 and 4 exchange; reference view 1: view 0's keypoints 0 and 1 do
    src = reassign_views(xy, mv, [[0, 1, 2]], [0])
    assert src.tolist() == [[0, 1, 2, 4, 3, 5], [0, 1, 2, 3, 4, 5]]
    assert reassign_views(xy, mv, [[0, 1, 2]], [1]).tolist() == [[1, 0, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5]]
    # a frame with a part not predicted (NaN) is left as it is
    gap = xy.copy()
    gap[0, 5] = np.nan
    assert reassign_views(gap, mv, [[0, 1, 2]], [0]).tolist() == [[0, 1, 2, 3, 4, 5]] * 2
    # a group that leaves the swapped part out cannot repair it
    assert reassign_views(xy, mv, [[1, 2]], [0]).tolist() == [[0, 1, 2, 3, 4, 5]] * 2
    fixed = np.take_along_axis(xy, src[..., None], axis=1)
    np.testing.assert_allclose(fixed[0, 3:], top + OFF)
    with pytest.raises(ValueError, match="disjoint"):
        reassign_views(xy, mv, [[0, 1], [1, 2]], [0, 0])
    with pytest.raises(ValueError, match="reference views"):
        reassign_views(xy, mv, [[0, 1]], [2])


def test_agreeing_views_by_hand():
    mv = _rig()  # ε = 1 px; a sample's views disagreeing by d px leave d / 2 in each view
    top = np.array([[0.0, 0.0], [50.0, 0.0], [0.0, 30.0]])
    xy = np.zeros((1, 7, 2))  # keypoint 6 belongs to no body part
    xy[0, :3], xy[0, 3:6] = top, top + OFF
    xy[0, 4] += [1.5, 0.0]  # part 1's views 1.5 px apart: 0.75 px each, within ε
    xy[0, 5] += [0.0, 3.0]  # part 2's 3 px apart: 1.5 px each, beyond
    assert agreeing_views(xy, mv, [[0, 1, 2]]).tolist() == [[True, True, False, True, True, False, False]]
    assert agreeing_views(xy, mv, [[1, 2]]).tolist() == [[False, True, False, False, True, False, False]]
    assert group_keypoints(mv, [[2], [0]]).tolist() == [0, 2, 3, 5]


def _line_rig(components: int) -> object:
    """Two views of one body part in a plane: view 1 sees (x, y) as (x, 100) (its height is hidden there), so the
    views' subspace of (x0, y0, x1, y1) is spanned by (1, 0, 1, 0) and (0, 1, 0, 0) (k = 2); a third axis (k = 3)
    of the labelled frames' rounding noise in y1 is one the reference view 1 sees, but hardly."""
    rng = np.random.default_rng(1)
    kps = []
    for _ in range(20):
        kp = np.zeros((2, 3))
        kp[0, :2] = rng.uniform(0, 80, 2)
        kp[1, :2] = kp[0, 0], 100 + rng.normal(0, 1e-5)
        kp[:, 2] = 2
        kps.append(kp)
    return fit_multiview_pca(kps, [[0, 1]], components=components, epsilon=1.0)


def test_projection_onto_the_views_by_hand():
    # k = 3 of 4 dims, two views: with view 1's point fixed the subspace is a line in view 0 (the epipolar line)
    mv = _rig()  # view 1 = view 0 + (0, 100): the line through view 1's point is that point minus (0, 100)
    xy = np.array([[[3.0, 4.0], [50.0, 140.0]]])  # part 0: view 0 at (3, 4), view 1 at (50, 140)
    mv0 = fit_multiview_pca([np.array([[*p, 2], [p[0], p[1] + 100, 2]]) for p in np.random.default_rng(2).uniform(
        0, 80, (10, 2))], [[0, 1]], components=2, epsilon=1.0)  # k = 2: view 1 decides view 0 alone
    out = project_views(xy, mv0, [[0]], [1])
    np.testing.assert_allclose(out[0, 0], [50.0, 40.0], atol=1e-3)
    np.testing.assert_allclose(out[0, 1], xy[0, 1])  # the reference view stays
    # k = 2, view 1 hides y: the line through view 1's (50, 100) is x = 50 in view 0; y is kept
    line = _line_rig(2)
    out = project_views(np.array([[[3.0, 4.0], [50.0, 100.0]]]), line, [[0]], [1])
    np.testing.assert_allclose(out[0], [[50.0, 4.0], [50.0, 100.0]], atol=1e-3)
    np.testing.assert_allclose(project_views(np.array([[[3.0, 4.0], [50.0, 100.0]]]), _line_rig(3), [[0]], [1])[0],
                               [[50.0, 4.0], [50.0, 100.0]], atol=1e-3)  # the noise axis is not solved for
    # reference view 0 instead: view 1 is (x0, 100)
    out = project_views(np.array([[[3.0, 4.0], [50.0, 120.0]]]), line, [[0]], [0])
    np.testing.assert_allclose(out[0], [[3.0, 4.0], [3.0, 100.0]], atol=1e-2)
    # the mirror rig of _rig with three parts: only the group's other view moves
    xy = np.zeros((1, 6, 2))
    xy[0, :3] = [[0, 0], [50, 0], [0, 30]]
    xy[0, 3:] = xy[0, :3] + OFF + [[5, 0], [0, 7], [-2, 2]]
    out = project_views(xy, mv, [[0, 2]], [0])
    np.testing.assert_allclose(out[0, [3, 5]], xy[0, [0, 2]] + OFF, atol=1e-3)  # k = 2 of the rig's data
    np.testing.assert_array_equal(out[0, [0, 1, 2, 4]], xy[0, [0, 1, 2, 4]])


def test_best_view_is_the_one_with_the_lowest_labelled_error():
    mv = _rig()
    err = np.array([[9.0, 8.0, np.nan, 1.0, 2.0, 3.0], [7.0, np.nan, 9.0, 2.0, np.nan, 1.0]])
    assert best_view(err, mv, [0, 1, 2]) == 1  # view 0: mean 8.25, view 1: 1.8
    err[:, 3:] = np.nan
    with pytest.raises(ValueError, match="view 1 has no labelled keypoint"):
        best_view(err, mv, [0, 1, 2])


def test_confusion_rates_and_look_alike_groups_by_hand():
    """Three parts in two views (keypoints 0..2 and 3..5), two frames. View 0, frame 0: part 0's point lies nearer
    part 1's label, and part 2's too; part 2 is unlabelled in frame 1. So the pair (0, 1) is confused one way in
    one of two frames: (1 + 0) / (2 · 2) = 0.25; the pairs (1, 2) and (0, 2) one way (part 2's point, 11 px from
    part 0's label and 1 px from part 1's, 62 px from its own) in the one frame labelling both: 0.5. View 1 is
    right everywhere."""
    truth = np.zeros((2, 6, 3))
    truth[:, :3, :2] = [[0, 0], [10, 0], [50, 50]]
    truth[:, 3:, :2] = truth[:, :3, :2] + [0, 100]
    truth[..., 2] = 2
    truth[1, 2, 2] = 0
    xy = truth[..., :2].copy()
    xy[0, 0] = [9, 0]
    xy[0, 2] = [11, 0]
    views = np.array([[0, 3], [1, 4], [2, 5]])
    rates = confusion_rates(xy, truth, views)
    want = np.zeros((2, 3, 3))
    want[0, 0, 1] = want[0, 1, 0] = 0.25
    want[0, 1, 2] = want[0, 2, 1] = want[0, 0, 2] = want[0, 2, 0] = 0.5
    np.testing.assert_allclose(rates, want)
    assert confused_groups(rates, 0.2) == confused_groups(rates, 0.5) == [[0, 1, 2]]
    assert confused_groups(rates, 0.6) == []
    two = np.zeros((1, 4, 4))
    two[0, 0, 2] = two[0, 2, 0] = two[0, 1, 3] = two[0, 3, 1] = 0.4
    assert confused_groups(two, 0.15) == [[0, 2], [1, 3]]
    with pytest.raises(ValueError, match="expected"):
        confusion_rates(xy[0], truth, views)


def test_take_joints_moves_the_evidence_with_the_pseudo_label_but_not_the_truth():
    n, k = 2, 3
    xy = np.arange(n * k * 2, dtype=np.float32).reshape(n, k, 2)
    conf = np.arange(n * k, dtype=np.float32).reshape(n, k)
    truth = np.arange(n * k * 3, dtype=np.float32).reshape(n, k, 3)
    labels = PseudoLabelSet([None] * n, xy, conf, {"peak": conf + 10}, np.zeros((n, 2, 3)), (8, 8),
                            conf + 20, conf > 2, conf + 30, truth=truth)
    src = np.array([[2, 1, 0], [0, 1, 2]])
    out = labels.take_joints(src)
    assert out.xy[0].tolist() == xy[0, [2, 1, 0]].tolist() and out.xy[1].tolist() == xy[1].tolist()
    for got, was in ((out.confidence, conf), (out.components["peak"], conf + 10), (out.flow_conf, conf + 20),
                     (out.replaced, conf > 2), (out.weights, conf + 30)):
        assert got[0].tolist() == was[0, [2, 1, 0]].tolist() and got[1].tolist() == was[1].tolist()
    assert out.truth is truth
    with pytest.raises(ValueError, match="src must be"):
        labels.take_joints(src[:, :2])


VIEWS = [["left_eye", "right_eye"], ["left_ear", "right_ear"], ["left_shoulder", "right_shoulder"]]


def test_a_rig_names_its_views_once_in_the_experiments_multiview_section(dots_config):
    """ccssl.multiview_loss_views left unset takes multiview.views (the loss, the priors and the view assignment
    then use the views prediction mends with); given, it is kept."""
    raw = dots_config().model_dump(mode="json")
    raw["multiview"]["views"] = VIEWS
    raw["ccssl"].update(multiview_loss_views=None, view_assignment=[["left_eye", "left_ear"]])
    assert parse_config(raw, CCSSLConfig).ccssl.multiview_loss_views == VIEWS
    raw["ccssl"]["multiview_loss_views"] = VIEWS[:2]
    assert parse_config(raw, CCSSLConfig).ccssl.multiview_loss_views == VIEWS[:2]
    raw["multiview"]["views"], raw["ccssl"]["multiview_loss_views"] = [], None
    with pytest.raises(ConfigError, match=r"ccssl\.view_assignment.*multiview_loss_views"):
        parse_config(raw, CCSSLConfig)


def test_view_assignment_settings_that_cannot_work_are_named(dots_config):
    with pytest.raises(ConfigError, match=r"ccssl\.view_assignment.*multiview_loss_views"):
        dots_config(view_assignment=[["left_eye", "left_ear"]])
    with pytest.raises(ConfigError, match=r"ccssl\.view_assignment_reference.*0\.\.1"):
        dots_config(view_assignment=[["left_eye", "left_ear"]], multiview_loss_views=VIEWS,
                view_assignment_reference=2)
    cfg = dots_config(view_assignment=[["left_eye", "left_ear"]], multiview_loss_views=VIEWS).model_dump(mode="json")
    cfg["data"]["val"] = []
    with pytest.raises(ConfigError, match=r"view_assignment_reference.*calibration_data or data\.val"):
        parse_config(cfg, CCSSLConfig)
    cfg["ccssl"]["view_assignment_reference"] = 1  # a given view needs no labelled frames
    parse_config(cfg, CCSSLConfig)
    cfg["ccssl"]["view_assignment"] = "auto"  # but finding the look-alike parts does
    with pytest.raises(ConfigError, match=r"ccssl\.view_assignment: auto needs labelled frames"):
        parse_config(cfg, CCSSLConfig)
    with pytest.raises(ConfigError, match=r"ccssl\.view_assignment.*\['nose'\]"):
        view_groups([["left_eye", "nose"]], VIEWS)
    with pytest.raises(ConfigError, match=r"ccssl\.view_assignment.*>= 2 body parts"):
        view_groups([["left_eye", "right_eye"]], VIEWS)  # one body part named twice, by each view
    assert view_groups([["right_ear", "left_eye"]], VIEWS) == [[1, 0]]  # by either view's name


def _spied_round(dots_config, tmp_path, monkeypatch, **ccssl):
    """Round 0 of a run with the dots' eyes, ears and shoulders as two views (left, right) and the left ones a
    look-alike group; the metrics, the run, the re-assignment's (input xy, src, reference) and the written
    pseudo-labels' xy and kept mask."""
    calls = []
    real = ccssl_module.reassign_views

    def spy(xy, mv, groups, reference):
        src = real(xy, mv, groups, reference)
        calls.append((np.array(xy), src, list(reference)))
        return src

    monkeypatch.setattr(ccssl_module, "reassign_views", spy)
    cfg = dots_config(**{"keep_fractions": [1.0, 1.0], "multiview_loss_views": VIEWS, "multiview_loss_components": 1,
                         "view_assignment": [["left_eye", "left_ear", "left_shoulder"]], **ccssl})
    run = CCSSLRun(cfg, tmp_path / "run", progress=False)
    m = run.round(0)
    call, calib_call = calls  # the video's labels, then the calibration frames' (the round's label report)
    assert calib_call[2] == call[2]  # re-assigned against the reference the video's labels used
    doc = json.loads((tmp_path / "run" / "round_0" / "pseudo_labels.json").read_text())
    anns = sorted(doc["annotations"], key=lambda a: a["record"])
    xy = np.array([np.reshape(a["keypoints"], (-1, 3))[:, :2] for a in anns])
    return m, run, call, xy, np.array([a["weight"] for a in anns]) > 0


def test_a_round_reassigns_the_pseudo_labels_against_the_view_the_model_gets_right(dots_config, tmp_path,
                                                                                     monkeypatch):
    m, run, (raw, src, ref), xy, kept = _spied_round(dots_config, tmp_path, monkeypatch,
                                                    view_assignment_keep="agreeing")
    # auto: the view whose keypoints of the group the model places best on data.val this round
    lab = run._labelled_labels(0)
    err = np.linalg.norm(lab.xy - lab.truth[..., :2], axis=-1)
    top, bottom = err[:, [1, 3, 5]].mean(), err[:, [2, 4, 6]].mean()
    assert ref == [int(bottom < top)]
    summary = json.loads((tmp_path / "run" / "round_0" / "summary.json").read_text())
    assert summary["view_reference"] == ref
    # the written pseudo-labels are the model's, re-assigned by the returned indices (everything is kept)
    np.testing.assert_allclose(xy, np.take_along_axis(raw, src[..., None], axis=1), atol=1e-3)
    # keep = agreeing: the group's pseudo-labels are kept exactly where their views agree after re-assignment
    # (everything else by the percentile selection, all of it here)
    agree = agreeing_views(np.take_along_axis(raw, src[..., None], axis=1), run._view_fit[0], [[0, 1, 2]])
    keys = [1, 2, 3, 4, 5, 6]
    assert 0 < agree[:, keys].mean() < 1
    assert np.array_equal(kept[:, keys], agree[:, keys]) and kept[:, 7:].all()
    assert m["pseudo/view_agreeing"] == pytest.approx(agree[:, keys].mean())
    moved = (src != np.arange(17)).any(1)
    assert 0 < moved.mean() < 1  # the fresh model's labels: some fit the views' subspace better re-assigned
    assert m["pseudo/view_reassigned"] == pytest.approx(moved.mean())
    # only the group's keypoints in the other view move, among themselves
    other = [2, 4, 6] if ref == [0] else [1, 3, 5]
    still = np.setdiff1d(np.arange(17), other)
    assert (src[:, still] == still).all() and (np.sort(src[:, other], 1) == other).all()


def test_a_round_projects_the_other_view_and_keeps_it_with_the_reference(dots_config, tmp_path, monkeypatch):
    m, run, (raw, src, ref), xy, kept = _spied_round(dots_config, tmp_path, monkeypatch,
                                                    keep_fractions=[0.5, 0.5])
    mv = run._view_fit[0]
    expected = project_views(np.take_along_axis(raw, src[..., None], axis=1), mv, [[0, 1, 2]], ref)
    np.testing.assert_allclose(xy, expected, atol=1e-3)
    other, own = ([2, 4, 6], [1, 3, 5]) if ref == [0] else ([1, 3, 5], [2, 4, 6])
    assert np.abs(xy[:, other] - np.take_along_axis(raw, src[..., None], axis=1)[:, other]).max() > 1
    # the other view's keypoint is kept exactly where the reference's is (half of all joints are kept)
    assert np.array_equal(kept[:, other], kept[:, own]) and 0 < kept.mean() < 1
    assert m["pseudo/view_projection_px"] > 0
    # the round's label report measures the calibration frames' labels as the video's were made: re-assigned,
    # then projected (the truth stays with its joint)
    lab = run._labelled_labels(0)
    mended = lab.take_joints(reassign_views(lab.xy, mv, [[0, 1, 2]], ref))
    want = label_report(project_views(mended.xy, mv, [[0, 1, 2]], ref), lab.truth, lab.confidence,
                        m["pseudo/threshold"], run.schema.joints)
    assert m["pseudo/calibration_label_px"] == pytest.approx(want["label_px"])
    unmended = label_report(lab.xy, lab.truth, lab.confidence, m["pseudo/threshold"], run.schema.joints)
    assert m["pseudo/calibration_label_px"] != pytest.approx(unmended["label_px"])


def test_auto_view_assignment_finds_the_parts_the_source_model_confuses_and_keeps_them(dots_config, tmp_path,
                                                                                      monkeypatch, capsys):
    """view_assignment auto: the groups are confused_groups of the calibration frames' labels by the model that
    makes round 1's (the fresh model here), re-assigned in every round with them, kept in the run's state and
    reused by a resumed run, named in the round's summary and on the console; none found: no re-assignment."""
    groups_seen = []
    real = ccssl_module.reassign_views

    def spy(xy, mv, groups, reference):
        groups_seen.append([list(g) for g in groups])
        return real(xy, mv, groups, reference)

    monkeypatch.setattr(ccssl_module, "reassign_views", spy)
    cfg = dots_config(keep_fractions=[1.0, 1.0], multiview_loss_views=VIEWS, multiview_loss_components=1,
                      view_assignment="auto", view_assignment_confusion=0.01)
    run = CCSSLRun(cfg, tmp_path / "run", progress=False)
    run.prepare()
    lab = run._labelled_labels(0)  # round 1's calibration labels, made before the round
    want = confused_groups(confusion_rates(lab.xy, lab.truth, np.array([[1, 2], [3, 4], [5, 6]])), 0.01)
    assert want, "the fresh model confuses some pair at rate 0.01"
    run.round(0)
    assert groups_seen and all(g == want for g in groups_seen)
    names = [[VIEWS[p][0] for p in g] for g in want]
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    summary = json.loads((tmp_path / "run" / "round_0" / "summary.json").read_text())
    assert state["view_groups"] == names and summary["view_groups"] == names
    assert "view assignment auto: look-alike body parts" in capsys.readouterr().err
    # a resumed run takes the groups from the state, whatever its model now confuses
    monkeypatch.setattr(ccssl_module, "look_alike", lambda *a: pytest.fail("groups found again"))
    groups_seen.clear()
    CCSSLRun(cfg, tmp_path / "run", progress=False).round(1)
    assert groups_seen and all(g == want for g in groups_seen)
    # none found: no re-assignment, said so, and the empty finding kept
    monkeypatch.undo()
    monkeypatch.setattr(ccssl_module, "reassign_views", spy)
    monkeypatch.setattr(ccssl_module, "look_alike", lambda *a: {"groups": [], "pairs": {}})
    groups_seen.clear()
    capsys.readouterr()
    CCSSLRun(cfg, tmp_path / "none", progress=False).round(0)
    assert groups_seen == [] and "no two body parts are swapped" in capsys.readouterr().err
    assert json.loads((tmp_path / "none" / "state.json").read_text())["view_groups"] == []
