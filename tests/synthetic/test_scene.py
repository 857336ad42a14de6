"""Rendered instances: labels agree with the silhouette and the depth buffer; flips; determinism."""

from __future__ import annotations

import numpy as np
import pytest

from animalpose.keypoints import load_schema
from synthetic import render_sample
from synthetic.render import ray_cast
from synthetic.scene import EPS, OCCLUDER, render_scene
from synthetic.styles import StyleConfig
from synthetic.template import load_template

SPECIES = ["horse", "tiger", "dog", "sheep", "elephant", "human"]
SIZE = 80


def _landmarks(tpl, r, schema):
    """(K, 3) camera-space points and per-joint (parts, tol) of a schema's keypoints."""
    index = {n: i for i, n in enumerate(r.geometry.landmark_names)}
    names = tpl.keypoints[schema]
    pts = r.geometry.landmarks[[index[n] for n in names]]
    return pts, [tpl.landmarks[n][2:] for n in names]


@pytest.mark.parametrize("species", SPECIES)
def test_visible_keypoints_lie_on_their_part_and_occlusion_matches_ray_casting(species):
    tpl = load_template(species)
    style = StyleConfig.make("wild")  # occluders and truncation are more frequent here
    counts = np.zeros(3, int)
    for seed in range(6):
        r = render_scene(species, style, seed, SIZE)
        g = r.geometry
        scale = r.factors["alpha"]["scale"]
        for schema, kp in r.keypoints.items():
            pts, meta = _landmarks(tpl, r, schema)
            for k, (x, y, v) in enumerate(kp):
                counts[int(v)] += 1
                uvz = g.cam.project(pts[k:k + 1])[0]
                inside = 0 <= uvz[0] <= SIZE - 1 and 0 <= uvz[1] <= SIZE - 1
                assert (v > 0) == inside
                if v == 0:
                    assert x == 0 and y == 0
                    continue
                assert (x, y) == pytest.approx((uvz[0], uvz[1]), abs=1e-3)
                px, py = int(np.rint(x)), int(np.rint(y))
                parts, tol = meta[k]
                # Independent depth: brute-force ray cast through the keypoint's pixel.
                t, first = ray_cast(g.centres, g.axes, g.radii, g.cam.rays(np.array([px]), np.array([py]))[0])
                assert first == r.prim[py, px]
                own = 0 <= first < g.num_animal and int(g.part[first]) in parts
                if v == 2:
                    # Visible: nothing in front, or only its own part's surface within tol.
                    assert t >= uvz[2] - EPS or (own and t >= uvz[2] - tol * scale - 1e-4)
                    if own:  # and it falls inside the silhouette of its own body part
                        assert r.parts[py, px] - 1 in parts
                else:
                    # Occluded: a surface lies in front of it (another part, an occluder, or too deep).
                    assert t < uvz[2] - EPS + 1e-4
                    assert not own or t < uvz[2] - tol * scale + 1e-4
                    if not own and r.parts[py, px] == OCCLUDER:
                        assert first >= g.num_animal
    assert counts[2] > 0 and counts[1] > 0, counts


def test_label_rates_are_plausible():
    style = StyleConfig.make("cad")
    vis = np.concatenate([render_scene("horse", style, s, 64).keypoints["tigdog"][:, 2] for s in range(20)])
    rates = np.bincount(vis.astype(int), minlength=3) / len(vis)
    assert 0.5 < rates[2] < 0.95 and 0.05 < rates[1] < 0.45, rates


@pytest.mark.parametrize("species", SPECIES)
def test_flip_equals_rendering_the_mirrored_scene(species):
    tpl = load_template(species)
    style = StyleConfig.make("photo")
    # part values of the mirror scene: 1 + mirror part, background and occluders unchanged
    remap = np.arange(256)
    remap[1:1 + len(tpl.parts)] = tpl.mirror_part + 1
    for seed in range(3):
        a = render_scene(species, style, seed, SIZE)
        b = render_scene(species, style, seed, SIZE, mirror=True)
        sa, sb = np.fliplr(a.prim >= 0), b.prim >= 0
        assert (sa & sb).sum() / max((sa | sb).sum(), 1) > 0.99
        assert (remap[np.fliplr(a.parts)] == b.parts).mean() > 0.99
        for schema, kp in a.keypoints.items():
            flipped = kp.copy()
            flipped[:, 0] = np.where(kp[:, 2] > 0, SIZE - 1 - kp[:, 0], 0)
            flipped = flipped[load_schema(schema).flip_permutation()]
            np.testing.assert_array_equal(flipped[:, 2], b.keypoints[schema][:, 2])
            np.testing.assert_allclose(flipped[:, :2], b.keypoints[schema][:, :2], atol=1e-3)


def test_render_sample_is_deterministic_and_seed_sensitive():
    img1, kp1, f1 = render_sample("tiger", "photo", 7, 64)
    img2, kp2, f2 = render_sample("tiger", "photo", 7, 64)
    img3, _, _ = render_sample("tiger", "photo", 8, 64)
    assert img1.shape == (64, 64, 3) and img1.dtype == np.uint8
    assert img1.tobytes() == img2.tobytes() and f1 == f2
    for schema in kp1:
        np.testing.assert_array_equal(kp1[schema], kp2[schema])
    assert img1.tobytes() != img3.tobytes()
    assert set(kp1) == {"tigdog", "animalpose"} and kp1["tigdog"].shape == (18, 3)
    assert {"alpha", "beta", "style"} <= set(f1)


def test_gap_zero_photo_matches_cad_distributions():
    cad, photo0 = StyleConfig.make("cad"), StyleConfig.make("photo", 0.0)
    assert photo0.params == cad.params
    half = StyleConfig.make("photo", 0.5).params
    full = StyleConfig.make("photo").params
    for key in cad.params:
        assert half[key] == pytest.approx((cad.params[key] + full[key]) / 2)
    # Same seed, gap 0: the α draws coincide with cad's.
    a = render_scene("dog", cad, 3, 48).factors["alpha"]
    b = render_scene("dog", photo0, 3, 48).factors["alpha"]
    assert a == b
    wild0 = StyleConfig.make("wild", 0.0)
    assert wild0.params == cad.params
    assert render_scene("dog", wild0, 3, 48).factors["alpha"] == a
    with pytest.raises(ValueError, match="gap"):
        StyleConfig.make("photo", 1.5)
    with pytest.raises(ValueError, match="style"):
        StyleConfig.make("oil")


def test_cad_draws_the_asset_coat_and_photo_every_coat():
    """cad: one asset texture per species (the template's first coat); photo: all coats by weight."""
    tpl = load_template("dog")
    first = [round(c, 4) for c in tpl.appearance["coats"][0]["color"]]

    def coats(style):
        scenes = (render_scene("dog", StyleConfig.make(style), s, 32) for s in range(12))
        return {tuple(r.factors["beta"]["coat_color"]) for r in scenes}

    cad, photo = coats("cad"), coats("photo")
    assert cad == {tuple(first)}
    assert len(photo) >= 3


def test_photo_is_another_breed_longer_limbs_and_neck():
    """Bone-length factors: the limbs below shoulder and hip 1.3x, neck and head 1.24x, trunk unchanged."""
    from synthetic.sampling import proportions

    tpl = load_template("horse")
    f = dict(zip(tpl.joints, proportions(tpl, 1.3, 1.24), strict=True))
    assert f["L_F_elbow"] == f["R_B_toe"] == f["L_B_hock"] == 1.3
    assert f["neck"] == f["head"] == 1.24
    assert f["root"] == f["chest"] == f["L_F_shoulder"] == f["R_B_hip"] == f["tail1"] == f["L_ear"] == 1.0
    i = tpl.joints.index("L_F_knee")
    for seed in range(5):  # the recorded factors include the breed: within 1.3 x [0.8, 1.2]
        photo = render_scene("horse", StyleConfig.make("photo"), seed, 32).factors["alpha"]["shape_lengths"]
        cad = render_scene("horse", StyleConfig.make("cad"), seed, 32).factors["alpha"]["shape_lengths"]
        assert 1.3 * 0.8 - 1e-3 <= photo[i] <= 1.3 * 1.2 + 1e-3
        assert 0.8 - 1e-3 <= cad[i] <= 1.2 + 1e-3
    human = load_template("human")
    g = dict(zip(human.joints, proportions(human, 1.3, 1.0), strict=True))
    assert g["L_F_wrist"] == g["R_B_ankle"] == 1.3 and g["L_F_shoulder"] == g["spine"] == 1.0
