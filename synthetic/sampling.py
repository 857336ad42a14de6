"""α sampling: pose (static poses and gait cycles), shape and viewpoint, and their mirror image.

An :class:`Alpha` holds every task-relevant factor of one instance. Its joint angles at time t are
``clip(pose(mode, t) + noise, limits)``; the mirror flag swaps left and right joints afterwards
(negating abduction and twist), which with ``azimuth -> -azimuth``, ``roll -> -roll`` and a mirrored
frame offset renders the horizontally flipped image.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache

import numpy as np

from synthetic.styles import MODES, StyleConfig
from synthetic.template import Template, mirror_name

GAITS = ("walk", "trot", "gallop")
LEGS = ("L_F", "R_F", "L_B", "R_B")


@dataclass(frozen=True)
class Alpha:
    """Task-relevant factors. Angles in degrees; ``lengths``, ``size``, ``thick`` are (J,) factors."""

    mode: str
    phase: float
    noise: np.ndarray
    lengths: np.ndarray
    size: np.ndarray
    thick: np.ndarray
    scale: float
    azimuth: float
    elevation: float
    roll: float
    fov: float
    fill: float
    offset: tuple[float, float]
    mirrored: bool = False
    orbit: float = 0.0  # degrees of azimuth per second (clips)
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """Plain-JSON record of the factors (for the dataset's per-image ``factors``)."""
        return {
            "mode": self.mode,
            "phase": round(self.phase, 5),
            "scale": round(self.scale, 5),
            "azimuth": round(self.azimuth, 4),
            "elevation": round(self.elevation, 4),
            "roll": round(self.roll, 4),
            "fov": round(self.fov, 4),
            "fill": round(self.fill, 4),
            "offset": [round(float(o), 4) for o in self.offset],
            "mirrored": self.mirrored,
            "shape_lengths": np.round(self.lengths, 4).tolist(),
            "shape_thickness": np.round(self.thick, 4).tolist(),
        }


@cache
def static_pose(tpl: Template, mode: str) -> np.ndarray:
    """(J, 3) angles of a named static pose of the template's motion file (cached per template)."""
    return expand_pose(tpl, tpl.motion["poses"].get(mode) or {})


def expand_pose(tpl: Template, table: dict) -> np.ndarray:
    """(J, 3) angles from a ``{joint: [flex, abd, twist]}`` table; L_ entries imply mirrored R_ ones."""
    out = np.zeros((tpl.num_joints, 3))
    index = {n: i for i, n in enumerate(tpl.joints)}
    for name, value in table.items():
        if name in index:
            out[index[name]] = value
        other = mirror_name(name)
        if other != name and other in index and other not in table:
            out[index[other]] = np.asarray(value, dtype=np.float64) * np.array([1.0, -1.0, -1.0])
    return out


@cache
def noise_std(tpl: Template) -> np.ndarray:
    """(J, 3) prior standard deviations of the per-joint angle noise (cached per template)."""
    table = tpl.motion.get("noise", {})
    std = np.full((tpl.num_joints, 3), float(table.get("default", 4.0)))
    for j, name in enumerate(tpl.joints):
        key = name if name in table else mirror_name(name)
        if key in table:
            std[j] = float(table[key])
    std[:, 1:] *= 0.5
    return std


@cache
def _gait_tables(tpl: Template, gait: str) -> dict:
    """Per-template arrays of a gait: leg joints with their leg phase, sweep and bump (cached)."""
    g = tpl.motion["gaits"][gait]
    index = {n: i for i, n in enumerate(tpl.joints)}
    joints, phase, sweep, bump = [], [], [], []
    for leg in LEGS:
        if leg not in g["phase"]:
            continue
        for name, (sw, bu) in g["legs"].items():
            j = index.get(leg[:2] + name)
            if name.startswith(leg[2] + "_") and j is not None:
                joints.append(j)
                phase.append(float(g["phase"][leg]))
                sweep.append(float(sw))
                bump.append(float(bu))
    body = [(index[n], float(a), float(ph), float(h)) for n, (a, ph, h) in g.get("body", {}).items() if n in index]
    hip_key = next((k for k in g["legs"] if k.startswith("B_")), None)
    stride = 0.0
    if hip_key is not None and "L_" + hip_key in index:
        height = tpl.rest[index["L_" + hip_key], 1]
        stride = 2.0 * height * np.sin(np.deg2rad(g["legs"][hip_key][0])) / float(g["duty"])
    return {
        "joints": np.array(joints, dtype=int), "phase": np.array(phase), "sweep": np.array(sweep),
        "bump": np.array(bump), "duty": float(g["duty"]), "stride": float(stride),
        "body": (np.array([b[0] for b in body], dtype=int), np.array([b[1:] for b in body]).reshape(-1, 3)),
    }


def gait_angles(tpl: Template, gait: str, cycles: float) -> tuple[np.ndarray, float]:
    """(J, 3) angles of a gait at ``cycles`` (cycle count since phase 0), and the root advance (metres).

    Legs run on ``phi = cycles + phase[leg]``; stance (phi < duty) sweeps the top joint linearly from
    +sweep to -sweep, swing returns it along a half cosine while the lower joints bend by
    ``bump * sin(pi s)``. The body advances ``2 L sin(sweep) / duty`` per cycle, L the hip height.
    """
    g = _gait_tables(tpl, gait)
    out = np.zeros((tpl.num_joints, 3))
    duty = g["duty"]
    phi = (cycles + g["phase"]) % 1.0
    stance = phi < duty
    s = np.where(stance, 0.0, (phi - duty) / (1.0 - duty))
    value = np.where(stance, g["sweep"] * (1.0 - 2.0 * phi / duty),
                     -g["sweep"] * np.cos(np.pi * s) + g["bump"] * np.sin(np.pi * s))
    np.add.at(out[:, 0], g["joints"], value)
    joints, (amp, phase, harmonic) = g["body"][0], g["body"][1].T
    np.add.at(out[:, 0], joints, amp * np.sin(2 * np.pi * (harmonic * cycles + phase)))
    return out, float(cycles * g["stride"])


def pose_angles(tpl: Template, alpha: Alpha, t: float = 0.0) -> tuple[np.ndarray, float]:
    """Final (J, 3) joint angles at time ``t`` seconds and the root advance along x (metres)."""
    advance = 0.0
    if alpha.mode in GAITS:
        g = tpl.motion["gaits"][alpha.mode]
        base, advance = gait_angles(tpl, alpha.mode, alpha.phase + t / float(g["period"]))
    else:
        base = static_pose(tpl, alpha.mode)
    angles = np.minimum(np.maximum(base + alpha.noise, tpl.limits[:, :, 0]), tpl.limits[:, :, 1])  # np.clip, cheaper
    if alpha.mirrored:
        angles = angles[tpl.mirror_joint] * np.array([1.0, -1.0, -1.0])
    return angles, advance


def available_modes(tpl: Template) -> list[str]:
    known = set(tpl.motion.get("poses", {})) | set(tpl.motion.get("gaits", {}))
    return [m for m in MODES if m in known and m not in tpl.skip_modes]


@cache
def _shape_groups(tpl: Template) -> tuple[np.ndarray, int]:
    """(J,) group index shared by a joint and its mirror (sorted by side-less name), and the group count."""
    keys = [n[2:] if n.startswith(("L_", "R_")) else n for n in tpl.joints]
    names = sorted(set(keys))
    return np.array([names.index(k) for k in keys]), len(names)


def proportions(tpl: Template, limb: float, neck: float) -> np.ndarray:
    """(J,) bone-length factors of a breed: ``limb`` for the bones below the shoulders and hips (joints
    named ``*_F_*`` / ``*_B_*`` other than the shoulder and hip themselves), ``neck`` for the neck and
    head bones, 1 elsewhere. The ``cad`` style's are 1 (the asset's proportions)."""
    limbs, necks = _limb_and_neck_joints(tpl)
    return np.where(limbs, limb, np.where(necks, neck, 1.0))


@cache
def _limb_and_neck_joints(tpl: Template) -> tuple[np.ndarray, np.ndarray]:
    """(J,) bool masks of the joints that :func:`proportions` scales by ``limb`` and by ``neck``."""
    limbs = np.array([("_F_" in n or "_B_" in n) and not n.endswith(("shoulder", "hip")) for n in tpl.joints])
    return limbs, np.isin(np.array(tpl.joints), ["neck", "head"])


def sample_alpha(tpl: Template, style: StyleConfig, rng: np.random.Generator, *, gait_only: bool = False) -> Alpha:
    """Draw pose mode, phase, joint noise, shape and viewpoint from the style's distributions."""
    p = style.params
    modes = [m for m in available_modes(tpl) if not gait_only or m in GAITS]
    cdf = np.cumsum([p[f"w_{m}"] for m in modes])
    # rng.choice(p=weights) without its argument checks: the same single draw against the cdf.
    mode = modes[int(np.searchsorted(cdf / cdf[-1], rng.random(), side="right"))]
    noise = rng.standard_normal((tpl.num_joints, 3)) * noise_std(tpl) * p["pose_noise"]
    if mode in GAITS:
        noise *= 0.5
    # Shape: one factor per bilateral joint pair (animals are symmetric), within +-20 %.
    sigma = p["shape_sigma"]
    group, n_groups = _shape_groups(tpl)
    lengths, size, thick = (np.minimum(np.maximum(rng.normal(1.0, s, n_groups), 0.8), 1.2)[group]
                            for s in (sigma, sigma, sigma * 1.5))
    lengths = lengths * proportions(tpl, p["limb_length"], p["neck_length"])
    trunc = rng.random() < p["trunc_p"]
    off = rng.uniform(-p["offset"], p["offset"], 2)
    if trunc:  # push the animal partly across a border
        side = rng.integers(4)
        off[side % 2] = (1 if side < 2 else -1) * rng.uniform(0.25, 0.45)
    return Alpha(
        mode=mode,
        phase=float(rng.random()),
        noise=noise,
        lengths=lengths,
        size=size,
        thick=thick,
        scale=min(max(float(rng.normal(1.0, sigma)), 0.8), 1.2),
        azimuth=float(rng.uniform(-180, 180)),
        elevation=float(rng.uniform(p["elev_lo"], p["elev_hi"])),
        roll=float(rng.normal(0, p["roll"])),
        fov=float(rng.uniform(p["fov_lo"], p["fov_hi"])),
        fill=float(rng.uniform(p["fill_lo"], p["fill_hi"])),
        offset=(float(off[0]), float(off[1])),
        extra={"truncated": bool(trunc)},
    )


def mirror_alpha(tpl: Template, alpha: Alpha) -> Alpha:
    """The factors of the mirror-image scene (left and right swapped, camera reflected)."""
    m = tpl.mirror_joint
    return replace(
        alpha,
        mirrored=not alpha.mirrored,
        lengths=alpha.lengths[m],
        size=alpha.size[m],
        thick=alpha.thick[m],
        azimuth=-alpha.azimuth,
        roll=-alpha.roll,
        offset=(-alpha.offset[0], alpha.offset[1]),
        orbit=-alpha.orbit,
    )
