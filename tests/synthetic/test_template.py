"""Species templates: loading, validation, symmetry and forward kinematics."""

from __future__ import annotations

import numpy as np
import pytest

from animalpose.errors import ConfigError
from animalpose.keypoints import load_schema
from synthetic.template import SPECIES_DIR, list_species, load_template, load_template_file, rotation

EMITS = {"horse": {"tigdog", "animalpose"}, "tiger": {"tigdog", "animalpose"}, "dog": {"animalpose"},
         "sheep": {"animalpose"}, "elephant": {"animalpose"}, "human": {"coco"}}


def test_all_species_present_and_emit_their_schemas():
    assert set(EMITS) <= set(list_species())
    for name, schemas in EMITS.items():
        tpl = load_template(name)
        assert schemas <= set(tpl.keypoints)
        for schema, landmarks in tpl.keypoints.items():
            assert len(landmarks) == load_schema(schema).num_joints


@pytest.mark.parametrize("name", sorted(EMITS))
def test_templates_are_left_right_symmetric(name):
    tpl = load_template(name)
    mirror = np.array([1.0, 1.0, -1.0])
    np.testing.assert_allclose(tpl.rest[tpl.mirror_joint], tpl.rest * mirror)
    # Left limbs sit at negative z (the animal's left when x is forward and y up).
    left = [j for j, n in enumerate(tpl.joints) if n.startswith("L_")]
    assert left and np.all(tpl.rest[left, 2] < 0)
    np.testing.assert_allclose(tpl.vol_radii[tpl.mirror_volume], tpl.vol_radii)


def test_rotation_order_and_flex_sign():
    # Positive flex (about z) turns a downward limb forward (+x).
    down = np.array([0.0, -1.0, 0.0])
    np.testing.assert_allclose(rotation(np.array([90.0, 0, 0])) @ down, [1.0, 0.0, 0.0], atol=1e-12)
    r = rotation(np.array([30.0, 20.0, 10.0]))
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0)
    # Composition order Rz(flex) Rx(abduction) Ry(twist), from the elementary rotations.
    z, x, y = np.deg2rad([30.0, 20.0, 10.0])
    rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    np.testing.assert_allclose(r, rz @ rx @ ry, atol=1e-12)


def test_forward_kinematics_by_hand():
    tpl = load_template("horse")
    angles = np.zeros((tpl.num_joints, 3))
    pos, _ = tpl.forward(angles)
    np.testing.assert_allclose(pos, tpl.rest)
    # Swing the left fore leg forward 90 degrees at the shoulder: the elbow offset (dx, dy) becomes (-dy, dx).
    s, e = tpl.joint("L_F_shoulder"), tpl.joint("L_F_elbow")
    angles[s, 0] = 90.0
    pos, _ = tpl.forward(angles)
    d = tpl.rest[e] - tpl.rest[s]
    np.testing.assert_allclose(pos[e] - pos[s], [-d[1], d[0], d[2]], atol=1e-12)
    # Length factors scale the offset from the parent.
    lengths = np.ones(tpl.num_joints)
    lengths[e] = 1.2
    pos, _ = tpl.forward(np.zeros((tpl.num_joints, 3)), lengths)
    np.testing.assert_allclose(pos[e] - pos[s], 1.2 * d, atol=1e-12)


def test_bad_template_names_file_and_key(tmp_path):
    text = (SPECIES_DIR / "dog.yaml").read_text()
    bad = tmp_path / "dog.yaml"
    bad.write_text(text.replace("  L_F_elbow: [L_F_shoulder,", "  L_F_elbow: [nope,"))
    with pytest.raises(ConfigError) as err:
        load_template_file(bad)
    assert str(bad) in str(err.value) and "joints.L_F_elbow" in str(err.value)
    bad.write_text(text + "colour: red\n")
    with pytest.raises(ConfigError, match="colour"):
        load_template_file(bad)
    bad.write_text(text.replace("L_F_Paw: L_F_hoof", "L_F_Paw: L_F_claw"))
    with pytest.raises(ConfigError, match=r"keypoints\.animalpose\.L_F_Paw"):
        load_template_file(bad)
    with pytest.raises(ConfigError, match="unknown species"):
        load_template("unicorn")


@pytest.mark.parametrize(("old", "new", "field", "says"), [
    ("schemas: [animalpose, tigdog]", "schemas: animalpose", "schemas", "valid list"),
    ("part: head, mat: nose}", "part: head, mat: nose, joints: head}", "volumes.nose_v.joints",
     "did you mean 'joint'"),
    ("tailbase: {joint: tail1, parts: [body, tail], tol: 0.05}",
     "tailbase: {joint: tail1, parts: [body, tail], tolerance: 0.05}", "landmarks.tailbase.tolerance", "unknown key"),
    ("nose: {joint: head, at: [0.75, 0.67, 0.0], parts: [head], tol: 0.02}",
     "nose: {joint: head, at: [0.75, 0.67, 0.0], parts: [head], tol: near}", "landmarks.nose.tol", "valid number"),
    ("motion: quadruped", "motion: quadruped\nmotion: biped", "line 5, column 1", "duplicate key 'motion'"),
])
def test_a_template_with_a_bad_key_or_type_names_the_file_and_the_key(tmp_path, old, new, field, says):
    text = (SPECIES_DIR / "dog.yaml").read_text()
    assert old in text
    bad = tmp_path / "dog.yaml"
    bad.write_text(text.replace(old, new))
    with pytest.raises(ConfigError) as err:
        load_template_file(bad)
    assert err.value.file == str(bad) and err.value.field == field and says in str(err.value)


def test_a_motion_file_with_a_bad_key_names_the_motion_file(tmp_path, monkeypatch):
    import synthetic.template as template

    for f in SPECIES_DIR.glob("_motion_*.yaml"):
        (tmp_path / f.name).write_text(f.read_text())
    motion = tmp_path / "_motion_quadruped.yaml"
    motion.write_text(motion.read_text().replace("gaits:", "gait_speed: 1.0\ngaits:"))
    monkeypatch.setattr(template, "SPECIES_DIR", tmp_path)
    with pytest.raises(ConfigError) as err:
        load_template_file(SPECIES_DIR / "dog.yaml")
    assert err.value.file == str(motion) and err.value.field == "gait_speed"
    assert "did you mean 'gaits'" in str(err.value)
