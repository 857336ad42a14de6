"""Flow presets: how much data to generate, how long to train, how many rounds.

A flow preset (``configs/flows/<name>.yaml``) names an engine configuration (``train_config``, e.g.
``configs/presets/quick.yaml``) plus engine overrides, and sizes the synthetic datasets a flow
generates when the user gives none: the labelled source (``cad`` style) with its validation split,
the unlabelled target (``photo`` style; its labels are never used for training) and a labelled,
held-out target test set (for source-only / round / oracle PCK). ``smoke`` finishes in minutes on
two CPU cores; ``quick`` is the demo; a user points ``preset`` at their own file for more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from animalpose.adapt.ccssl import CCSSLSection
from animalpose.config import (
    ExistingPath,
    ExperimentConfig,
    Section,
    load_config,
    parse_config,
    parse_override,
    to_dict,
)
from animalpose.errors import ConfigError
from animalpose.paths import REPO_ROOT
from synthetic.styles import StyleName

PRESET_DIR = REPO_ROOT / "configs" / "flows"


class SynthSpec(Section):
    """One generated dataset: ``n`` stills (plus ``clips`` × ``frames`` video frames) at ``size`` px."""

    n: int = Field(ge=1)
    style: StyleName = "cad"
    size: int = Field(default=128, ge=16)
    clips: int = Field(default=0, ge=0)
    frames: int = Field(default=0, ge=0)
    gap: float | None = None
    # photographs to cut backgrounds from (a folder, or a COCO file whose animal boxes are avoided), e.g.
    # the unlabelled target images; for a fraction ``backgrounds_p`` of the images (synthetic.backgrounds)
    backgrounds: ExistingPath | None = None
    backgrounds_p: float = Field(default=0.9, ge=0, le=1)

    def style_config(self):
        """The generator's :class:`synthetic.styles.StyleConfig` of this dataset."""
        from synthetic.styles import StyleConfig

        bg = None if self.backgrounds is None else str(Path(self.backgrounds).resolve())
        return StyleConfig.make(self.style, self.gap, bg, self.backgrounds_p)


class FlowPreset(Section):
    """A flow preset file (see the module docstring)."""

    train_config: ExistingPath
    overrides: list[str] = Field(default_factory=list)
    # after ``overrides``, for the stages that train on the synthetic source only (pretraining, CC-SSL's rounds
    # and their control), not the oracle: the real-photo preset gives the source the reference's strong
    # augmentation, which the oracle on real labels did worse with (chosen on Animal-Pose val, BENCHMARKS.md)
    source_overrides: list[str] = Field(default_factory=list)
    seed: int = 0
    source: SynthSpec
    source_val: SynthSpec
    target: SynthSpec
    target_test: SynthSpec
    # A labelled target validation set on which the oracle chooses its epoch, as a supervised model of the
    # target domain would; None: the oracle chooses on ``source_val``. Never the test set: an oracle that
    # picks its best epoch on the test images is an optimistic upper bound no method can be compared with.
    target_val: SynthSpec | None = None
    pretrain_epochs: int = Field(ge=1)
    # Epochs of the oracle (trained on the target's labels); None: ``pretrain_epochs``, the source model's
    # budget. ``pretrain_epochs + rounds * epochs_per_round`` gives it CC-SSL's total instead, the fairer
    # denominator of the gap recovery when neither side has converged (BENCHMARKS.md).
    oracle_epochs: int | None = Field(default=None, ge=1)
    rounds: int = Field(default=4, ge=1)
    epochs_per_round: int = Field(default=1, ge=1)
    oracle: bool = True
    # the library's ``ccssl:`` section, validated with the preset (paths relative to the preset's folder); the
    # flow sets the round keys (source_checkpoint, regenerate_every, target_val, source_epochs) itself
    ccssl: CCSSLSection = Field(default_factory=CCSSLSection)
    wscda_config: ExistingPath | None = None  # a WS-CDA config (configs/adapt/wscda_*.yaml) for the wscda flow
    wscda_overrides: list[str] = Field(default_factory=list)
    eval_batch_size: int = Field(default=16, ge=1)
    # Pictures of every model stage on the target: predictions on this many fixed target-test instances
    # (evenly spaced over the test set, the same for every stage) and, when the test or target data holds a
    # video, a labelled GIF of its first ``clip_seconds`` (0: none).
    gallery: int = Field(default=8, ge=0)
    clip_seconds: float = Field(default=3.0, ge=0)


def preset_path(preset: str | Path) -> Path:
    """``configs/flows/<preset>.yaml`` for a bare name, else the path itself."""
    p = Path(preset)
    if p.suffix in {".yaml", ".yml"} or p.parent != Path("."):
        return p
    return PRESET_DIR / f"{preset}.yaml"


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(preset: str | Path) -> FlowPreset:
    """Load and validate a flow preset; an unknown name is a ConfigError listing the known ones."""
    path = preset_path(preset)
    if not path.is_file():
        raise ConfigError(str(path), "preset", f"no such flow preset (known: {', '.join(available_presets())})")
    return load_config(path, FlowPreset)


def engine_config(preset: FlowPreset, values: dict[str, Any] | None = None, *,
                  source: bool = False) -> ExperimentConfig:
    """The engine configuration of ``preset`` with its overrides (and, for a ``source`` stage, its
    ``source_overrides``), then ``values`` (dotted key -> value).

    ``values`` are set as Python values (paths need no quoting) and the result is validated again, so
    a wrong key or value is a ConfigError naming the train config and the key.
    """
    overrides = [*preset.overrides, *(preset.source_overrides if source else ())]
    return config_with(preset.train_config, ExperimentConfig, overrides, values)


def config_with(path: Path, cls: type, overrides: list[str], values: dict[str, Any] | None = None):
    """Load ``path`` as ``cls`` with ``overrides``, then set ``values`` (dotted key -> Python value) and revalidate."""
    where = str(path)
    cfg = load_config(path, cls, overrides=overrides)
    tree = to_dict(cfg)
    for key, value in (values or {}).items():
        parts, _ = parse_override(f"{key}=null", where)
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = [str(v) for v in value] if isinstance(value, list | tuple) and value and isinstance(
            value[0], Path) else (str(value) if isinstance(value, Path) else value)
    return parse_config(tree, cls, where=where, base_dir=Path(where).parent)
