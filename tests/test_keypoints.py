"""Keypoint schemas and mappings, checked against the published definitions.

The expected values below are written out by hand from the published sources, never read from our
YAML files: mmpose ``configs/_base_/datasets/{animalpose,ap10k,atrw,coco,horse10,mpii}.py``
(``swap`` fields, ``sigmas``), cocoapi's OKS sigmas, and the CC-SSL reference
(``pose/utils/transforms.py``, ``matchedParts`` for ``real_animal``; TigDog joint order from the issue).
"""

from __future__ import annotations

import numpy as np
import pytest

from animalpose import keypoints as kp
from animalpose.errors import DataError
from animalpose.keypoints import (
    KeypointSchema,
    SchemaMapping,
    derive_flip_pairs,
    list_schemas,
    load_mapping,
    load_schema,
    schema_from_dict,
    schema_from_names,
)

PUBLISHED_FLIP_PAIRS = {
    # CC-SSL reference, transforms.py shufflelr(dataset='real_animal')
    "tigdog": [(0, 1), (3, 4), (5, 6), (8, 9), (10, 11), (12, 13), (14, 15), (16, 17)],
    # mmpose animalpose.py swap fields
    "animalpose": [(0, 1), (2, 3), (8, 9), (10, 11), (12, 13), (14, 15), (16, 17), (18, 19)],
    # mmpose ap10k.py swap fields
    "ap10k": [(0, 1), (5, 8), (6, 9), (7, 10), (11, 14), (12, 15), (13, 16)],
    # mmpose atrw.py swap fields
    "atrw": [(0, 1), (3, 5), (4, 6), (7, 10), (8, 11), (9, 12)],
    # COCO keypoints (mmpose coco.py swap fields)
    "coco": [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)],
    # MPII (mmpose mpii.py, also the hourglass reference's matchedParts)
    "mpii": [(0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)],
    # Horse-10: every swap field is empty in mmpose horse10.py
    "horse10": [],
}

NUM_JOINTS = {"tigdog": 18, "animalpose": 20, "ap10k": 17, "atrw": 15, "horse10": 22, "coco": 17, "mpii": 16}

COCO_SIGMAS = [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
               0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089]
AP10K_SIGMAS = [0.025, 0.025, 0.026, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
                0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089]
ANIMALPOSE_SIGMAS = [0.025, 0.025, 0.026, 0.035, 0.035, 0.10, 0.10, 0.10, 0.107, 0.107,
                     0.107, 0.107, 0.087, 0.087, 0.087, 0.087, 0.089, 0.089, 0.089, 0.089]
ATRW_SIGMAS = [0.0277, 0.0823, 0.0831, 0.0202, 0.0716, 0.0263, 0.0646, 0.0302, 0.0440,
               0.0316, 0.0333, 0.0547, 0.0263, 0.0683, 0.0539]


def test_all_required_schemas_are_listed():
    assert set(NUM_JOINTS) <= set(list_schemas())


@pytest.mark.parametrize("name", sorted(NUM_JOINTS))
def test_joint_count_and_published_flip_pairs(name):
    schema = load_schema(name)
    assert schema.name == name
    assert schema.num_joints == NUM_JOINTS[name]
    assert list(schema.flip_pairs) == PUBLISHED_FLIP_PAIRS[name]
    # The pairs are what the names say, too.
    assert derive_flip_pairs(schema.joints) == tuple(PUBLISHED_FLIP_PAIRS[name])
    assert schema.can_flip == bool(PUBLISHED_FLIP_PAIRS[name])


def test_published_joint_orders():
    assert load_schema("animalpose").joints == (
        "L_Eye", "R_Eye", "L_EarBase", "R_EarBase", "Nose", "Throat", "TailBase", "Withers",
        "L_F_Elbow", "R_F_Elbow", "L_B_Elbow", "R_B_Elbow", "L_F_Knee", "R_F_Knee", "L_B_Knee", "R_B_Knee",
        "L_F_Paw", "R_F_Paw", "L_B_Paw", "R_B_Paw",
    )
    coco = load_schema("coco")
    assert coco.joints[0] == "nose" and coco.joints[9] == "left_wrist" and coco.joints[16] == "right_ankle"
    mpii = load_schema("mpii")
    assert mpii.joints[0] == "r_ankle" and mpii.joints[9] == "head_top" and mpii.joints[15] == "l_wrist"
    atrw = load_schema("atrw")
    assert atrw.joints[3] == "right_shoulder" and atrw.joints[14] == "center"
    # TigDog (CC-SSL order): 0 L-eye, 1 R-eye, 2 chin, 3..6 hooves LF RF LB RB, 7 unpaired,
    # 8..11 knees, 12/13 shoulders, 14..17 elbows.
    t = load_schema("tigdog")
    assert [t.joints[i] for i in (0, 1, 2, 3, 6, 8, 11, 12, 13, 14, 17)] == [
        "L_Eye", "R_Eye", "Chin", "L_F_Hoof", "R_B_Hoof", "L_F_Knee", "R_B_Knee",
        "L_Shoulder", "R_Shoulder", "L_F_Elbow", "R_B_Elbow",
    ]
    assert all(7 not in pair for pair in t.flip_pairs)


def test_published_sigmas():
    assert load_schema("coco").sigmas == pytest.approx(COCO_SIGMAS)
    assert load_schema("ap10k").sigmas == pytest.approx(AP10K_SIGMAS)
    assert load_schema("animalpose").sigmas == pytest.approx(ANIMALPOSE_SIGMAS)
    assert load_schema("atrw").sigmas == pytest.approx(ATRW_SIGMAS)
    for name in ("tigdog", "horse10", "mpii"):
        assert load_schema(name).sigmas is None
        assert load_schema(name).sigmas_array() is None
    for name in ("coco", "ap10k", "animalpose", "atrw"):
        s = load_schema(name)
        assert len(s.sigmas) == s.num_joints
        assert s.sigmas_array().shape == (s.num_joints,)


@pytest.mark.parametrize("name", sorted(NUM_JOINTS))
def test_skeleton_edges_are_valid_and_flip_permutation_is_an_involution(name):
    s = load_schema(name)
    assert s.skeleton, "every shipped schema has a drawing skeleton"
    for a, b in s.skeleton:
        assert 0 <= a < s.num_joints and 0 <= b < s.num_joints and a != b
    perm = s.flip_permutation()
    assert np.array_equal(perm[perm], np.arange(s.num_joints))
    for i, j in s.flip_pairs:
        assert perm[i] == j and perm[j] == i


def test_flip_permutation_swaps_named_joints():
    s = load_schema("animalpose")
    kps = np.arange(20 * 3, dtype=np.float32).reshape(20, 3)
    flipped = kps[s.flip_permutation()]
    assert np.array_equal(flipped[s.index("L_F_Paw")], kps[s.index("R_F_Paw")])
    assert np.array_equal(flipped[s.index("Nose")], kps[s.index("Nose")])


def test_animalpose_original_release_order_is_a_permutation():
    s = load_schema("animalpose")
    order = s.extra["original_order"]
    assert sorted(order) == sorted(s.joints)
    # Original keypoints.json: L eye, R eye, nose, L earbase, R earbase, elbows, knees, paws, throat,
    # withers, tailbase.
    assert order[:5] == ("L_Eye", "R_Eye", "Nose", "L_EarBase", "R_EarBase")
    assert order[5:9] == ("L_F_Elbow", "R_F_Elbow", "L_B_Elbow", "R_B_Elbow")
    assert order[17:] == ("Throat", "Withers", "TailBase")


# -- deriving pairs from names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "pairs"),
    [
        (["nose", "left_eye", "right_eye"], ((1, 2),)),
        (["L_F_Paw", "Nose", "R_F_Paw"], ((0, 2),)),
        (["LeftEar", "RightEar", "Tail"], ((0, 1),)),
        (["earL", "earR", "head"], ((0, 1),)),
        (["r_ankle", "l_ankle"], ((0, 1),)),
        # "Lip" and "Rump" are words, not side markers.
        (["Lip", "Rump", "Lid"], ()),
        # A side without its mirror is unpaired.
        (["left_eye", "nose"], ()),
        # No markers at all (Horse-10's Near/Off are not left/right spellings).
        (["Nearknee", "Offknee"], ()),
    ],
)
def test_derive_flip_pairs(names, pairs):
    assert derive_flip_pairs(names) == pairs


def test_schema_from_dlc_header_and_sleap_nodes():
    # Bodyparts of the mirror-mouse DeepLabCut CSV (../shared/data/real/mirror-mouse).
    dlc = ["paw1LH_top", "paw2LF_top", "paw3RF_top", "paw4RH_top", "tailBase_top", "tailMid_top",
           "nose_top", "obs_top"]
    s = schema_from_names("mirror-mouse", dlc)
    assert s.num_joints == 8 and s.sigmas is None
    # paw1LH mirrors to paw1RH, which does not exist (the right hind paw is paw4RH): no pairs.
    assert s.flip_pairs == ()
    # SLEAP fly skeleton node names (sleap-clip).
    nodes = ["head", "thorax", "abdomen", "wingL", "wingR", "forelegL4", "forelegR4", "eyeL", "eyeR"]
    fly = schema_from_names("fly", nodes, skeleton=[("head", "thorax"), ("thorax", "wingL"), ("x", "head")])
    assert fly.flip_pairs == ((3, 4), (5, 6), (7, 8))
    assert fly.skeleton == ((0, 1), (1, 3))  # edges naming unknown nodes are dropped
    assert schema_from_names("fly", nodes, flip=False).flip_pairs == ()
    with pytest.raises(DataError) as err:
        schema_from_names("dup", ["a", "b", "a"])
    assert err.value.field == "joints"


# -- mappings --------------------------------------------------------------------------------------


def test_coco_to_animalpose_named_joints_both_directions():
    fwd = load_mapping("coco", "animalpose")
    coco, ap = load_schema("coco"), load_schema("animalpose")
    pairs = {(coco.joints[a], ap.joints[b]) for a, b in fwd.pairs}
    for human, animal in [
        ("left_wrist", "L_F_Paw"), ("right_wrist", "R_F_Paw"), ("left_shoulder", "L_F_Elbow"),
        ("left_elbow", "L_F_Knee"), ("left_hip", "L_B_Elbow"), ("right_knee", "R_B_Knee"),
        ("left_ankle", "L_B_Paw"), ("nose", "Nose"), ("left_eye", "L_Eye"), ("right_eye", "R_Eye"),
    ]:
        assert (human, animal) in pairs
    back = load_mapping("animalpose", "coco")
    assert (back.source, back.target) == ("animalpose", "coco")
    assert (ap.index("L_F_Paw"), coco.index("left_wrist")) in back.pairs

    kps = np.zeros((17, 3), dtype=np.float32)
    kps[coco.index("left_wrist")] = [10.0, 20.0, 2]
    kps[coco.index("right_ankle")] = [30.0, 40.0, 1]
    out = fwd.apply(kps)
    assert out.shape == (20, 3)
    assert out[ap.index("L_F_Paw")].tolist() == [10.0, 20.0, 2.0]
    assert out[ap.index("R_B_Paw")].tolist() == [30.0, 40.0, 1.0]
    others = [i for i in range(20) if i not in (ap.index("L_F_Paw"), ap.index("R_B_Paw"))]
    assert not out[others].any()
    # Animal joints no human has: throat, withers, tail base.
    mask = fwd.target_mask()
    assert not mask[[ap.index("Throat"), ap.index("Withers"), ap.index("TailBase")]].any()
    assert mask.sum() == len(fwd.pairs)

    animal = np.zeros((20, 3), dtype=np.float32)
    animal[ap.index("L_F_Paw")] = [5.0, 6.0, 2]
    animal[ap.index("Withers")] = [7.0, 8.0, 2]  # unmapped: dropped
    human = back.apply(animal)
    assert human.shape == (17, 3)
    assert human[coco.index("left_wrist")].tolist() == [5.0, 6.0, 2.0]
    assert np.count_nonzero(human) == 3


def test_animalpose_tigdog_named_joints_both_directions():
    ap, td = load_schema("animalpose"), load_schema("tigdog")
    fwd = load_mapping("animalpose", "tigdog")
    back = load_mapping("tigdog", "animalpose")
    named = {(ap.joints[a], td.joints[b]) for a, b in fwd.pairs}
    assert ("L_F_Paw", "L_F_Hoof") in named and ("R_B_Paw", "R_B_Hoof") in named
    assert ("L_Eye", "L_Eye") in named and ("R_B_Elbow", "R_B_Elbow") in named
    # TigDog's chin and unpaired joint 7 have no Animal-Pose counterpart.
    assert not fwd.target_mask()[[td.index("Chin"), 7]].any()
    kps = np.zeros((18, 3))
    kps[td.index("R_F_Hoof")] = [1.0, 2.0, 2]
    kps[td.index("Chin")] = [3.0, 4.0, 2]
    out = back.apply(kps)
    assert out[ap.index("R_F_Paw")].tolist() == [1.0, 2.0, 2.0]
    assert np.count_nonzero(out) == 3
    # Round trip on the common joints is the identity there and zero elsewhere.
    rng = np.random.default_rng(0)
    full = rng.uniform(1, 100, size=(20, 3))
    again = back.apply(fwd.apply(full))
    common = fwd.source_indices
    assert np.array_equal(again[common], full[common])
    assert not np.delete(again, common, axis=0).any()


def test_ap10k_animalpose_named_joints_and_batched_apply():
    ak, ap = load_schema("ap10k"), load_schema("animalpose")
    fwd = load_mapping("ap10k", "animalpose")
    named = {(ak.joints[a], ap.joints[b]) for a, b in fwd.pairs}
    for pair in [("L_Shoulder", "L_F_Elbow"), ("L_Elbow", "L_F_Knee"), ("R_Hip", "R_B_Elbow"),
                 ("R_Knee", "R_B_Knee"), ("Root_of_Tail", "TailBase"), ("Nose", "Nose")]:
        assert pair in named
    assert "Neck" not in {ak.joints[a] for a, _ in fwd.pairs}
    batch = np.zeros((2, 17, 3))
    batch[1, ak.index("L_B_Paw")] = [9.0, 9.0, 2]
    out = fwd.apply(batch)
    assert out.shape == (2, 20, 3)
    assert out[1, ap.index("L_B_Paw")].tolist() == [9.0, 9.0, 2.0]
    assert np.count_nonzero(out) == 3
    back = load_mapping("animalpose", "ap10k")
    assert back.inverse() == fwd
    with pytest.raises(ValueError, match="expected 17"):
        fwd.apply(np.zeros((20, 3)))


def test_mappings_pair_each_joint_at_most_once_and_left_to_left():
    for src, dst in [("coco", "animalpose"), ("animalpose", "tigdog"), ("ap10k", "animalpose")]:
        m = load_mapping(src, dst)
        a, b = load_schema(src), load_schema(dst)
        assert len(set(m.source_indices)) == len(m.pairs) == len(set(m.target_indices))
        # A mapped left joint lands on a left joint: the mapping commutes with the flip.
        fa, fb = a.flip_permutation(), b.flip_permutation()
        mapped = dict(m.pairs)
        for i, j in m.pairs:
            assert mapped.get(int(fa[i])) == int(fb[j])


def test_unknown_mapping_and_schema_raise_data_error():
    with pytest.raises(DataError) as err:
        load_mapping("mpii", "tigdog")
    assert "mpii" in str(err.value)
    with pytest.raises(DataError) as err:
        load_schema("no_such_schema")
    assert err.value.field == "name" and "no_such_schema.yaml" in err.value.file


# -- malformed schema files ------------------------------------------------------------------------

GOOD = {"name": "toy", "joints": ["L_Eye", "R_Eye", "Nose"], "flip_pairs": [[0, 1]], "sigmas": [0.1, 0.1, 0.2],
        "skeleton": [["L_Eye", "Nose"]]}


def test_schema_from_dict_builds_and_converts():
    s = schema_from_dict(dict(GOOD), "toy.yaml")
    assert isinstance(s, KeypointSchema)
    assert s.flip_pairs == ((0, 1),) and s.skeleton == ((0, 2),) and s.sigmas == (0.1, 0.1, 0.2)
    d = s.to_dict()
    assert d == {"name": "toy", "joints": ["L_Eye", "R_Eye", "Nose"], "flip_pairs": [[0, 1]],
                 "sigmas": [0.1, 0.1, 0.2], "skeleton": [[0, 2]]}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"flip_pairs": [[0, 2]]}, "flip_pairs"),  # published pairs disagree with the names
        ({"flip_pairs": [[0, 1], [1, 2]]}, "flip_pairs"),
        ({"flip_pairs": [["a", "b"]]}, "flip_pairs"),
        ({"sigmas": [0.1, 0.1]}, "sigmas"),
        ({"sigmas": ["x", 0.1, 0.1]}, "sigmas"),
        ({"sigmas": 0.1}, "sigmas"),
        ({"joints": ["a", "a"]}, "joints"),
        ({"joints": "a"}, "joints"),
        ({"skeleton": [["L_Eye", "Tail"]]}, "skeleton[0]"),
        ({"skeleton": [["L_Eye"]]}, "skeleton[0]"),
        ({"colour": "red"}, "colour"),
        ({"original_order": ["Nose"]}, "original_order"),
    ],
)
def test_malformed_schema_dict_names_file_and_field(change, field):
    data = {**GOOD, **change}
    with pytest.raises(DataError) as err:
        schema_from_dict(data, "configs/keypoints/toy.yaml")
    assert err.value.file == "configs/keypoints/toy.yaml"
    assert err.value.field == field
    assert str(err.value).startswith(f"configs/keypoints/toy.yaml: {field}: ")


def test_missing_keys_and_non_mapping():
    for key in ("name", "joints"):
        data = {k: v for k, v in GOOD.items() if k != key}
        with pytest.raises(DataError) as err:
            schema_from_dict(data, "f.yaml")
        assert err.value.field == key
    with pytest.raises(DataError) as err:
        schema_from_dict(["L_Eye"], "f.yaml")
    assert err.value.field == "<root>"


@pytest.fixture
def schema_dir(tmp_path, monkeypatch):
    """A private schema folder, with the load caches cleared around the test."""
    (tmp_path / "mappings").mkdir()
    monkeypatch.setattr(kp, "SCHEMA_DIR", tmp_path)
    monkeypatch.setattr(kp, "MAPPING_DIR", tmp_path / "mappings")
    kp.load_schema.cache_clear()
    kp.load_mapping.cache_clear()
    yield tmp_path
    kp.load_schema.cache_clear()
    kp.load_mapping.cache_clear()


def test_load_schema_file_errors_name_the_file(schema_dir):
    (schema_dir / "broken.yaml").write_text("name: broken\njoints: [a, b\n")
    with pytest.raises(DataError) as err:
        load_schema("broken")
    assert err.value.file.endswith("broken.yaml") and "malformed YAML" in str(err.value)

    (schema_dir / "liar.yaml").write_text(
        "name: liar\njoints: [left_paw, right_paw, tail]\nflip_pairs: [[0, 2]]\n"
    )
    with pytest.raises(DataError) as err:
        load_schema("liar")
    assert err.value.file.endswith("liar.yaml") and err.value.field == "flip_pairs"
    assert "[(0, 1)]" in str(err.value)

    (schema_dir / "renamed.yaml").write_text("name: other\njoints: [a]\n")
    with pytest.raises(DataError) as err:
        load_schema("renamed")
    assert err.value.field == "name"

    (schema_dir / "ok.yaml").write_text("name: ok\njoints: [left_paw, right_paw, tail]\n")
    assert load_schema("ok").flip_pairs == ((0, 1),)
    assert list_schemas() == ["broken", "liar", "ok", "renamed"]


def test_load_mapping_errors_name_the_file_and_pair(schema_dir):
    (schema_dir / "a.yaml").write_text("name: a\njoints: [left_paw, right_paw]\n")
    (schema_dir / "b.yaml").write_text("name: b\njoints: [L_Paw, R_Paw, Tail]\n")
    maps = schema_dir / "mappings"
    (maps / "a__b.yaml").write_text("source: a\ntarget: b\npairs:\n  - [left_paw, L_Paw]\n  - [right_paw, Nose]\n")
    with pytest.raises(DataError) as err:
        load_mapping("a", "b")
    assert err.value.file.endswith("a__b.yaml") and err.value.field == "pairs[1]"

    (maps / "a__b.yaml").write_text("source: a\ntarget: b\npairs: [[left_paw, L_Paw], [right_paw, L_Paw]]\n")
    kp.load_mapping.cache_clear()
    with pytest.raises(DataError, match="appears twice"):
        load_mapping("a", "b")

    (maps / "a__b.yaml").write_text("source: a\ntarget: b\npairs: [[left_paw, L_Paw]\n")
    kp.load_mapping.cache_clear()
    with pytest.raises(DataError, match="malformed YAML"):
        load_mapping("a", "b")

    (maps / "a__b.yaml").write_text("source: a\npairs: []\n")
    kp.load_mapping.cache_clear()
    with pytest.raises(DataError) as err:
        load_mapping("b", "a")
    assert err.value.field == "target"

    (maps / "a__b.yaml").write_text("source: a\ntarget: b\npairs: [[left_paw, L_Paw], [right_paw, R_Paw]]\n")
    kp.load_mapping.cache_clear()
    m = load_mapping("b", "a")
    assert isinstance(m, SchemaMapping) and m.pairs == ((0, 0), (1, 1)) and m.num_source == 3


# -- the careful loader serves schema and mapping files too ------------------------------------------


@pytest.mark.parametrize(("text", "field", "says"), [
    ("name: toy\njoints: [a, b]\ncolour: red\n", "colour", "unknown key"),
    ("name: toy\njoints: [a, b]\nsigma: [0.1, 0.1]\n", "sigma", "did you mean 'sigmas'"),
    ("name: toy\njoints: [a, b]\nskeleton: a\n", "skeleton", "valid list"),
    ("name: [toy]\njoints: [a, b]\n", "name", "valid string"),
    ("name: toy\njoints: [a, b]\njoints: [c]\n", "line 3, column 1", "duplicate key 'joints'"),
])
def test_a_schema_file_with_a_bad_key_or_type_names_the_file_and_the_key(schema_dir, text, field, says):
    (schema_dir / "toy.yaml").write_text(text)
    with pytest.raises(DataError) as err:
        load_schema("toy")
    assert err.value.file == str(schema_dir / "toy.yaml") and err.value.field == field and says in str(err.value)


@pytest.mark.parametrize(("text", "field", "says"), [
    ("source: a\ntarget: b\npairs: [[left_paw, L_Paw]]\ntargets: c\n", "targets", "did you mean 'target'"),
    ("source: [a]\ntarget: b\npairs: []\n", "source", "valid string"),
    ("source: a\ntarget: b\npairs: {left_paw: L_Paw}\n", "pairs", "valid list"),
])
def test_a_mapping_file_with_a_bad_key_or_type_names_the_file_and_the_key(schema_dir, text, field, says):
    (schema_dir / "a.yaml").write_text("name: a\njoints: [left_paw, right_paw]\n")
    (schema_dir / "b.yaml").write_text("name: b\njoints: [L_Paw, R_Paw]\n")
    path = schema_dir / "mappings" / "a__b.yaml"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        load_mapping("a", "b")
    assert err.value.file == str(path) and err.value.field == field and says in str(err.value)
