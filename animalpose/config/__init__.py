"""Typed experiment configuration: YAML files validated into pydantic models at load time.

Two modules: :mod:`animalpose.config.experiment` is the schema (the sections of
:class:`ExperimentConfig`), :mod:`animalpose.config.loader` the careful loader that reads any YAML file
of the project into a model (``base:`` chains, ``key.sub=value`` overrides, relative paths, errors that
name the file and the dotted key). This package re-exports both; :func:`load_config` and
:func:`parse_config` validate as :class:`ExperimentConfig` unless given another class.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from animalpose.config import loader
from animalpose.config.experiment import (
    NO_SELECTION,
    SOURCE_VAL,
    AugmentConfig,
    CodecConfig,
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    SchemaName,
    TrackingConfig,
    TrainConfig,
)
from animalpose.config.loader import (
    ExistingPath,
    KeyedError,
    ResolvedPath,
    Section,
    config_digest,
    flatten,
    parse_override,
    read_yaml,
    section_names,
    to_dict,
    to_yaml,
    write_config,
)

__all__ = [
    "NO_SELECTION",
    "SOURCE_VAL",
    "AugmentConfig",
    "CodecConfig",
    "DataConfig",
    "ExistingPath",
    "ExperimentConfig",
    "KeyedError",
    "ModelConfig",
    "ResolvedPath",
    "SchemaName",
    "Section",
    "TrackingConfig",
    "TrainConfig",
    "config_digest",
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


def load_config(path: str | Path, cls: type[M] | None = None, overrides: Sequence[str] = ()) -> M:
    """:func:`animalpose.config.loader.load_config` as ``cls`` (default :class:`ExperimentConfig`)."""
    return loader.load_config(path, cls or ExperimentConfig, overrides)


def parse_config(data: dict, cls: type[M] = ExperimentConfig, *, where: str = "<dict>",
                 base_dir: str | Path | None = None, overrides: Sequence[str] = ()) -> M:
    """:func:`animalpose.config.loader.parse_config` as ``cls`` (default :class:`ExperimentConfig`)."""
    return loader.parse_config(data, cls, where=where, base_dir=base_dir, overrides=overrides)
