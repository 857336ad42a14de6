"""Helpers shared by the readers: JSON loading, joint-name matching, schema resolution, splits."""

from __future__ import annotations

import json
import re
from pathlib import Path

from animalpose.errors import DataError, missing_file_reason
from animalpose.keypoints import KeypointSchema, list_schemas, load_schema, schema_from_names

_WORD_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# Spellings of the same joint-name word across datasets (left_front_paw ~ L_F_Paw ~ LeftFrontPaw).
_SYNONYMS = {"left": "l", "right": "r", "front": "f", "back": "b", "hind": "b", "fore": "f"}


def canonical_joint(name: str) -> str:
    """A spelling-independent key for a joint name.

    Words are split on separators and case changes, lower-cased, side/limb words abbreviated
    (left -> l, front -> f, hind/back -> b) and the word "base" dropped (Animal-Pose writes
    "TailBase"/"L_EarBase", its original release "tailbase"/"left_ear"). Examples:
    ``left_front_paw``, ``L_F_Paw`` and ``LeftFrontPaw`` all give ``"lfpaw"``.
    """
    words = [w.lower() for w in _WORD_RE.findall(name)]
    return "".join(_SYNONYMS.get(w, w) for w in words).replace("base", "")


def load_json(path: Path):
    """Parse a JSON file; malformed JSON is a DataError naming the file and the line."""
    try:
        with path.open("rb") as fh:
            return json.load(fh)
    except (FileNotFoundError, IsADirectoryError):
        raise DataError(str(path), "<file>", missing_file_reason(path)) from None
    except json.JSONDecodeError as exc:
        raise DataError(str(path), f"line {exc.lineno} column {exc.colno}", f"malformed JSON: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(str(path), "<file>", f"not a UTF-8 JSON file: {exc}") from exc


def require(obj, key: str, where: str, field: str):
    """``obj[key]``, or a DataError naming ``where`` and ``field`` when obj is not a dict or lacks it."""
    if not isinstance(obj, dict):
        raise DataError(where, field.rsplit(".", 1)[0] if "." in field else field, "expected a JSON object")
    if key not in obj:
        raise DataError(where, field, "missing")
    return obj[key]


def schema_by_name(name: str | KeypointSchema) -> KeypointSchema:
    return name if isinstance(name, KeypointSchema) else load_schema(name)


def match_schema_by_names(names: list[str]) -> tuple[KeypointSchema, str] | None:
    """The known schema whose joints are ``names`` (any spelling), with "schema" or "original" order.

    Returns (schema, order) where order is "schema" when names are in the schema's order and
    "original" when they follow ``schema.extra["original_order"]``; None when nothing matches.
    """
    key = [canonical_joint(n) for n in names]
    for candidate in list_schemas():
        schema = load_schema(candidate)
        if [canonical_joint(n) for n in schema.joints] == key:
            return schema, "schema"
        original = schema.extra.get("original_order")
        if original and [canonical_joint(n) for n in original] == key:
            return schema, "original"
    return None


def schemas_with_joint_count(k: int) -> list[str]:
    return [n for n in list_schemas() if load_schema(n).num_joints == k]


def resolve_schema(
    explicit: str | KeypointSchema | None,
    declared: str | None,
    names: list[str] | None,
    num_joints: int | None,
    where: str,
) -> tuple[KeypointSchema, str]:
    """Pick the schema of a dataset: explicit > declared in the file > joint names > unique joint count.

    Returns (schema, order) with order "schema" or "original" (see :func:`match_schema_by_names`).
    Raises DataError naming ``where`` and suggesting ``--schema`` when the choice is ambiguous.
    """
    if explicit is not None:
        schema = schema_by_name(explicit)
        if names and schema.extra.get("original_order"):
            key = [canonical_joint(n) for n in names]
            if key == [canonical_joint(n) for n in schema.extra["original_order"]] and key != [
                canonical_joint(n) for n in schema.joints
            ]:
                return schema, "original"
        return schema, "schema"
    if declared:
        if declared in list_schemas() or not names:
            return load_schema(declared), "schema"
        # a schema of the dataset's own (e.g. "dlc:mouse" written by write_coco): rebuild it from the names
        return schema_from_names(declared, list(names)), "schema"
    if names:
        found = match_schema_by_names(names)
        if found is not None:
            return found
    if num_joints is not None:
        candidates = schemas_with_joint_count(num_joints)
        if len(candidates) == 1:
            return load_schema(candidates[0]), "schema"
        raise DataError(
            where,
            "categories[].keypoints",
            f"cannot tell the keypoint schema of {num_joints} joints "
            f"(candidates: {candidates or 'none'}); pass --schema NAME",
        )
    raise DataError(where, "categories[].keypoints", "no joint names or counts to infer a schema; pass --schema NAME")


def split_from_name(name: str) -> str | None:
    """"train", "val" or "test" when a file stem names its split (person_keypoints_val2017 -> "val")."""
    for token in re.split(r"[^A-Za-z]+", name.lower()):
        if token.startswith("train"):
            return "train"
        if token.startswith("val"):
            return "val"
        if token.startswith("test"):
            return "test"
    return None


def held_out_every(n_items: int, every: int = 5) -> list[bool]:
    """Deterministic hold-out: item i (in sorted order) is held out when i % every == every - 1.

    With every=5 exactly floor(n/5) items (about one fifth) are held out, spread evenly over the
    sorted order so that no block of neighbouring ids (often one recording session) is all held out.
    """
    return [i % every == every - 1 for i in range(n_items)]
