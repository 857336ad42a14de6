"""Lightning Pose's pose-PCA loss (animalpose.adapt.pca_loss): the fit and the loss by hand, poses on and off the
subspace, the gradient, and the term inside CC-SSL training on a generated video target."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from animalpose.adapt.ccssl import CCSSLRun
from animalpose.adapt.pca_loss import fit_pose_pca, labelled_poses, pca_loss, reconstruction_error
from animalpose.engine.trainer import Trainer
from animalpose.errors import ConfigError

SIZE = 64


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """torch on one thread (tests/conftest.py)."""


def test_fit_and_loss_by_hand():
    # one keypoint, four labelled poses (-2, 0), (2, 0), (0, 1), (0, -1): mean 0, variance 2 along x, 0.5 along
    # y -> x explains 0.8; keeping 0.8 of the variance keeps the x axis alone
    poses = np.array([[[-2.0, 0.0]], [[2.0, 0.0]], [[0.0, 1.0]], [[0.0, -1.0]]])
    pca = fit_pose_pca(poses, components=0.8, percentile=50.0)
    assert pca.num_components == 1 and pca.explained == pytest.approx(0.8)
    assert pca.mean.tolist() == [0.0, 0.0] and abs(pca.components[0, 0].item()) == pytest.approx(1.0)
    # the labelled poses' own errors |y| = 0, 0, 1, 1 -> their median eps = 0.5
    assert pca.epsilon == pytest.approx(0.5)
    # predictions (5, 3): error 3, pays 2.5; (7, 0.2): error 0.2 < eps, pays 0 -> mean 1.25
    coords = torch.tensor([[[5.0, 3.0]], [[7.0, 0.2]]])
    assert reconstruction_error(coords, pca)[:, 0].tolist() == pytest.approx([3.0, 0.2])
    assert float(pca_loss(coords, pca)) == pytest.approx(1.25)
    # a fraction just above 0.8 needs both axes (the whole plane): nothing is off it
    assert fit_pose_pca(poses, components=0.81).num_components == 2
    assert float(pca_loss(coords, fit_pose_pca(poses, components=2, epsilon=0.0))) == pytest.approx(0.0, abs=1e-6)
    # the 90th percentile (Lightning Pose's default) of 0, 0, 1, 1 is 1; a given eps is used as is
    assert fit_pose_pca(poses, components=1).epsilon == pytest.approx(1.0)
    assert fit_pose_pca(poses, components=1, epsilon=0.25).epsilon == 0.25


def _subspace_poses(n: int = 40, joints: int = 5, rank: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` poses of ``joints`` keypoints lying exactly on a ``rank``-dim affine subspace, and its basis."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(2 * joints, rank)))[0].T  # (rank, 2J) orthonormal
    mean = rng.uniform(50, 150, size=2 * joints)
    poses = mean + rng.normal(scale=[30, 15, 5][:rank], size=(n, rank)) @ basis
    return poses.reshape(n, joints, 2), basis


def test_a_pose_on_the_subspace_costs_nothing_and_an_implausible_one_pays():
    poses, basis = _subspace_poses()
    pca = fit_pose_pca(poses, components=0.99, epsilon=0.0)
    assert pca.num_components == 3
    # a new pose on the labelled subspace (further out than any labelled one) reconstructs exactly
    mean = poses.reshape(len(poses), -1).mean(0)
    on = torch.tensor((mean + np.array([80.0, -40.0, 10.0]) @ basis).reshape(1, 5, 2), dtype=torch.float32)
    assert float(pca_loss(on, pca)) == pytest.approx(0.0, abs=1e-3)
    # the pose moved 20 px (in 2J-space) along a direction orthogonal to the subspace: its residual is that move,
    # so the keypoints' errors make up a vector of length 20
    off_dir = np.linalg.qr(np.concatenate([basis.T, np.eye(10)[:, :1]], axis=1))[0][:, 3]  # unit, ⟂ basis
    off = on.clone().reshape(1, 10) + torch.tensor(20.0 * off_dir, dtype=torch.float32)
    errors = reconstruction_error(off.reshape(1, 5, 2), pca)
    assert float(errors.square().sum()) == pytest.approx(400.0, rel=1e-4)
    assert float(errors.mean()) > 0
    assert float(pca_loss(off.reshape(1, 5, 2), pca)) == pytest.approx(float(errors.mean()), rel=1e-5)
    # the labelled poses' own errors are ~0, so their 90th percentile is too
    assert fit_pose_pca(poses, components=3).epsilon == pytest.approx(0.0, abs=1e-4)


def test_the_gradient_pulls_an_implausible_pose_back():
    poses, basis = _subspace_poses()
    pca = fit_pose_pca(poses, components=3, epsilon=1.0)
    mean = poses.reshape(len(poses), -1).mean(0)
    on = (mean + np.array([10.0, 5.0, -3.0]) @ basis).reshape(1, 5, 2)
    x = torch.tensor(on, dtype=torch.float32, requires_grad=True)
    pca_loss(x, pca).backward()
    assert torch.count_nonzero(x.grad) == 0  # on the subspace: within eps, no pull
    bad = on.copy()
    bad[0, 2] += [15.0, -10.0]  # keypoint 2 dragged away
    x = torch.tensor(bad, dtype=torch.float32, requires_grad=True)
    loss = pca_loss(x, pca)
    loss.backward()
    assert x.grad.abs().sum() > 0
    stepped = (x - 0.5 * x.grad).detach()
    assert float(pca_loss(stepped, pca)) < loss.item()


def test_fit_refuses_too_few_poses_and_bad_counts():
    poses, _ = _subspace_poses(n=9)  # 9 poses for 10 dimensions
    with pytest.raises(ValueError, match="9 fully labelled poses for 10 pose dimensions"):
        fit_pose_pca(poses)
    poses, _ = _subspace_poses(n=12)
    with pytest.raises(ValueError, match=r"components 11 is not in 1\.\.10"):
        fit_pose_pca(poses, components=11)
    # frames missing a selected keypoint are left out; the others are kept
    kp = np.zeros((3, 4, 3))
    kp[..., 2] = 2
    kp[1, 3, 2] = 0
    kp[:, :, :2] = np.arange(24).reshape(3, 4, 2)
    assert labelled_poses(list(kp), (0, 3)).shape == (2, 2, 2)
    assert labelled_poses(list(kp), (0, 1)).tolist() == kp[:, :2, :2].tolist()


def _dots(write, out, n: int = 12) -> str:
    """One clip of ``n`` frames of 17 coloured dots; each moves on its own straight line at its own speed
    (the poses span a 2-dim subspace)."""
    rng = np.random.default_rng(0)
    start = rng.uniform(14, SIZE - 30, size=(17, 2))
    velocity = rng.uniform(-1, 1.5, size=(17, 2))
    return write(out, rng, [start + f * velocity + (f % 3) * np.array([1.0, 0.0]) for f in range(n)])


JOINTS = ["nose", "left_eye", "right_eye", "left_ear"]


def _numpy_coords(trainer, items) -> np.ndarray:
    """(N, K, 2) soft-argmax (beta 160) readouts of the model's heatmaps in original pixels, by numpy."""
    with torch.no_grad():
        hm = trainer.model(torch.stack([it["image"] for it in items]))[-1].double().numpy()
    p = np.exp(160 * (hm - hm.max(axis=(2, 3), keepdims=True)))
    p /= p.sum(axis=(2, 3), keepdims=True)
    ys, xs = np.mgrid[0:16, 0:16]
    crop = np.stack([(p * xs).sum((2, 3)), (p * ys).sum((2, 3))], -1) * 4.0  # heatmap -> crop pixels
    mats = [it["meta"]["matrix"].numpy() for it in items]
    return np.stack([np.linalg.solve(m[:, :2], (c - m[:, 2]).T).T for m, c in zip(mats, crop, strict=True)])


def test_the_term_joins_the_training_loss(tmp_path, dot_clip, ccssl_clip_config):
    clip = _dots(dot_clip, tmp_path / "clip")
    run = CCSSLRun(ccssl_clip_config(clip, pca_loss_weight=3.0, pca_loss_joints=JOINTS, pca_loss_frames=20,
                           pca_loss_epsilon=0.5), tmp_path / "run", progress=False)
    run.prepare()
    trainer = run.trainer
    term = trainer.pose_pca
    # fitted on the 12 labelled source poses of the 4 joints (coco indices 0..3)
    assert term.pca.joints == (0, 1, 2, 3) and term.pca.epsilon == 0.5 and len(term.dataset) == 12
    trainer.model.eval()
    idx = list(range(12))
    items = [term.dataset[i] for i in idx]
    with torch.no_grad():
        value = float(trainer.pca_term(idx))
    coords = _numpy_coords(trainer, items)[:, :4]
    mean, axes = term.pca.mean.double().numpy(), term.pca.components.double().numpy()
    c = coords.reshape(12, 8) - mean
    err = np.linalg.norm((c - c @ axes.T @ axes).reshape(12, 4, 2), axis=-1)
    assert value == pytest.approx(np.maximum(err - 0.5, 0).mean(), rel=1e-4, abs=1e-5)
    # in the step (temporal off): L = L_source + 3 * L_pca of the drawn frames (all 12: frames 20 > 12)
    batch = torch.utils.data.default_collate([trainer.train_set[i] for i in range(4)])
    with torch.no_grad():
        total = float(trainer._forward_loss(batch)[0])
        source = float(Trainer._forward_loss(trainer, batch)[0])
    assert total == pytest.approx(source + 3.0 * value, rel=1e-5)
    # a round trains with it
    assert run.round(0)["epochs"] == [0, 1]


def test_with_the_temporal_term_both_use_the_step_clip(tmp_path, dot_clip, ccssl_clip_config, step_losses):
    clip = _dots(dot_clip, tmp_path / "clip")
    run = CCSSLRun(ccssl_clip_config(clip, pca_loss_weight=2.0, pca_loss_joints=JOINTS, temporal_loss_weight=0.5,
                           temporal_loss_clip=4, temporal_loss_epsilon=0.0), tmp_path / "run", progress=False)
    (temporal, pca), total, source = step_losses(run, 2, ("temporal_term", "pca_term"))
    assert total == pytest.approx(source + 0.5 * temporal + 2.0 * pca, rel=1e-5)


def test_bad_settings_are_named(tmp_path, dot_clip, ccssl_clip_config):
    clip = _dots(dot_clip, tmp_path / "clip")
    with pytest.raises(ConfigError, match=r"ccssl\.pca_loss_joints.*'snout'.*not keypoints of schema 'coco'"):
        CCSSLRun(ccssl_clip_config(clip, pca_loss_weight=1.0, pca_loss_joints=["nose", "snout"]), tmp_path / "a",
                 progress=False).prepare()
    # all 17 joints: 34 dimensions, 12 labelled poses
    with pytest.raises(ConfigError, match=r"ccssl\.pca_loss_joints.*12 fully labelled poses for 34"):
        CCSSLRun(ccssl_clip_config(clip, pca_loss_weight=1.0), tmp_path / "b", progress=False).prepare()
    with pytest.raises(ConfigError, match=r"ccssl\.pca_loss_components.*components 9 is not in 1..8"):
        CCSSLRun(ccssl_clip_config(clip, pca_loss_weight=1.0, pca_loss_joints=JOINTS, pca_loss_components=9),
                 tmp_path / "c", progress=False).prepare()
