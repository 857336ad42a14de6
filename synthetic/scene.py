"""One rendered instance: X = G(α, β). Poses the template, frames it, renders, shades and labels it.

Keypoint visibility comes from the depth buffer: a landmark that projects inside the image is
visible (2) when the first surface on its pixel belongs to one of its own parts and lies at most
``tol`` in front of it (the landmark may sit inside its limb), or when nothing lies in front of it
at all; otherwise it is occluded (1) by the body or an occluder. Outside the image it is 0.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, replace
from functools import cache

import numpy as np

from synthetic import appearance as ap
from synthetic.backgrounds import scenery_background
from synthetic.render import Camera, _boxes, rasterise, surface
from synthetic.sampling import Alpha, mirror_alpha, pose_angles, sample_alpha
from synthetic.styles import StyleConfig
from synthetic.template import Template, load_template

OCCLUDER = 255  # part-mask value of occluder pixels; animal parts are 1 + part index, background 0
BELLY_PARTS = ("body", "neck", "head")
EPS = 1e-3


@dataclass
class Geometry:
    """Posed primitives in camera coordinates and the camera (everything α fixes).

    centres (N, 3), axes (N, 3, 3), radii (N, 3): ellipsoids, animal volumes first then occluders.
    part: (N,) part index (or -1 for occluders). landmarks: (L, 3) camera points of all landmarks.
    """

    cam: Camera
    centres: np.ndarray
    axes: np.ndarray
    radii: np.ndarray
    part: np.ndarray
    landmarks: np.ndarray
    landmark_names: tuple[str, ...]
    num_animal: int


@dataclass
class Rendered:
    """A rendered instance with its buffers (for tests and masks)."""

    image: np.ndarray  # (H, W, 3) uint8
    keypoints: dict  # schema -> (K, 3) float32 x, y, visibility
    factors: dict
    zbuf: np.ndarray  # (H, W) float32 depth (inf: background)
    prim: np.ndarray  # (H, W) int16 primitive index (-1: background)
    geometry: Geometry

    @property
    def parts(self) -> np.ndarray:
        """(H, W) uint8 part-id mask: 0 background, 1 + part index, 255 occluder (computed on demand)."""
        cached = self.__dict__.get("_parts")
        if cached is None:
            part = self.geometry.part
            lut = np.concatenate([[0], np.where(part >= 0, part + 1, OCCLUDER)]).astype(np.uint8)
            cached = self.__dict__["_parts"] = np.take(lut, self.prim.astype(np.intp) + 1)
        return cached


def _look_at(eye: np.ndarray, target: np.ndarray, roll_deg: float) -> np.ndarray:
    """(3, 3) world-to-camera rotation (rows: right, down, forward), rolled about the view axis."""
    fx, fy, fz = (target - eye).tolist()
    n = math.sqrt(fx * fx + fy * fy + fz * fz)
    fx, fy, fz = fx / n, fy / n, fz / n
    rx, rz = -fz, fx  # fwd x (0, 1, 0)
    n = math.sqrt(rx * rx + rz * rz)
    rx, rz = rx / n, rz / n
    dx, dy, dz = fy * rz, fz * rx - fx * rz, -fy * rx  # fwd x right (right_y = 0)
    c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
    return np.array([[c * rx + s * dx, s * dy, c * rz + s * dz],
                     [-s * rx + c * dx, c * dy, -s * rz + c * dz],
                     [fx, fy, fz]])


def pose_world(tpl: Template, alpha: Alpha, t: float = 0.0):
    """Posed world ellipsoids (centres, axes, radii) and landmark points, feet on the ground (y = 0)."""
    angles, advance = pose_angles(tpl, alpha, t)
    pos, rot = tpl.forward(angles, alpha.lengths)
    centres, axes, radii = tpl.volumes(pos, rot, alpha.size, alpha.thick)
    names = tuple(tpl.landmarks)
    marks = tpl.landmark_points(names, pos, rot, alpha.size)
    # Lowest point of each ellipsoid: centre_y - |row_y of (axes diag(r))|.
    row = axes[:, 1, :] * radii
    low = centres[:, 1] - np.sqrt((row * row).sum(1))
    shift = np.array([advance, -float(low.min()), 0.0])
    return (centres + shift) * alpha.scale, axes, radii * alpha.scale, (marks + shift) * alpha.scale, names


def frame(tpl: Template, alpha: Alpha, size: int, t: float = 0.0, fit: Camera | None = None) -> Geometry:
    """Pose the animal, place the camera (orbiting ``alpha.orbit`` deg/s) and fit it into the frame.

    With ``fit`` given (clips), its intrinsics are reused so the camera's zoom stays constant.
    """
    centres, axes, radii, marks, names = pose_world(tpl, alpha, t)
    extent = np.ptp(centres, axis=0).max() + 2 * radii.max()
    target = 0.5 * (centres.min(0) + centres.max(0))
    if fit is not None:  # clips: the camera keeps its distance and tracks the start point plus the advance
        c0, _, r0, _, _ = pose_world(tpl, alpha, 0.0)
        moved = pose_angles(tpl, alpha, t)[1] - pose_angles(tpl, alpha, 0.0)[1]
        extent = np.ptp(c0, axis=0).max() + 2 * r0.max()
        target = 0.5 * (c0.min(0) + c0.max(0)) + np.array([moved * alpha.scale, 0.0, 0.0])
    half = math.tan(math.radians(alpha.fov) / 2)
    dist = float(extent) / (2 * half * alpha.fill) + float(extent) * 0.5
    az, el = math.radians(alpha.azimuth + alpha.orbit * t), math.radians(alpha.elevation)
    eye = target + dist * np.array([math.cos(el) * math.cos(az), math.sin(el), math.cos(el) * math.sin(az)])
    rwc = _look_at(eye, target, alpha.roll)
    cc = (centres - eye) @ rwc.T
    ca = rwc[None] @ axes
    cm = (marks - eye) @ rwc.T
    if fit is None:
        boxes = _boxes(cc, ca, radii, Camera(1.0, 0.0, 0.0, 1, 1))[0]
        boxes = boxes[np.isfinite(boxes).all(1)]
        (x0, y0), (x1, y1) = boxes[:, :2].min(0).tolist(), boxes[:, 2:].max(0).tolist()
        f = alpha.fill * size / max(x1 - x0, y1 - y0)
        cx = (size - 1) / 2 + alpha.offset[0] * size - f * 0.5 * (x0 + x1)
        cy = (size - 1) / 2 + alpha.offset[1] * size - f * 0.5 * (y0 + y1)
        fit = Camera(f, cx, cy, size, size)
    part = tpl.vol_part.copy()
    return Geometry(fit, cc, ca, radii, part, cm, names, len(cc))


def add_occluders(
    tpl: Template, geo: Geometry, alpha: Alpha, style: StyleConfig, rng: np.random.Generator
) -> list[dict]:
    """Maybe put 1-2 ellipsoid occluders (post, bush, rock, board) between the camera and the animal."""
    p = style.params
    info: list[dict] = []
    if rng.random() >= p["occluder_p"]:
        return info
    extent = np.ptp(geo.centres[: geo.num_animal], axis=0).max()
    new_c, new_a, new_r = [], [], []
    for _ in range(int(rng.integers(1, 3))):
        k = int(rng.integers(geo.num_animal))
        lam = float(rng.uniform(0.55, 0.85))
        jitter = rng.normal(0, 0.15, 2) * extent
        kind = ["post", "bush", "rock", "board"][int(rng.integers(4))]
        if alpha.mirrored:  # the mirror scene's occluder sits in front of the mirror volume
            jitter[0] = -jitter[0]
            k = int(tpl.mirror_volume[k])
        centre = geo.centres[k] * lam + np.array([jitter[0], jitter[1], 0.0]) * lam
        s = extent * lam * float(rng.uniform(0.08, 0.2))
        r = {"post": [0.4 * s, 4 * s, 0.4 * s], "bush": [1.4 * s, 1.1 * s, 1.0 * s],
             "rock": [1.6 * s, 0.9 * s, 1.2 * s], "board": [3 * s, 1.2 * s, 0.1 * s]}[kind]
        new_c.append(centre)
        new_a.append(np.eye(3))
        new_r.append(r)
        info.append({"kind": kind, "depth_fraction": round(lam, 4)})
    geo.centres = np.concatenate([geo.centres, np.array(new_c)])
    geo.axes = np.concatenate([geo.axes, np.array(new_a)])
    geo.radii = np.concatenate([geo.radii, np.array(new_r)])
    geo.part = np.concatenate([geo.part, -np.ones(len(new_c), dtype=geo.part.dtype)])
    return info


def label(tpl: Template, geo: Geometry, zbuf: np.ndarray, prim: np.ndarray, scale: float = 1.0) -> dict:
    """{schema: (K, 3) float32} keypoints with depth-tested visibility (see the module docstring)."""
    cam = geo.cam
    uvz = cam.project(geo.landmarks)
    inside = (uvz[:, 2] > 0) & (uvz[:, 0] >= 0) & (uvz[:, 0] <= cam.width - 1) & (uvz[:, 1] >= 0)
    inside &= uvz[:, 1] <= cam.height - 1
    px = np.minimum(np.maximum(np.rint(uvz[:, 0]), 0), cam.width - 1).astype(int)
    py = np.minimum(np.maximum(np.rint(uvz[:, 1]), 0), cam.height - 1).astype(int)
    first = prim[py, px].astype(np.intp)
    depth = zbuf[py, px].astype(np.float64)
    own_parts, tol, schema_index = _label_tables(tpl, geo.landmark_names)
    part_of = np.concatenate([geo.part[: geo.num_animal], np.full(len(geo.part) - geo.num_animal + 1, -1)])
    hit_part = part_of[first]  # -1 for background (first = -1 reads the sentinel) and occluders
    own = (hit_part >= 0) & own_parts[np.arange(len(first)), np.maximum(hit_part, 0)]
    ok = (own & (depth >= uvz[:, 2] - tol * scale)) | (depth >= uvz[:, 2] - EPS)
    vis = np.where(inside, np.where(ok, 2, 1), 0)
    out = {}
    for schema, idx in schema_index.items():
        kp = np.zeros((len(idx), 3), dtype=np.float32)
        kp[:, :2] = uvz[idx, :2]
        kp[:, 2] = vis[idx]
        kp[kp[:, 2] == 0, :2] = 0.0  # COCO convention: unlabelled joints carry zeros
        out[schema] = kp
    return out


@cache
def _label_tables(tpl: Template, names: tuple[str, ...]):
    """Cached per template: (L, parts) bool of each landmark's own parts, (L,) tolerances, schema indices."""
    own = np.zeros((len(names), len(tpl.parts)), dtype=bool)
    tol = np.zeros(len(names))
    for i, name in enumerate(names):
        _, _, parts, t = tpl.landmarks[name]
        own[i, list(parts)] = True
        tol[i] = t
    lookup = {n: i for i, n in enumerate(names)}
    index = {schema: np.array([lookup[n] for n in lm]) for schema, lm in tpl.keypoints.items()}
    return own, tol, index


def _materials(tpl: Template, rng: np.random.Generator, detail: float, n_occ: int, variety: float):
    """Coat fields (see :func:`synthetic.appearance.coat_fields`) or None, colour per primitive (N, 3),
    coat flag per primitive (N,), coat entry.

    ``variety`` is the probability of drawing the coat from the template's whole list (by weight);
    otherwise the first coat is used, the one texture of a CAD asset (the ``cad`` style's 0).

    Primitives of material ``coat`` read the patterned coat map; every other material is a flat
    colour (points and lower legs take the coat's ``points`` colour) with the coat's fine shading.
    A solid coat without fine detail has a constant map: its fields are None and its primitives
    carry the coat colour in the colour table instead (the same albedo, without texture lookups).
    """
    static = _material_tables(tpl)
    app = tpl.appearance
    # rng.choice(p=...) without its argument checks: the same draw (one double against the cdf).
    coat_id = 0
    if rng.random() < variety:
        coat_id = int(np.searchsorted(static["cdf"], rng.random(), side="right"))
    coat = app["coats"][coat_id]
    uniform = coat["kind"] == "solid" and detail <= 0
    fields = None if uniform else ap.coat_fields(coat, rng, detail)
    slots = np.empty((len(static["materials"]) + 1, 3), dtype=np.float32)
    slots[0] = coat["color"]
    for i, mat in enumerate(static["materials"], 1):
        if mat in ("points", "lowleg"):
            colour = coat.get("points", coat["color"])
        else:
            colour = static["palettes"][mat]
            if isinstance(colour[0], list):  # a palette: pick one
                colour = colour[int(rng.integers(len(colour)))]
        slots[i] = colour
    table = np.empty((len(tpl.vol_mat) + n_occ, 3), dtype=np.float32)
    table[: len(tpl.vol_mat)] = slots[static["slot"]]
    table[len(tpl.vol_mat):] = rng.uniform(0.1, 0.8, (n_occ, 3))
    is_coat = np.concatenate([static["is_coat"], np.zeros(n_occ, dtype=bool)])
    return fields, table, is_coat, coat


@cache
def _material_tables(tpl: Template) -> dict:
    """Per-template constants of the material step (cached): coat cdf, material names (sorted, as drawn),
    each volume's colour slot (0: coat colour, 1 + i: material i), palettes, coat and belly flags."""
    w = np.array([float(c.get("w", 1)) for c in tpl.appearance["coats"]])
    cdf = np.cumsum(w / w.sum())
    is_coat = np.array([m == "coat" for m in tpl.vol_mat])
    belly = np.array([tpl.parts[q] in BELLY_PARTS for q in tpl.vol_part]) & is_coat
    materials = sorted(set(tpl.vol_mat) - {"coat"})
    slot = np.array([0 if m == "coat" else 1 + materials.index(m) for m in tpl.vol_mat], dtype=np.intp)
    palettes = {m: tpl.appearance.get("materials", {}).get(m, [0.5, 0.5, 0.5]) for m in materials}
    return {"cdf": cdf / cdf[-1], "materials": materials, "slot": slot,
            "palettes": palettes, "is_coat": is_coat, "belly": belly}


def shade(tpl, geo, zbuf, prim, background, style, rng, coat_rng) -> tuple[np.ndarray, dict]:
    """Composite the shaded, textured primitives over ``background`` (H, W, 3) uint8."""
    p = style.params
    detail = p["detail"]
    n_occ = len(geo.centres) - geo.num_animal
    fields, colour, is_coat, coat = _materials(tpl, coat_rng, detail, n_occ, p["coat_variety"])
    flat, k, local, normal = surface(zbuf, prim, geo.centres, geo.axes, geo.radii, geo.cam)
    # Surface coordinates in texels: along the long axis and around it, offset per primitive.
    n = len(geo.centres)
    offs = rng.integers(0, ap.TEX, (n, 2)).astype(np.float32)
    fine_map = ap.bank_noise(rng, 32) if fields is not None and detail > 0 else None
    # Light from above and in front of the camera, spread by the style; rim darkening reads as volume.
    spread = p["light_spread"]
    light = np.array([rng.uniform(-1, 1) * spread, -0.6 - rng.uniform(0, 0.6), -0.8 + rng.uniform(-0.2, 0.6) * spread])
    light = (light / np.linalg.norm(light)).astype(np.float32)
    tint = (1.0 + rng.uniform(-p["light_tint"], p["light_tint"], 3)).astype(np.float32) * 255.0
    amb = p["ambient"] * float(rng.uniform(0.85, 1.15))
    # The colour tint multiplies the colour table (a few entries) instead of every pixel, except under a
    # belly blend, whose colour is mixed in untinted before the light.
    belly = "belly" in coat
    pre = np.float32(1.0) if belly else tint
    gain = None  # (P,) brightness of the coat map's mod and the fine shading, applied with the light
    if fields is None:  # solid coat, no fine detail: every primitive is one flat colour
        albedo = np.take(colour * pre, k, axis=0)
    else:
        pair, cmask, cmod = fields
        # Per primitive: texels per unit of the long axis, its offset, texels per radian around, its offset.
        per = np.empty((4, n), dtype=np.float32)
        per[0] = geo.radii[:, 0] / ap.TEXEL
        per[2] = geo.radii[:, 1:].mean(1) / ap.TEXEL
        per[1], per[3] = offs[:, 0], offs[:, 1]
        # Texture coordinates where needed: coat pixels, or every pixel when fine detail is drawn.
        if detail > 0:  # surface() lists pixels grouped by primitive: per-primitive values repeat over runs
            counts = np.bincount(k, minlength=n)
            coat_px = np.repeat(is_coat, counts)
            pk, loc = np.repeat(per, counts, axis=1), local
        else:
            coat_px = is_coat[k]
            pk, loc = np.take(per, k[coat_px], axis=1), local[:, coat_px]
        wrap = np.int32(ap.TEX - 1)  # TEX is a power of two: & is Python's modulo, negatives included
        iy = (loc[0] * pk[0] + pk[1]).astype(np.int32) & wrap
        ix = (np.arctan2(loc[1], loc[2]) * pk[2] + pk[3]).astype(np.int32) & wrap
        texel = iy * np.int32(ap.TEX) + ix
        # Colour table: the coat's base and second colour, then one flat colour per primitive. The coat
        # map's fields are read at the texels (the map itself, colours[mask] * mod, is never built).
        table = np.concatenate([pair, colour]) * pre
        index = k + 2
        if detail > 0:  # texels of every pixel
            if cmask is not None:
                index = np.where(coat_px, np.take(cmask, texel), index)
            else:
                index[coat_px] = 0
            if cmod is not None:
                gain = np.where(coat_px, np.take(cmod, texel), np.float32(1.0))
        else:  # texels of the coat pixels only
            index[coat_px] = np.take(cmask, texel) if cmask is not None else 0
            if cmod is not None:
                gain = np.ones(len(k), dtype=np.float32)
                gain[coat_px] = np.take(cmod, texel)
        albedo = np.take(table, index, axis=0)
        if fine_map is not None:
            fine = np.take(fine_map, texel)
            fine -= np.float32(0.5)
            fine *= np.float32(detail * 0.3)
            fine += np.float32(1.0)
            gain = fine if gain is None else gain * fine
    if belly:
        if gain is not None:  # the coat's shading darkens the coat, not the belly colour mixed in below
            albedo *= gain[:, None]
            gain = None
        belly_prim = np.concatenate([_material_tables(tpl)["belly"], np.zeros(n - geo.num_animal, dtype=bool)])
        t = np.clip((-local[1] - 0.2) * 3.0, 0, 1) * belly_prim[k]
        albedo += (np.asarray(coat["belly"], np.float32) - albedo) * t[:, None]
    # lum = (max(n . light, 0) diffuse + ambient) (0.75 + 0.25 |n_z|) (fine shading), diffuse folded into the light.
    ld = light * np.float32(p["diffuse"])
    lum = normal[0] * ld[0]
    lum += normal[1] * ld[1]
    lum += normal[2] * ld[2]
    np.maximum(lum, 0.0, out=lum)
    lum += np.float32(amb)
    rim = np.abs(normal[2])
    rim *= np.float32(0.25)
    rim += np.float32(0.75)
    lum *= rim
    if gain is not None:
        lum *= gain
    albedo *= lum[:, None]
    if belly:
        albedo *= tint
    np.minimum(albedo, 255.0, out=albedo)
    h, w = zbuf.shape
    out = np.ascontiguousarray(background).reshape(-1, 3)
    # Scatter whole pixels as 3-byte records (much faster than row-wise fancy assignment).
    pixel = np.dtype((np.void, 3))
    out.view(pixel).reshape(-1)[flat] = albedo.astype(np.uint8).view(pixel).reshape(-1)
    info = {"coat": coat["kind"], "coat_color": [round(float(c), 3) for c in coat["color"]],
            "light": [round(float(x), 4) for x in light], "ambient": round(amb, 4)}
    return out.reshape(h, w, 3), info


def child_seed(ss: np.random.SeedSequence, *key: int) -> np.random.SeedSequence:
    """A child of ``ss`` named by ``key``; unlike ``spawn`` it does not depend on earlier calls."""
    return np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, *key))


def as_seed(seed: int | np.random.SeedSequence, species: str = "") -> np.random.SeedSequence:
    """``seed`` as a SeedSequence; integer seeds are mixed with the species name, so datasets of two
    species drawn with one seed do not share viewpoints and backgrounds."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    return np.random.SeedSequence([int(seed), zlib.crc32(species.encode())])


def render_scene(
    species: str, style: StyleConfig, seed: int | np.random.SeedSequence, size: int, *,
    mirror: bool = False, alpha: Alpha | None = None, t: float = 0.0, fit: Camera | None = None,
    frame_index: int = 0, occluders: tuple | None = None,
) -> Rendered:
    """Render one instance (or one frame of a clip). α and β draw from independent streams of ``seed``.

    Clip frames pass the clip's ``alpha``, time ``t``, the first frame's intrinsics ``fit`` and
    occluders (camera-space primitives, as in ``Rendered.factors``' geometry), and ``frame_index``
    (fresh sensor noise per frame; coat, light and background stay those of the clip).
    """
    tpl = load_template(species)
    ss = as_seed(seed, species)
    if alpha is None:
        alpha = sample_alpha(tpl, style, np.random.default_rng(child_seed(ss, 0)))
        if mirror:
            alpha = mirror_alpha(tpl, alpha)
    geo = frame(tpl, alpha, size, t, fit)
    if occluders is None:
        occ = add_occluders(tpl, geo, alpha, style, np.random.default_rng(child_seed(ss, 3)))
    else:
        occ = list(occluders[3])
        geo.centres = np.concatenate([geo.centres, occluders[0]])
        geo.axes = np.concatenate([geo.axes, occluders[1]])
        geo.radii = np.concatenate([geo.radii, occluders[2]])
        geo.part = np.concatenate([geo.part, -np.ones(len(occluders[0]), dtype=geo.part.dtype)])
    zbuf, prim = rasterise(geo.centres, geo.axes, geo.radii, geo.cam)
    keypoints = label(tpl, geo, zbuf, prim, alpha.scale)
    rng = np.random.default_rng(child_seed(ss, 1))
    p = style.params
    scenery, tried = None, style.backgrounds is not None and rng.random() < style.backgrounds_p
    if tried:
        scenery = scenery_background(rng, size, style.backgrounds)
    if scenery is not None:
        bg, bg_info = scenery
    elif rng.random() < p["photo_bg"]:
        bg, bg_info = ap.photo_background(rng, size)
    else:
        bg, bg_info = ap.procedural_background(rng, size)
    if tried and scenery is None:  # no clear square in the photographs drawn: said in the factors
        bg_info = {**bg_info, "scenery_miss": True}
    image, shade_info = shade(tpl, geo, zbuf, prim, bg, style, rng, np.random.default_rng(child_seed(ss, 2)))
    image, cam_info = ap.camera_effects(image, np.random.default_rng(child_seed(ss, 4, frame_index)), p)
    factors = {
        "alpha": alpha.to_json() | {"time": round(float(t), 5)},
        "beta": {"background": bg_info, "occluders": occ, "camera": cam_info, **shade_info},
        "style": style.to_dict(),
        "truncated": bool(alpha.extra.get("truncated", False)),
    }
    return Rendered(image, keypoints, factors, zbuf, prim, geo)


def occluders_of(r: Rendered, info: list[dict]) -> tuple:
    """The occluder primitives of a rendered frame, to reuse them on later frames of a clip."""
    n = r.geometry.num_animal
    g = r.geometry
    return g.centres[n:].copy(), g.axes[n:].copy(), g.radii[n:].copy(), tuple(info)


def render_clip(
    species: str, style: StyleConfig, seed: int | np.random.SeedSequence, size: int, frames: int, *,
    fps: float = 25.0, mirror: bool = False, orbit: float | None = None,
) -> list[Rendered]:
    """A temporally coherent clip: one gait (walk, trot or gallop) seen by a camera that tracks the
    animal and orbits at a sampled rate (or ``orbit``, degrees per second), ``frames`` frames at ``fps``."""
    tpl = load_template(species)
    ss = as_seed(seed, species)
    rng = np.random.default_rng(child_seed(ss, 0))
    alpha = sample_alpha(tpl, style, rng, gait_only=True)
    rate = float(rng.uniform(-20, 20))
    alpha = replace(alpha, orbit=rate if orbit is None else float(orbit), fill=alpha.fill * 0.85,
                    offset=(0.0, 0.0), extra={"truncated": False, "fps": fps})
    if mirror:
        alpha = mirror_alpha(tpl, alpha)
    first = render_scene(species, style, ss, size, alpha=alpha)
    occ = occluders_of(first, first.factors["beta"]["occluders"])
    out = [first]
    for k in range(1, frames):
        out.append(render_scene(species, style, ss, size, alpha=alpha, t=k / fps, fit=first.geometry.cam,
                                frame_index=k, occluders=occ))
    for k, r in enumerate(out):
        r.factors["frame_index"] = k
        r.factors["alpha"]["orbit"] = round(alpha.orbit, 4)
        r.factors["alpha"]["fps"] = fps
    return out
