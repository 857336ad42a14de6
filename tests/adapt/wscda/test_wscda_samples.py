"""WS-CDA sample encoding in the joint space with a real heatmap codec, and collation."""

import numpy as np
import pytest
import torch
from wscda_helpers import collate_wscda, encode_joint_targets, make_sample

from animalpose.adapt.wscda.joint_space import build_joint_space
from animalpose.codecs import build_codec
from animalpose.keypoints import load_schema

JS = build_joint_space("coco", "animalpose")
CODEC = build_codec("gaussian", 64, 16, sigma=1.0)


def _keypoints(k, seed):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(8, 56, (k, 2)), np.full((k, 1), 2.0)], axis=1)


def test_human_targets_live_on_their_mapped_channels():
    kp = _keypoints(17, 0)
    kp[3, 2] = 0  # left_ear unlabelled
    heatmaps, weights = encode_joint_targets(kp, "human", JS, CODEC)
    assert heatmaps.shape == (20, 16, 16) and weights.shape == (20,)
    animal = load_schema("animalpose")
    for name in ("Throat", "TailBase", "Withers", "L_EarBase"):
        j = animal.index(name)
        assert weights[j] == 0 and not heatmaps[j].any()
    nose = animal.index("Nose")
    assert weights[nose] == 1
    # the Nose channel peaks where the codec puts coco's nose
    peak = np.unravel_index(np.argmax(heatmaps[nose]), heatmaps[nose].shape)
    expected = np.floor(kp[0, :2] * 16 / 64 + 0.5).astype(int)
    assert (peak[1], peak[0]) == tuple(expected)
    assert weights.sum() == 16


def test_animal_and_unlabelled_target_samples():
    heatmaps, weights = encode_joint_targets(_keypoints(20, 1), "labelled_animal", JS, CODEC)
    assert weights.sum() == 20 and np.allclose(heatmaps.max(axis=(1, 2)), 1.0)
    heatmaps, weights = encode_joint_targets(None, "target_animal", JS, CODEC)
    assert not heatmaps.any() and not weights.any()
    with pytest.raises(ValueError, match="expected"):
        encode_joint_targets(_keypoints(17, 0), "labelled_animal", JS, CODEC)
    with pytest.raises(ValueError, match="unknown source"):
        encode_joint_targets(None, "robot", JS, CODEC)


def test_collate_builds_a_batch_with_domain_labels():
    image = torch.zeros(3, 64, 64)
    samples = [
        make_sample(image, _keypoints(17, 0), "human", JS, CODEC),
        make_sample(image, _keypoints(20, 1), "labelled_animal", JS, CODEC),
        make_sample(image, None, "target_animal", JS, CODEC),
    ]
    batch = collate_wscda(samples)
    assert batch.images.shape == (3, 3, 64, 64)
    assert batch.heatmaps.shape == (3, 20, 16, 16) and batch.heatmaps.dtype == torch.float32
    assert batch.weights.sum(dim=1).tolist() == [17.0, 20.0, 0.0]
    assert batch.y.tolist() == [0, 1, 1] and batch.z.tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="empty"):
        collate_wscda([])
