"""The WS-CDA joint keypoint space over coco and animalpose."""

import numpy as np
import pytest

from animalpose.adapt.wscda.joint_space import build_joint_space, joint_space_from_mapping
from animalpose.keypoints import SchemaMapping, load_schema, schema_from_names

ANIMAL_ONLY = ("Throat", "TailBase", "Withers")


def test_coco_animalpose_space_is_the_animal_schema():
    js = build_joint_space("coco", "animalpose")
    animal = load_schema("animalpose")
    # every coco joint has a counterpart in the shipped table, so the union adds nothing
    assert js.joints == animal.joints
    assert js.num_joints == 20
    assert js.domain_mask("animal").all()
    human = js.domain_mask("human")
    assert human.sum() == 17
    assert {js.joints[j] for j in np.flatnonzero(~human)} == set(ANIMAL_ONLY)
    # the explicit correspondences: nose -> Nose, left_shoulder -> L_F_Elbow, right_ankle -> R_B_Paw
    coco = load_schema("coco")
    for human_joint, animal_joint in [("nose", "Nose"), ("left_shoulder", "L_F_Elbow"), ("right_ankle", "R_B_Paw")]:
        assert js.joints[js.human_index[coco.index(human_joint)]] == animal_joint
    assert js.schema().flip_pairs == animal.flip_pairs


def test_lift_project_round_trip_and_weights():
    js = build_joint_space()
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.uniform(0, 64, (2, 17, 2)), rng.integers(0, 3, (2, 17, 1))], axis=-1)
    lifted = js.lift(kp, "human")
    assert lifted.shape == (2, 20, 3)
    np.testing.assert_array_equal(js.project(lifted, "human"), kp)
    np.testing.assert_array_equal(lifted[:, ~js.domain_mask("human")], 0.0)
    weights = js.target_weights(kp, "human")
    assert weights.shape == (2, 20) and weights.dtype == np.float32
    np.testing.assert_array_equal(weights[:, js.human_index], (kp[..., 2] > 0).astype(np.float32))
    np.testing.assert_array_equal(weights[:, ~js.domain_mask("human")], 0.0)
    # animal keypoints keep their order: channel j is animal joint j
    animal_kp = np.ones((20, 3))
    np.testing.assert_array_equal(js.lift(animal_kp, "animal"), animal_kp)
    with pytest.raises(ValueError, match="expected"):
        js.lift(np.ones((20, 3)), "human")
    with pytest.raises(ValueError, match="unknown domain"):
        js.domain_mask("fish")


def test_unmapped_human_joints_are_appended():
    human = schema_from_names("tinyhuman", ["head", "left_hand", "right_hand", "left_foot"])
    animal = schema_from_names("tinyanimal", ["Head", "Tail", "L_F_Paw"])
    mapping = SchemaMapping("tinyhuman", "tinyanimal", ((0, 0), (1, 2)), 4, 3)
    js = joint_space_from_mapping(human, animal, mapping)
    assert js.joints == ("Head", "Tail", "L_F_Paw", "tinyhuman:right_hand", "tinyhuman:left_foot")
    assert js.human_index.tolist() == [0, 2, 3, 4]
    assert js.domain_mask("human").tolist() == [True, False, True, True, True]
    assert js.domain_mask("animal").tolist() == [True, True, True, False, False]
    with pytest.raises(ValueError, match="does not map"):
        joint_space_from_mapping(animal, human, mapping)
