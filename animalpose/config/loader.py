"""The careful YAML loader: files validated into pydantic models, with file- and key-named errors.

Used for every YAML file the project reads: experiment configurations (:mod:`animalpose.config.experiment`
and the method sections built on it), flow presets, keypoint schemas and mappings
(:mod:`animalpose.keypoints`) and species templates (:mod:`synthetic.template`).

A file may name a ``base:`` YAML file (relative to itself) that is loaded first and deep-merged under it.
Command-line overrides ``key.sub=value`` are applied last; the value is parsed as YAML, so
``train.lr=1e-3`` is a float, ``data.train=[a,b]`` a list and ``train.grad_clip=null`` is None. A model
class may adjust the tree after overrides with a classmethod ``fit_overrides(before, raw, overridden,
where)`` (:class:`~animalpose.config.experiment.ExperimentConfig` scales its lr milestones there).

Every problem is an :class:`animalpose.errors.ConfigError` naming the file (or the override) and the
dotted key: an unknown key (with the closest known one), a wrong type, a referenced file that does not
exist, malformed YAML, a duplicate key, a bad override. Nothing starts before the whole file validates.

Paths: fields typed :data:`ExistingPath` must exist; fields typed :data:`ResolvedPath` need not.
A relative path written in a file is resolved against that file's directory (a ``base`` file's
paths against the base file's directory); a relative path given in an override is resolved against
the current working directory, where the user typed it.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from animalpose.atomic import write_text_atomic
from animalpose.errors import ConfigError, Problem

__all__ = [
    "ExistingPath",
    "KeyedError",
    "ResolvedPath",
    "Section",
    "as_list",
    "flatten",
    "load_config",
    "parse_config",
    "parse_override",
    "read_yaml",
    "section_names",
    "to_dict",
    "to_yaml",
    "write_config",
]

M = TypeVar("M", bound=BaseModel)


# --------------------------------------------------------------------------------------------------
# Path types
# --------------------------------------------------------------------------------------------------


class _PathMarker:
    """Annotated metadata that marks a field as a filesystem path (found by :func:`_field_is_path`)."""

    def __init__(self, must_exist: bool):
        self.must_exist = must_exist


def _expand(p: Path) -> Path:
    return Path(os.path.expanduser(str(p)))


def _check_exists(p: Path) -> Path:
    p = _expand(p)
    if not p.exists():
        raise ValueError(f"file not found: {p}")
    return p


ResolvedPath = Annotated[Path, AfterValidator(_expand), _PathMarker(must_exist=False)]
"""A path, made absolute against the config file's directory; it need not exist (an output)."""

ExistingPath = Annotated[Path, AfterValidator(_check_exists), _PathMarker(must_exist=True)]
"""A path that must exist when the configuration loads (a dataset, a checkpoint)."""


def as_list(value: Any) -> Any:
    """Accept a single item where a list is expected (``data.train: a.json``)."""
    if value is None:
        return []
    if isinstance(value, str | Path):
        return [value]
    return value


class KeyedError(ValueError):
    """A cross-field validation error that knows which key (relative to its model) is wrong."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(message)


# --------------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------------


class Section(BaseModel):
    """Base of every configuration section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------------------------------
# YAML reading
# --------------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe loader that reads ``1e-3`` as a float (YAML 1.2) and rejects duplicate keys."""


_FLOAT_TAG = "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != _FLOAT_TAG]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# Appended after the int resolver, which PyYAML tries first: "10" stays an int.
_Loader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?
        |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen[key] = True
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects


def read_yaml(path: str | Path) -> dict:
    """The mapping at the top of the YAML file ``path`` (``{}`` when empty), read as :func:`load_config` reads
    it (YAML 1.2 floats, duplicate keys refused); ConfigError naming the file on a missing file, malformed YAML
    or a top level that is not a mapping."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise ConfigError(where, "<file>", "no such configuration file")
    try:
        data = _yaml_load(path.read_text())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<yaml>"
        raise ConfigError(where, at, f"malformed YAML: {exc.problem or exc}") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(where, "<yaml>", f"malformed YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(where, "<root>", f"expected a mapping of sections, got {type(data).__name__}")
    return data


# --------------------------------------------------------------------------------------------------
# Walking the model tree (path fields, override keys)
# --------------------------------------------------------------------------------------------------


def _unwrap(tp: Any) -> list[Any]:
    """The alternatives of a (possibly Optional/Union/Annotated) type."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (Union, types.UnionType):
        out = []
        for arg in typing.get_args(tp):
            out.extend(_unwrap(arg))
        return out
    return [tp]


def _submodel(tp: Any) -> type[BaseModel] | None:
    for alt in _unwrap(tp):
        if isinstance(alt, type) and issubclass(alt, BaseModel):
            return alt
    return None


def _has_path_marker(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        args = typing.get_args(tp)
        return any(isinstance(m, _PathMarker) for m in args[1:]) or _has_path_marker(args[0])
    return any(_has_path_marker(a) for a in typing.get_args(tp))


def _field_is_path(info: Any) -> bool:
    return any(isinstance(m, _PathMarker) for m in info.metadata) or _has_path_marker(info.annotation)


def _fields_by_key(cls: type[BaseModel]) -> dict[str, Any]:
    """Field infos by the key used in YAML (the alias where there is one)."""
    return {(info.alias or name): info for name, info in cls.model_fields.items()}


def _absolutise(value: Any, base_dir: Path) -> Any:
    if isinstance(value, str) and value:
        p = Path(os.path.expanduser(value))
        return str(p if p.is_absolute() else (base_dir / p))
    if isinstance(value, list):
        return [_absolutise(v, base_dir) for v in value]
    return value


def _resolve_paths(raw: dict, cls: type[BaseModel], base_dir: Path) -> dict:
    """Copy of ``raw`` with relative strings in path fields made absolute against ``base_dir``."""
    fields = _fields_by_key(cls)
    out = {}
    for key, value in raw.items():
        info = fields.get(key)
        if info is None:
            out[key] = value
        elif _field_is_path(info):
            out[key] = _absolutise(value, base_dir)
        elif isinstance(value, dict) and (sub := _submodel(info.annotation)) is not None:
            out[key] = _resolve_paths(value, sub, base_dir)
        else:
            out[key] = value
    return out


def _known_keys(cls: type[BaseModel], loc: Sequence[str]) -> list[str] | None:
    """Keys allowed under ``loc`` in ``cls`` (None where the tree is not a model there); ``loc`` may pass
    through the values of a ``dict[str, Model]`` or the items of a ``list[Model]``."""
    types_here: list[Any] = [cls]
    for part in loc:
        below = []
        for alt in (a for tp in types_here for a in _unwrap(tp)):
            origin, args = typing.get_origin(alt), typing.get_args(alt)
            if isinstance(alt, type) and issubclass(alt, BaseModel):
                info = _fields_by_key(alt).get(str(part))
                below += [] if info is None else [info.annotation]
            elif origin is dict and len(args) == 2:
                below.append(args[1])
            elif origin is list and args:
                below.append(args[0])
        types_here = below
    models = [m for m in map(_submodel, types_here) if m is not None]
    return list(_fields_by_key(models[0])) if models else None


def _unknown_key_message(cls: type[BaseModel], loc: Sequence[str]) -> str:
    known = _known_keys(cls, loc[:-1]) or []
    msg = "unknown key"
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        msg += f" (did you mean {close[0]!r}?)"
    return msg + f"; known keys here: {', '.join(known)}"


# --------------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------------

_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def parse_override(text: str, where: str = "<override>") -> tuple[list[str], Any]:
    """``"train.lr=1e-3"`` -> (["train", "lr"], 0.001). The value is parsed as YAML."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not _KEY_RE.fullmatch(key):
        raise ConfigError(where, text, f"bad override {text!r}: expected key.sub=value (e.g. train.lr=1e-3)")
    try:
        parsed = _yaml_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(where, key, f"bad override {text!r}: value is not valid YAML ({exc})") from exc
    return key.split("."), parsed


def _check_override_key(cls: type[BaseModel], parts: list[str], text: str, where: str) -> None:
    node: type[BaseModel] | None = cls
    for depth, part in enumerate(parts):
        if node is None:
            raise ConfigError(
                where, ".".join(parts), f"override {text!r}: {'.'.join(parts[:depth])} has no sub-keys"
            )
        fields = _fields_by_key(node)
        if part not in fields:
            loc = parts[: depth + 1]
            raise ConfigError(where, ".".join(loc), f"override {text!r}: {_unknown_key_message(cls, loc)}")
        node = _submodel(fields[part].annotation)


def _set(tree: dict, parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        nxt = tree.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            tree[part] = nxt
        tree = nxt
    tree[parts[-1]] = value


# --------------------------------------------------------------------------------------------------
# Merging and provenance
# --------------------------------------------------------------------------------------------------


def _deep_merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``: mappings merge key by key, everything else (lists too) replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _leaf_keys(tree: dict, prefix: tuple = ()) -> Iterable[tuple]:
    for key, value in tree.items():
        loc = (*prefix, str(key))
        yield loc
        if isinstance(value, dict):
            yield from _leaf_keys(value, loc)


def _load_chain(path: Path, cls: type[BaseModel], seen: tuple[Path, ...] = ()) -> tuple[dict, dict]:
    """Read ``path`` and its ``base`` chain. Returns (merged raw dict, {key tuple: source file})."""
    path = path.resolve() if path.exists() else path
    if path in seen:
        chain = " -> ".join(str(p) for p in (*seen, path))
        raise ConfigError(str(seen[-1]), "base", f"circular base chain: {chain}")
    raw = read_yaml(path)
    base_ref = raw.pop("base", None)
    raw = _resolve_paths(raw, cls, path.parent)
    merged: dict = {}
    provenance: dict = {}
    if base_ref is not None:
        merged, provenance = _load_chain(_base_file(path, base_ref), cls, (*seen, path))
    merged = _deep_merge(merged, raw)
    provenance.update({loc: str(path) for loc in _leaf_keys(raw)})
    return merged, provenance


def _base_file(path: Path, base_ref: Any) -> Path:
    """The file named by the ``base:`` entry of ``path`` (relative to ``path``'s folder); ConfigError naming
    ``path`` and ``base`` when it is not a path to an existing file."""
    if not isinstance(base_ref, str) or not base_ref:
        raise ConfigError(str(path), "base", f"expected a path to a YAML file, got {base_ref!r}")
    base_path = Path(os.path.expanduser(base_ref))
    if not base_path.is_absolute():
        base_path = path.parent / base_path
    if not base_path.is_file():
        raise ConfigError(str(path), "base", f"file not found: {base_path}")
    return base_path


def _raw_chain(path: str | Path) -> Iterable[dict]:
    """The raw values of ``path`` and of each file of its ``base`` chain, in that order (a cycle ends it)."""
    path, seen = Path(path), set()
    while path.resolve() not in seen:
        seen.add(path.resolve())
        raw = read_yaml(path)
        yield raw
        if raw.get("base") is None:
            break
        path = _base_file(path, raw["base"])


def section_names(path: str | Path) -> set[str]:
    """The top-level keys of ``path`` and its ``base`` chain (e.g. {"data", ..., "ccssl"}), to tell which
    config class a file is for before validating it."""
    if not Path(path).is_file():
        return set()
    return {key for raw in _raw_chain(path) for key in raw if key != "base"}


def config_digest(path: str | Path) -> str:
    """A short fingerprint (16 hex digits of SHA-256) of the values of ``path`` and its ``base`` chain as written
    (relative paths unresolved, so the same files in another checkout give the same digest): what a cache of runs
    made from a config keys on, so that an edited template (or its base) is never taken for the one a cached run
    used."""
    import hashlib

    chain = list(_raw_chain(path))
    return hashlib.sha256(json.dumps(chain, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# Validation and errors
# --------------------------------------------------------------------------------------------------


def _source_of(loc: tuple, provenance: dict, default: str) -> str:
    for n in range(len(loc), 0, -1):
        if loc[:n] in provenance:
            return provenance[loc[:n]]
    return default


def _dotted(loc: Sequence[str | int]) -> str:
    """("data", "train", 0) -> "data.train[0]"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def _to_config_error(
    exc: ValidationError, cls: type[BaseModel], provenance: dict, default: str
) -> ConfigError:
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"])
        inner = (err.get("ctx") or {}).get("error")
        if isinstance(inner, KeyedError):
            loc = (*loc, *inner.key.split("."))
            message = str(inner)
        elif err["type"] == "extra_forbidden":
            message = _unknown_key_message(cls, [str(p) for p in loc])
        elif err["type"] == "missing" and loc and isinstance(loc[-1], int):
            message = f"too few items: item [{loc[-1]}] is missing"
            loc = loc[:-1]
        elif err["type"] == "value_error":
            message = err["msg"].removeprefix("Value error, ")
        else:
            message = err["msg"]
            value = err.get("input")
            if err["type"] != "missing" and not isinstance(value, dict | list) and len(repr(value)) < 80:
                message += f" (got {value!r})"
        source = _source_of(tuple(str(p) for p in loc if not isinstance(p, int)), provenance, default)
        problems.append(Problem(source, _dotted(loc), message))
    first = problems[0]
    message = first.message
    if len(problems) > 1:
        message += "; also: " + "; ".join(f"{p.field}: {p.message}" for p in problems[1:])
    error = ConfigError(first.file, first.field, message)
    error.problems = problems
    return error


def parse_config(
    data: dict,
    cls: type[M],
    *,
    where: str = "<dict>",
    base_dir: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> M:
    """Validate an in-memory dict (e.g. the resolved config stored in a checkpoint) as ``cls``.

    Relative paths resolve against ``base_dir`` (default: the current directory). ``where`` names
    the source in errors.
    """
    if not isinstance(data, dict):
        raise ConfigError(where, "<root>", f"expected a mapping of sections, got {type(data).__name__}")
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    raw = _resolve_paths(dict(data), cls, base)
    provenance = {loc: where for loc in _leaf_keys(raw)}
    return _finish(raw, cls, provenance, where, overrides)


def _finish(raw: dict, cls: type[M], provenance: dict, where: str, overrides: Sequence[str]) -> M:
    before = copy.deepcopy(raw) if overrides else raw
    overridden: set[tuple[str, ...]] = set()
    for text in overrides:
        parts, value = parse_override(text, where)
        _check_override_key(cls, parts, text, where)
        sub = _submodel(_field_at(cls, parts).annotation)
        value = _resolve_paths({parts[-1]: value}, _owner(cls, parts), Path.cwd())[parts[-1]]
        if sub is not None and value is not None and not isinstance(value, dict):
            raise ConfigError(where, ".".join(parts), f"override {text!r}: {'.'.join(parts)} is a section, "
                              "set one of its keys instead")
        _set(raw, parts, value)
        overridden.add(tuple(parts))
        label = f"{where} (override {text!r})"
        provenance[tuple(parts)] = label
        if isinstance(value, dict):
            provenance.update({(*parts, *loc): label for loc in _leaf_keys(value)})
    fit = getattr(cls, "fit_overrides", None)
    if overridden and fit is not None:
        fit(before, raw, overridden, where)
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        raise _to_config_error(exc, cls, provenance, where) from None


def _owner(cls: type[BaseModel], parts: list[str]) -> type[BaseModel]:
    node = cls
    for part in parts[:-1]:
        node = _submodel(_fields_by_key(node)[part].annotation)
    return node


def _field_at(cls: type[BaseModel], parts: list[str]) -> Any:
    return _fields_by_key(_owner(cls, parts))[parts[-1]]


def load_config(path: str | Path, cls: type[M], overrides: Sequence[str] = ()) -> M:
    """Load ``path`` (following ``base:``), apply ``overrides`` (``key.sub=value``) and validate as ``cls``.

    Raises ConfigError naming the file (or override) and the dotted key on any problem.
    """
    model = cls
    path = Path(path)
    raw, provenance = _load_chain(path, model)
    where = str(path.resolve() if path.exists() else path)
    return _finish(raw, model, provenance, where, overrides)


# --------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------


def to_dict(cfg: BaseModel) -> dict:
    """Plain JSON-compatible dict (paths as strings, tuples as lists), keys as written in YAML."""
    return cfg.model_dump(mode="json", by_alias=True)


class _Dumper(yaml.SafeDumper):
    """Block style for sections, flow style for short lists of scalars (``input_size: [256, 256]``)."""

    def represent_list(self, data: list) -> yaml.Node:
        flow = all(not isinstance(v, dict | list) for v in data)
        return self.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _Dumper.represent_list)


def to_yaml(cfg: BaseModel) -> str:
    """The resolved configuration as YAML text; loading it back gives an equal object."""
    return yaml.dump(to_dict(cfg), Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def write_config(cfg: BaseModel, path: str | Path) -> Path:
    """Write ``to_yaml(cfg)`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    return write_text_atomic(path, to_yaml(cfg))


Scalar = str | int | float | bool | None


def flatten(cfg: BaseModel | dict, sep: str = ".") -> dict[str, Scalar]:
    """``{"train.lr": 0.001, "data.input_size": "[256, 256]", ...}``: one entry per leaf, for MLflow params.

    Scalars stay as they are; lists and tuples become compact JSON strings; nested sections become
    dotted keys.
    """
    tree = to_dict(cfg) if isinstance(cfg, BaseModel) else cfg
    out: dict[str, Scalar] = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{sep}{key}" if prefix else str(key)
            if isinstance(value, dict):
                walk(value, name)
            elif isinstance(value, list | tuple):
                out[name] = json.dumps(value, separators=(", ", ": "))
            else:
                out[name] = value

    walk(tree, "")
    return out
