"""Species templates: a kinematic tree with body volumes and keypoint landmarks, loaded from YAML.

A template file ``synthetic/species/<name>.yaml`` holds, in the animal's canonical rest frame
(metres; x forward, y up, z to the animal's right, so its left side is at negative z):

- ``joints``: ``name: [parent, x, y, z]`` rest positions. Names starting ``L_`` are mirrored to
  ``R_`` (z -> -z) automatically, so only the left side is written.
- ``limits``: per joint ``[[lo, hi], [lo, hi], [lo, hi]]`` degrees for the rotations about the local
  z (flexion in the sagittal plane), x (abduction) and y (twist) axes; ``default`` for the rest.
- ``volumes``: ellipsoids. ``seg: [A, B]`` spans two points (a joint name, or ``[x, y, z]`` rest
  coordinates carried by ``joint``), ``r: [ry, rz]`` are the cross radii and ``ext`` stretches the
  long axis; ``c: [x, y, z]`` with ``r: [rx, ry, rz]`` (and ``rot`` degrees about z) is a blob carried
  by ``joint``. Each volume names its ``part`` (segmentation label) and ``mat`` (material).
- ``landmarks``: ``name: joint`` or ``name: {joint, at: [x, y, z], parts: [...], tol: metres}``.
  ``parts`` are the surfaces that may show the landmark; ``tol`` is how far behind the first
  surface it may lie and still count as visible (about the local body radius for inner joints).
- ``keypoints``: ``schema: {schema joint name: landmark name}`` for every schema the template emits.
- ``motion``: the name of a shared motion file ``_motion_<name>.yaml`` (poses and gaits).
- ``appearance``: coat colours and texture kinds (see :mod:`synthetic.appearance`).

Forward kinematics: each joint rotates everything below it; ``p_j = p_parent + Rw_parent
(rest_j - rest_parent) * len_j`` and ``Rw_j = Rw_parent R(angles_j)``, with
``R = Rz(flex) Rx(abd) Ry(twist)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BeforeValidator, Field

from animalpose.config.loader import Section, parse_config, read_yaml
from animalpose.errors import ConfigError
from animalpose.keypoints import load_schema

SPECIES_DIR = Path(__file__).resolve().parent / "species"
MIRROR = np.diag([1.0, 1.0, -1.0])


def mirror_name(name: str) -> str:
    """``L_x`` <-> ``R_x`` and ``left_x`` <-> ``right_x``; other names map to themselves."""
    for a, b in (("L_", "R_"), ("R_", "L_"), ("left_", "right_"), ("right_", "left_")):
        if name.startswith(a):
            return b + name[len(a):]
    return name


def rotation(angles_deg: np.ndarray) -> np.ndarray:
    """(..., 3) degrees (flex about z, abduction about x, twist about y) -> (..., 3, 3) Rz Rx Ry."""
    a = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    cz, sz = np.cos(a[..., 0]), np.sin(a[..., 0])
    cx, sx = np.cos(a[..., 1]), np.sin(a[..., 1])
    cy, sy = np.cos(a[..., 2]), np.sin(a[..., 2])
    r = np.empty((*a.shape[:-1], 3, 3))
    r[..., 0, 0] = cz * cy - sz * sx * sy
    r[..., 0, 1] = -sz * cx
    r[..., 0, 2] = cz * sy + sz * sx * cy
    r[..., 1, 0] = sz * cy + cz * sx * sy
    r[..., 1, 1] = cz * cx
    r[..., 1, 2] = sz * sy - cz * sx * cy
    r[..., 2, 0] = -cx * sy
    r[..., 2, 1] = sx
    r[..., 2, 2] = cx * cy
    return r


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross product of (..., 3) arrays (np.cross without its axis bookkeeping)."""
    out = np.empty(np.broadcast_shapes(a.shape, b.shape))
    out[..., 0] = a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1]
    out[..., 1] = a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2]
    out[..., 2] = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    return out


@dataclass(frozen=True, eq=False)  # identity equality and hash: the per-template caches key on the object
class Template:
    """A loaded species template (all arrays in the canonical rest frame, metres).

    Attributes:
        joints: J joint names, parents before children.
        parents: (J,) parent index, -1 for the root.
        rest: (J, 3) rest positions.
        limits: (J, 3, 2) angle limits in degrees.
        vol_joint: (V,) joint carrying each volume.
        vol_kind: (V,) 0 = segment, 1 = blob.
        vol_a, vol_b: (V, 3) segment end points as rest coordinates relative to their carrier joints.
        vol_a_joint, vol_b_joint: (V,) carrier joint of each end point (segments only).
        vol_frame: (V, 3, 3) rest local axes (columns) of blobs; segments use the carrier's frame.
        vol_radii: (V, 3) radii (segments: [ext, ry, rz]).
        vol_part: (V,) part index into ``parts``; vol_mat: (V,) material names.
        landmarks: name -> (joint index, rest point (3,), part indices, tolerance).
        keypoints: schema name -> tuple of landmark names in the schema's joint order.
    """

    name: str
    path: str
    joints: tuple[str, ...]
    parents: np.ndarray
    rest: np.ndarray
    limits: np.ndarray
    vol_names: tuple[str, ...]
    vol_joint: np.ndarray
    vol_kind: np.ndarray
    vol_a: np.ndarray
    vol_b: np.ndarray
    vol_a_joint: np.ndarray
    vol_b_joint: np.ndarray
    vol_frame: np.ndarray
    vol_radii: np.ndarray
    vol_part: np.ndarray
    vol_mat: tuple[str, ...]
    parts: tuple[str, ...]
    landmarks: dict
    keypoints: dict
    motion: dict
    appearance: dict
    mirror_joint: np.ndarray
    mirror_part: np.ndarray
    mirror_volume: np.ndarray
    skip_modes: tuple[str, ...] = ()

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def levels(self) -> list[np.ndarray]:
        """Joint indices grouped by depth in the tree (root first)."""
        cached = self.__dict__.get("_levels")
        if cached is None:
            depth = np.zeros(self.num_joints, dtype=int)
            for j, p in enumerate(self.parents):
                depth[j] = 0 if p < 0 else depth[p] + 1
            cached = [np.flatnonzero(depth == d) for d in range(depth.max() + 1)]
            object.__setattr__(self, "_levels", cached)
        return cached

    @property
    def _level_steps(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per tree depth below the root: joints (n,), their parents (n,), rest offsets (n, 3, 1) (cached)."""
        cached = self.__dict__.get("_steps")
        if cached is None:
            cached = [(lv, self.parents[lv], (self.rest[lv] - self.rest[self.parents[lv]])[:, :, None])
                      for lv in self.levels[1:]]
            object.__setattr__(self, "_steps", cached)
        return cached

    @property
    def _volume_index(self) -> dict:
        """Cached index arrays of :meth:`volumes`: segment and blob volumes and their carriers."""
        cached = self.__dict__.get("_vindex")
        if cached is None:
            seg, blob = np.flatnonzero(self.vol_kind == 0), np.flatnonzero(self.vol_kind != 0)
            cached = {"seg": seg, "blob": blob, "seg_joint": self.vol_joint[seg], "blob_joint": self.vol_joint[blob],
                      "blob_frame": self.vol_frame[blob], "seg_ext": self.vol_radii[seg, 0],
                      "joint_a": self.vol_a_joint, "rest_a": self.vol_a - self.rest[self.vol_a_joint],
                      "joint_b": self.vol_b_joint[seg], "rest_b": self.vol_b[seg] - self.rest[self.vol_b_joint[seg]]}
            object.__setattr__(self, "_vindex", cached)
        return cached

    def joint(self, name: str) -> int:
        return self.joints.index(name)

    # ------------------------------------------------------------------ kinematics
    def forward(self, angles: np.ndarray, lengths: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """World joint positions (J, 3) and rotations (J, 3, 3) for ``angles`` (J, 3) degrees.

        ``lengths`` (J,) scales each joint's offset from its parent (shape variation).
        """
        rel = rotation(angles)
        pos = np.empty((self.num_joints, 3))
        rot = np.empty((self.num_joints, 3, 3))
        root = self.levels[0]
        pos[root], rot[root] = self.rest[root], rel[root]
        # One vectorised step per tree depth (parents are always resolved one level earlier).
        for level, par, off in self._level_steps:
            if lengths is not None:
                off = off * lengths[level][:, None, None]
            rot_par = rot[par]
            pos[level] = pos[par] + (rot_par @ off)[:, :, 0]
            rot[level] = rot_par @ rel[level]
        return pos, rot

    def place(
        self, pos: np.ndarray, rot: np.ndarray, joint: np.ndarray, pts: np.ndarray, size: np.ndarray
    ) -> np.ndarray:
        """Rest points (N, 3) carried by joints (N,) -> posed world points (N, 3); ``size`` (J,) scales offsets."""
        off = (pts - self.rest[joint]) * size[joint][:, None]
        return pos[joint] + np.einsum("nij,nj->ni", rot[joint], off)

    def volumes(
        self, pos: np.ndarray, rot: np.ndarray, size: np.ndarray, thick: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Posed ellipsoids: centres (V, 3), axes (V, 3, 3) (columns), radii (V, 3).

        ``size`` (J,) scales blob volumes and end points carried by a joint; ``thick`` (J,) scales the
        cross radii of the volumes each joint carries.
        """
        ix = self._volume_index
        v = len(self.vol_names)
        seg, blob = ix["seg"], ix["blob"]
        ja = ix["joint_a"]
        a = pos[ja] + (rot[ja] @ (ix["rest_a"] * size[ja][:, None])[:, :, None])[:, :, 0]
        centre = a.copy()
        axes = np.empty((v, 3, 3))
        radii = self.vol_radii * thick[self.vol_joint][:, None]
        # Blobs: the carrier's rotation applied to the rest frame, radii scaled with the carrier's size.
        if len(blob):
            jb = ix["blob_joint"]
            axes[blob] = rot[jb] @ ix["blob_frame"]
            radii[blob] *= size[jb][:, None]
        # Segments: long axis from a to b; the cross axes follow the carrier's lateral (z) axis.
        if len(seg):
            jb = ix["joint_b"]
            b = pos[jb] + (rot[jb] @ (ix["rest_b"] * size[jb][:, None])[:, :, None])[:, :, 0]
            centre[seg] = 0.5 * (a[seg] + b)
            d = b - a[seg]
            length = np.sqrt((d * d).sum(1))
            x = d / np.maximum(length, 1e-9)[:, None]
            carrier = rot[ix["seg_joint"]]
            ref = carrier[:, :, 2]
            bad = np.abs((ref * x).sum(1)) > 0.95
            ref = np.where(bad[:, None], carrier[:, :, 1], ref)
            z = ref - (ref * x).sum(1)[:, None] * x
            z /= np.sqrt((z * z).sum(1))[:, None]
            y = cross(z, x)
            axes[seg] = np.stack([x, y, z], axis=-1)
            radii[seg, 0] = 0.5 * length * ix["seg_ext"]
        return centre, axes, radii

    def landmark_points(self, names: tuple[str, ...], pos, rot, size) -> np.ndarray:
        """Posed world positions (N, 3) of the named landmarks."""
        cache = self.__dict__.setdefault("_landmark_index", {})  # names -> (joint (N,), rest point (N, 3))
        if names not in cache:
            cache[names] = (np.array([self.landmarks[n][0] for n in names]),
                            np.array([self.landmarks[n][1] for n in names]))
        joint, pts = cache[names]
        return self.place(pos, rot, joint, pts, size)


# ---------------------------------------------------------------------- loading
def _vec(value, where: str, field: str, n: int = 3) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.zeros(0)
    if arr.shape != (n,):
        raise ConfigError(where, field, f"expected {n} numbers, got {value!r}")
    return arr


def _mirrored(entries: dict) -> dict:
    """Entries with every ``L_`` key followed by its ``R_`` mirror (values mirrored by the caller)."""
    out = {}
    for key, value in entries.items():
        out[key] = (value, False)
        if key.startswith("L_"):
            out[mirror_name(key)] = (value, True)
    return out


def _flip_point(p: np.ndarray, flip: bool) -> np.ndarray:
    return p * np.array([1.0, 1.0, -1.0]) if flip else p


class VolumeSpec(Section):
    """One ``volumes:`` entry: a segment (``seg``, ``r: [ry, rz]``, ``ext``) or a blob (``c``, ``r: [rx, ry, rz]``,
    ``rot``), carried by ``joint``; shapes and joint names are checked when the template is built."""

    joint: str | None = None
    seg: list | None = None
    c: list | None = None
    r: list | None = None
    ext: float | None = None
    rot: float | None = None
    part: str | None = None
    mat: str | None = None


class LandmarkSpec(Section):
    """One ``landmarks:`` entry (a bare joint name is ``{joint: name}``)."""

    joint: str
    at: list | None = None
    parts: list[str] | None = None
    tol: float | None = None


Landmark = Annotated[LandmarkSpec, BeforeValidator(lambda v: {"joint": v} if isinstance(v, str) else v)]


class TemplateFile(Section):
    """The keys of a species template (see the module docstring), read by the careful loader
    (:mod:`animalpose.config.loader`): unknown keys, missing keys and wrong types name the file and the key."""

    name: str
    schemas: list[str]
    motion: str
    skip_modes: list[str] | None = None
    joints: dict[str, list]
    limits: dict[str, list] | None = None
    volumes: dict[str, VolumeSpec]
    landmarks: dict[str, Landmark]
    keypoints: dict[str, Any]
    appearance: dict[str, Any]


class MotionFile(Section):
    """A shared motion file ``_motion_<name>.yaml``: per-joint pose noise (degrees), poses and gaits."""

    noise: dict[str, float] = Field(default_factory=dict)
    poses: dict[str, Any]
    gaits: dict[str, Any]


@cache
def load_template(name: str) -> Template:
    """Load and validate ``synthetic/species/<name>.yaml``; errors name the file and the key."""
    path = SPECIES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(str(path), "species", f"unknown species {name!r} (known: {list_species()})")
    return load_template_file(path)


def load_template_file(path: str | Path) -> Template:
    """Load and validate a template file (motion files are looked up in ``SPECIES_DIR``)."""
    path = Path(path)
    where = str(path)
    data = read_yaml(path)
    parse_config(data, TemplateFile, where=where)  # the keys and their types; the values are checked below

    joints, parents, rest = [], [], []
    for jname, (value, flip) in _mirrored(data["joints"]).items():
        if not isinstance(value, list) or len(value) != 4:
            raise ConfigError(where, f"joints.{jname}", "expected [parent, x, y, z]")
        parent = value[0]
        if parent is not None:
            parent = mirror_name(parent) if flip else parent
            if parent not in joints:
                raise ConfigError(where, f"joints.{jname}", f"parent {parent!r} must be listed before it")
        joints.append(jname)
        parents.append(-1 if parent is None else joints.index(parent))
        rest.append(_flip_point(_vec(value[1:], where, f"joints.{jname}"), flip))
    index = {n: i for i, n in enumerate(joints)}
    if parents.count(-1) != 1:
        raise ConfigError(where, "joints", "exactly one root joint (parent null) is required")

    lim_raw = data.get("limits") or {}
    default = np.asarray(lim_raw.get("default", [[-30, 30], [-10, 10], [-10, 10]]), dtype=np.float64)
    limits = np.repeat(default[None], len(joints), axis=0)
    for jname, (value, flip) in _mirrored({k: v for k, v in lim_raw.items() if k != "default"}).items():
        if jname not in index:
            raise ConfigError(where, f"limits.{jname}", "unknown joint")
        lim = np.asarray(value, dtype=np.float64)
        if lim.shape != (3, 2) or np.any(lim[:, 0] > lim[:, 1]):
            raise ConfigError(where, f"limits.{jname}", "expected [[lo, hi]] x 3 with lo <= hi")
        if flip:  # abduction and twist change sign in the mirror
            lim = lim.copy()
            lim[1:] = -lim[1:, ::-1]
        limits[index[jname]] = lim

    def joint_of(ref, vname: str, carrier, flip: bool) -> tuple[int, np.ndarray]:
        if isinstance(ref, str):
            ref = mirror_name(ref) if flip else ref
            if ref not in index:
                raise ConfigError(where, f"volumes.{vname}", f"unknown joint {ref!r}")
            return index[ref], rest[index[ref]]
        if carrier is None:
            raise ConfigError(where, f"volumes.{vname}", "coordinates need a carrier 'joint'")
        return carrier, _flip_point(_vec(ref, where, f"volumes.{vname}"), flip)

    parts: list[str] = []
    keys = ("name", "joint", "kind", "a", "b", "aj", "bj", "frame", "radii", "part", "mat")
    vols: dict[str, list] = {k: [] for k in keys}
    for vname, (v, flip) in _mirrored(data["volumes"]).items():
        carrier = None
        if "joint" in v:
            cname = mirror_name(v["joint"]) if flip else v["joint"]
            if cname not in index:
                raise ConfigError(where, f"volumes.{vname}.joint", f"unknown joint {cname!r}")
            carrier = index[cname]
        part = mirror_name(v.get("part", vname)) if flip else v.get("part", vname)
        if part not in parts:
            parts.append(part)
        vols["name"].append(vname)
        vols["part"].append(parts.index(part))
        vols["mat"].append(str(v.get("mat", "coat")))
        if "seg" in v:
            aj, a = joint_of(v["seg"][0], vname, carrier, flip)
            bj, b = joint_of(v["seg"][1], vname, carrier, flip)
            r = _vec(v["r"], where, f"volumes.{vname}.r", 2)
            vols["joint"].append(carrier if carrier is not None else aj)
            vols["kind"].append(0)
            vols["a"].append(a)
            vols["b"].append(b)
            vols["aj"].append(aj)
            vols["bj"].append(bj)
            vols["frame"].append(np.eye(3))
            vols["radii"].append(np.array([float(v.get("ext", 1.15)), r[0], r[1]]))
        elif "c" in v:
            if carrier is None:
                raise ConfigError(where, f"volumes.{vname}.joint", "a blob needs its carrier joint")
            c = _flip_point(_vec(v["c"], where, f"volumes.{vname}.c"), flip)
            vols["joint"].append(carrier)
            vols["kind"].append(1)
            vols["a"].append(c)
            vols["b"].append(c)
            vols["aj"].append(carrier)
            vols["bj"].append(carrier)
            frame = rotation(np.array([float(v.get("rot", 0.0)), 0.0, 0.0]))
            vols["frame"].append(MIRROR @ frame @ MIRROR if flip else frame)
            vols["radii"].append(_vec(v["r"], where, f"volumes.{vname}.r"))
        else:
            raise ConfigError(where, f"volumes.{vname}", "needs 'seg' or 'c'")

    landmarks = {}
    for lname, (value, flip) in _mirrored(data["landmarks"]).items():
        if isinstance(value, str):
            value = {"joint": value}
        jname = mirror_name(value["joint"]) if flip else value["joint"]
        if jname not in index:
            raise ConfigError(where, f"landmarks.{lname}.joint", f"unknown joint {jname!r}")
        j = index[jname]
        at = rest[j] if "at" not in value else _flip_point(_vec(value["at"], where, f"landmarks.{lname}.at"), flip)
        if "parts" in value:
            pnames = [mirror_name(p) if flip else p for p in value["parts"]]
        else:  # volumes carried by this joint or ending at it
            pnames = [parts[vols["part"][k]] for k in range(len(vols["name"]))
                      if j in (vols["joint"][k], vols["aj"][k], vols["bj"][k])]
        unknown = [p for p in pnames if p not in parts]
        if unknown or not pnames:
            raise ConfigError(where, f"landmarks.{lname}.parts", f"unknown or empty parts {unknown}")
        landmarks[lname] = (j, at, tuple(parts.index(p) for p in pnames), float(value.get("tol", 0.03)))

    keypoints = {}
    for schema_name in data["schemas"]:
        schema = load_schema(schema_name)
        table = data["keypoints"].get(schema_name)
        if not isinstance(table, dict):
            raise ConfigError(where, f"keypoints.{schema_name}", "missing table for an emitted schema")
        # Left entries imply their right mirrors: L_Eye: L_eye gives R_Eye: R_eye.
        table = {**{mirror_name(k): mirror_name(v) for k, v in table.items() if k.startswith(("L_", "left_"))}, **table}
        names = []
        for joint_name in schema.joints:
            if joint_name not in table:
                raise ConfigError(where, f"keypoints.{schema_name}.{joint_name}", "schema joint not mapped")
            if table[joint_name] not in landmarks:
                raise ConfigError(
                    where, f"keypoints.{schema_name}.{joint_name}", f"unknown landmark {table[joint_name]!r}"
                )
            names.append(table[joint_name])
        keypoints[schema_name] = tuple(names)

    motion_path = SPECIES_DIR / f"_motion_{data['motion']}.yaml"
    if not motion_path.is_file():
        raise ConfigError(where, "motion", f"no motion file {motion_path.name}")
    motion = read_yaml(motion_path)
    parse_config(motion, MotionFile, where=str(motion_path))

    return Template(
        name=str(data["name"]),
        path=where,
        joints=tuple(joints),
        parents=np.array(parents),
        rest=np.array(rest),
        limits=limits,
        vol_names=tuple(vols["name"]),
        vol_joint=np.array(vols["joint"]),
        vol_kind=np.array(vols["kind"]),
        vol_a=np.array(vols["a"]),
        vol_b=np.array(vols["b"]),
        vol_a_joint=np.array(vols["aj"]),
        vol_b_joint=np.array(vols["bj"]),
        vol_frame=np.array(vols["frame"]),
        vol_radii=np.array(vols["radii"]),
        vol_part=np.array(vols["part"]),
        vol_mat=tuple(vols["mat"]),
        parts=tuple(parts),
        landmarks=landmarks,
        keypoints=keypoints,
        motion=motion,
        appearance=data["appearance"],
        mirror_joint=np.array([index[mirror_name(n)] for n in joints]),
        mirror_part=np.array([parts.index(mirror_name(p)) if mirror_name(p) in parts else i
                              for i, p in enumerate(parts)]),
        mirror_volume=np.array([vols["name"].index(mirror_name(v)) if mirror_name(v) in vols["name"] else i
                                for i, v in enumerate(vols["name"])]),
        skip_modes=tuple(data.get("skip_modes") or ()),
    )


def list_species() -> list[str]:
    return sorted(p.stem for p in SPECIES_DIR.glob("*.yaml") if not p.stem.startswith("_"))
