"""Keypoint schemas: joint names, flip pairs, OKS sigmas and skeleton edges, loaded from YAML data.

A schema is data, not code: ``configs/keypoints/<name>.yaml``. Flip pairs are derived from the
left/right markers in the joint names; where a file also lists the published pairs, the two must
agree (a mismatch is an error naming the file). Schemas can also be built from a dataset's own
header (DeepLabCut bodyparts, SLEAP skeleton nodes) with :func:`schema_from_names`.

Mappings between schemas (``configs/keypoints/mappings/<source>__<target>.yaml``) are explicit
tables of joint-name pairs; :class:`SchemaMapping` moves (K, 3) keypoint arrays between them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from animalpose.config.loader import Section, parse_config, read_yaml
from animalpose.errors import DataError, missing_file_reason

CONFIG_ROOT = Path(os.environ.get("ANIMALPOSE_CONFIGS", Path(__file__).resolve().parents[1] / "configs"))
SCHEMA_DIR = CONFIG_ROOT / "keypoints"
MAPPING_DIR = SCHEMA_DIR / "mappings"

# Side markers recognised in joint names, as (left, right) spellings. A token is a marker only when it
# stands alone between separators (L_F_Paw, left_eye, LeftEar) so that names such as "Lip" do not match.
_SIDE_WORDS = (("left", "right"), ("l", "r"), ("Left", "Right"), ("L", "R"), ("LEFT", "RIGHT"))
_TOKEN_RE = re.compile(r"[A-Za-z][a-z]*|[0-9]+|[^A-Za-z0-9]+")


@dataclass(frozen=True)
class KeypointSchema:
    """An ordered set of named joints.

    Attributes:
        name: schema identifier carried by every record, head and metric.
        joints: joint names in order; K = len(joints).
        flip_pairs: (i, j) index pairs swapped by a horizontal flip, i < j.
        sigmas: (K,) OKS sigmas, or None where none are published.
        skeleton: (i, j) index pairs drawn as bones.
    """

    name: str
    joints: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...] = ()
    sigmas: tuple[float, ...] | None = None
    skeleton: tuple[tuple[int, int], ...] = ()
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def can_flip(self) -> bool:
        return len(self.flip_pairs) > 0

    def index(self, joint: str) -> int:
        try:
            return self.joints.index(joint)
        except ValueError:
            raise KeyError(f"schema {self.name!r} has no joint {joint!r}") from None

    def flip_permutation(self) -> np.ndarray:
        """(K,) int array: output joint k takes input joint perm[k] after a horizontal flip."""
        perm = np.arange(self.num_joints)
        for i, j in self.flip_pairs:
            perm[i], perm[j] = j, i
        return perm

    def sigmas_array(self) -> np.ndarray | None:
        return None if self.sigmas is None else np.asarray(self.sigmas, dtype=np.float64)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "joints": list(self.joints),
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "sigmas": None if self.sigmas is None else list(self.sigmas),
            "skeleton": [list(e) for e in self.skeleton],
        }


def _mirror_name(name: str) -> str | None:
    """The name with its single side marker swapped (L_F_Paw -> R_F_Paw), or None if it has none."""
    tokens = _TOKEN_RE.findall(name)
    hits = []
    for i, tok in enumerate(tokens):
        for left, right in _SIDE_WORDS:
            if tok == left:
                hits.append((i, right))
            elif tok == right:
                hits.append((i, left))
    if len(hits) != 1:
        return None
    i, other = hits[0]
    tokens[i] = other
    return "".join(tokens)


def derive_flip_pairs(joints: tuple[str, ...] | list[str]) -> tuple[tuple[int, int], ...]:
    """Flip pairs from left/right markers in the names; unpaired or unmarked joints map to themselves."""
    index = {n: i for i, n in enumerate(joints)}
    pairs = set()
    for i, name in enumerate(joints):
        other = _mirror_name(name)
        if other is not None and other in index and index[other] != i:
            pairs.add(tuple(sorted((i, index[other]))))
    return tuple(sorted(pairs))


def _edges(raw, index: dict[str, int], where: str) -> tuple[tuple[int, int], ...]:
    out = []
    for k, edge in enumerate(raw or []):
        if not isinstance(edge, list | tuple) or len(edge) != 2:
            raise DataError(where, f"skeleton[{k}]", "expected a pair of joint names")
        a, b = (index.get(e) if isinstance(e, str) else e for e in edge)
        if a is None or b is None or not (0 <= a < len(index) and 0 <= b < len(index)):
            raise DataError(where, f"skeleton[{k}]", f"unknown joint in {edge}")
        out.append((int(a), int(b)))
    return tuple(out)


class SchemaFile(Section):
    """The keys of a schema file (``configs/keypoints/<name>.yaml``), read by the careful loader
    (:mod:`animalpose.config.loader`). Lists are checked item by item by :func:`schema_from_dict`."""

    name: str
    joints: list  # joint names, distinct, K >= 1
    flip_pairs: list | None = None  # the published (i, j) pairs; they must agree with the names
    sigmas: list | None = None  # (K,) positive OKS sigmas
    skeleton: list | None = None  # [joint, joint] edges, by name or index
    original_order: list | None = None  # the joints in the dataset's own order (a permutation)


def schema_from_dict(data: dict, where: str = "<dict>", *, check_published: bool = True) -> KeypointSchema:
    """Build and validate a schema from its YAML dict. ``where`` names the file in errors: a
    :class:`~animalpose.errors.ConfigError` (a DataError) naming it and the key."""
    parse_config(data, SchemaFile, where=where)  # unknown / missing keys, a key of the wrong type
    joints = data["joints"]
    if not isinstance(joints, list) or not all(isinstance(j, str) for j in joints) or not joints:
        raise DataError(where, "joints", "expected a non-empty list of names")
    if len(set(joints)) != len(joints):
        raise DataError(where, "joints", "duplicate joint names")
    derived = derive_flip_pairs(joints)
    published = data.get("flip_pairs")
    if published is not None and check_published:
        try:
            pub = tuple(sorted(tuple(sorted(int(i) for i in p)) for p in published))
        except (TypeError, ValueError) as exc:
            raise DataError(where, "flip_pairs", f"expected a list of index pairs, got {published!r}") from exc
        if any(len(p) != 2 for p in pub):
            raise DataError(where, "flip_pairs", f"expected a list of index pairs, got {published!r}")
        if pub != derived:
            raise DataError(
                where,
                "flip_pairs",
                f"published pairs {list(pub)} disagree with pairs derived from names {list(derived)}",
            )
    sigmas = data.get("sigmas")
    if sigmas is not None:
        if not isinstance(sigmas, list):
            raise DataError(where, "sigmas", f"expected a list of numbers or null, got {sigmas!r}")
        if len(sigmas) != len(joints):
            raise DataError(where, "sigmas", f"{len(sigmas)} sigmas for {len(joints)} joints")
        try:
            sigmas = tuple(float(s) for s in sigmas)
        except (TypeError, ValueError) as exc:
            raise DataError(where, "sigmas", f"expected numbers, got {sigmas!r}") from exc
        if not all(s > 0 for s in sigmas):
            raise DataError(where, "sigmas", "every sigma must be positive")
    index = {n: i for i, n in enumerate(joints)}
    extra = {}
    if "original_order" in data:
        order = data["original_order"]
        missing = [n for n in order if n not in index]
        if missing or len(order) != len(joints):
            raise DataError(where, "original_order", f"must be a permutation of joints (unknown: {missing})")
        extra["original_order"] = tuple(order)
    return KeypointSchema(
        name=str(data["name"]),
        joints=tuple(joints),
        flip_pairs=derived,
        sigmas=sigmas,
        skeleton=_edges(data.get("skeleton"), index, where),
        extra=extra,
    )


def schema_from_names(
    name: str,
    joints: list[str],
    skeleton: list[tuple[str, str]] | None = None,
    *,
    flip: bool = True,
) -> KeypointSchema:
    """A schema from a dataset's own header (DeepLabCut bodyparts, SLEAP nodes); flip pairs optional."""
    if not joints or len(set(joints)) != len(joints):
        raise DataError(name, "joints", f"expected distinct joint names, got {list(joints)}")
    index = {n: i for i, n in enumerate(joints)}
    edges = tuple((index[a], index[b]) for a, b in (skeleton or []) if a in index and b in index)
    return KeypointSchema(
        name=name,
        joints=tuple(joints),
        flip_pairs=derive_flip_pairs(joints) if flip else (),
        skeleton=edges,
    )


@cache
def load_schema(name: str) -> KeypointSchema:
    """Load ``configs/keypoints/<name>.yaml``."""
    path = SCHEMA_DIR / f"{name}.yaml"
    if not path.is_file():
        raise DataError(str(path), "name", f"unknown keypoint schema {name!r} (known: {list_schemas()})")
    schema = schema_from_dict(read_yaml(path), str(path))
    if schema.name != name:
        raise DataError(str(path), "name", f"file declares {schema.name!r}, expected {name!r}")
    return schema


def list_schemas() -> list[str]:
    return sorted(p.stem for p in SCHEMA_DIR.glob("*.yaml"))


@dataclass(frozen=True)
class SchemaMapping:
    """An explicit joint correspondence table from ``source`` to ``target``.

    ``pairs`` holds (source index, target index). Mapping (K_src, 3) keypoints gives (K_dst, 3)
    with visibility 0 for target joints the source lacks.
    """

    source: str
    target: str
    pairs: tuple[tuple[int, int], ...]
    num_source: int
    num_target: int

    def inverse(self) -> SchemaMapping:
        return SchemaMapping(
            self.target, self.source, tuple((b, a) for a, b in self.pairs), self.num_target, self.num_source
        )

    @property
    def source_indices(self) -> np.ndarray:
        return np.array([a for a, _ in self.pairs], dtype=np.int64)

    @property
    def target_indices(self) -> np.ndarray:
        return np.array([b for _, b in self.pairs], dtype=np.int64)

    def apply(self, keypoints: np.ndarray) -> np.ndarray:
        """(..., K_src, C) -> (..., K_dst, C); unmapped target joints are zero (visibility 0)."""
        if keypoints.shape[-2] != self.num_source:
            raise ValueError(f"expected {self.num_source} {self.source} joints, got {keypoints.shape[-2]}")
        out = np.zeros((*keypoints.shape[:-2], self.num_target, keypoints.shape[-1]), dtype=keypoints.dtype)
        out[..., self.target_indices, :] = keypoints[..., self.source_indices, :]
        return out

    def target_mask(self) -> np.ndarray:
        """(K_dst,) bool: which target joints the source can provide."""
        mask = np.zeros(self.num_target, dtype=bool)
        mask[self.target_indices] = True
        return mask


@cache
def load_mapping(source: str, target: str) -> SchemaMapping:
    """The mapping ``source`` -> ``target``, read from either direction's file."""
    forward = MAPPING_DIR / f"{source}__{target}.yaml"
    backward = MAPPING_DIR / f"{target}__{source}.yaml"
    if forward.is_file():
        return _read_mapping(forward)
    if backward.is_file():
        return _read_mapping(backward).inverse()
    raise DataError(str(forward), "source/target", f"no mapping between {source!r} and {target!r}")


def mapping_from_file(path: str | Path) -> SchemaMapping:
    """A mapping table given by path (same layout as ``configs/keypoints/mappings/*.yaml``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "<file>", missing_file_reason(path, "mapping file"))
    return _read_mapping(path)


class MappingFile(Section):
    """The keys of a mapping file (``configs/keypoints/mappings/<source>__<target>.yaml``)."""

    source: str  # schema names
    target: str
    pairs: list  # [source joint, target joint] name pairs; each joint at most once per side


def _read_mapping(path: Path) -> SchemaMapping:
    where = str(path)
    data = read_yaml(path)
    parse_config(data, MappingFile, where=where)
    src, dst = load_schema(data["source"]), load_schema(data["target"])
    pairs = []
    for k, pair in enumerate(data["pairs"]):
        try:
            pairs.append((src.index(pair[0]), dst.index(pair[1])))
        except (KeyError, IndexError, TypeError) as exc:
            raise DataError(where, f"pairs[{k}]", str(exc)) from exc
    for side, idx in (("source", [a for a, _ in pairs]), ("target", [b for _, b in pairs])):
        if len(set(idx)) != len(idx):
            raise DataError(where, "pairs", f"a {side} joint appears twice")
    return SchemaMapping(src.name, dst.name, tuple(pairs), src.num_joints, dst.num_joints)
