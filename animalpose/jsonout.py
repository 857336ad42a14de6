"""One serializer for every ``--json`` output and result file: plain JSON whatever the values' types.

:func:`to_jsonable` turns numpy and torch scalars and arrays into numbers and lists, ``Path`` into its
string, tuples and sets into lists, dataclasses into dicts, and a non-finite float (NaN, inf: a metric
with nothing to score) into ``null``. The output is strict JSON (``allow_nan=False``): a ``NaN`` token,
which Python writes by default and most other parsers refuse, never appears.

    >>> dumps({"pck": np.float32(0.5), "ap": float("nan"), "out": Path("runs/a")})
    '{"pck": 0.5, "ap": null, "out": "runs/a"}'
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import PurePath
from typing import Any

__all__ = ["NAN_NOTE", "dumps", "to_jsonable"]

NAN_NOTE = "a metric that could not be computed (NaN, e.g. no labelled joint) is written as null"


def to_jsonable(value: Any) -> Any:
    """``value`` with every part made of JSON types (see the module docstring)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if _from_module(value, "numpy") and hasattr(value, "tolist"):  # numpy scalars and arrays
        return to_jsonable(value.tolist())
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((to_jsonable(v) for v in value), key=repr)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if _from_module(value, "torch") and hasattr(value, "detach"):
        return to_jsonable(value.detach().cpu().tolist())
    raise TypeError(f"cannot write a {type(value).__name__} as JSON: {value!r}")


def _from_module(value: Any, package: str) -> bool:
    """Whether ``value``'s type comes from ``package`` (checked by name, so that writing JSON imports neither
    numpy nor torch: the CLI's light commands stay light)."""
    return type(value).__module__.split(".")[0] == package


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`to_jsonable` (``value``), strict JSON; keyword arguments as for json.dumps."""
    return json.dumps(to_jsonable(value), allow_nan=False, **kwargs)
