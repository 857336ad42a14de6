"""Typed configuration: loading, inheritance, overrides, path resolution, and errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from animalpose.config import (
    ExperimentConfig,
    Section,
    TrainConfig,
    flatten,
    load_config,
    parse_config,
    parse_override,
    to_yaml,
    write_config,
)
from animalpose.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "configs" / "experiments" / "ccssl_paper.yaml"
QUICK = REPO / "configs" / "presets" / "quick.yaml"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- defaults and the shipped files ----------------------------------------------------------------


def test_defaults_validate_and_match_the_issues():
    cfg = ExperimentConfig()
    assert cfg.train.select_on == "source-val"
    assert cfg.data.bbox_padding_synthetic == 1.25 and cfg.data.bbox_padding_real == 1.5
    assert cfg.data.input_size == (256, 256) and cfg.data.heatmap_size == (64, 64)
    assert cfg.model.head == "heatmap" and cfg.codec.kind == "gaussian"
    assert cfg.tracking.uri is None and cfg.tracking.enabled
    assert parse_config({}) == cfg


def test_ccssl_paper_config_is_the_reference_setting():
    cfg = load_config(PAPER)
    assert cfg.model.name == "hourglass4" and cfg.model.stacks == 4 and cfg.model.num_joints == 18
    assert cfg.data.input_size == (256, 256) and cfg.data.heatmap_size == (64, 64)
    assert cfg.codec.kind == "gaussian" and cfg.codec.sigma == 1.0
    assert cfg.train.batch_size == 6 and not cfg.train.flip_test  # the reference never flip-tests
    assert cfg.train.optimizer == "rmsprop" and cfg.train.lr == 2.5e-4
    assert cfg.train.epochs == 100 and cfg.train.milestones == [60, 90] and cfg.train.gamma == 0.1
    assert cfg.data.bbox_padding_synthetic == 1.25 and cfg.data.bbox_padding_real == 1.5
    assert cfg.data.schema_name == "tigdog"


def test_quick_preset_is_small():
    cfg = load_config(QUICK)
    assert cfg.model.name == "hourglass_quick"
    assert cfg.data.input_size == (128, 128) and cfg.data.heatmap_size == (32, 32)
    assert cfg.train.batch_size == 16 and cfg.train.optimizer == "adam" and cfg.train.lr == 1e-3
    assert cfg.train.epochs <= 20 and cfg.train.device == "cpu"


# -- YAML details ----------------------------------------------------------------------------------


def test_yaml_scientific_floats_and_ints(tmp_path):
    f = write(tmp_path / "c.yaml", "train:\n  lr: 1e-3\n  weight_decay: 5E-4\n  epochs: 10\n  seed: -3\n")
    cfg = load_config(f)
    assert cfg.train.lr == 0.001 and isinstance(cfg.train.lr, float)
    assert cfg.train.weight_decay == 5e-4
    assert cfg.train.epochs == 10 and cfg.train.seed == -3


def test_empty_file_is_the_default_config(tmp_path):
    assert load_config(write(tmp_path / "e.yaml", "")) == ExperimentConfig()


# -- overrides -------------------------------------------------------------------------------------


def test_parse_override_values_are_yaml_typed():
    assert parse_override("train.lr=1e-3") == (["train", "lr"], 0.001)
    assert parse_override("model.name=hourglass4") == (["model", "name"], "hourglass4")
    assert parse_override("data.train=[a,b]") == (["data", "train"], ["a", "b"])
    assert parse_override("train.grad_clip=null") == (["train", "grad_clip"], None)
    assert parse_override("train.amp=true") == (["train", "amp"], True)
    assert parse_override("train.milestones=[3, 5]") == (["train", "milestones"], [3, 5])
    assert parse_override("tracking.uri=http://127.0.0.1:5000") == (["tracking", "uri"], "http://127.0.0.1:5000")


def test_overrides_apply_last_with_types(tmp_path, monkeypatch):
    write(tmp_path / "a.json", "{}")
    write(tmp_path / "b.json", "{}")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(
        PAPER,
        overrides=["train.lr=1e-3", "model.name=simplebaseline50", "data.train=[a.json,b.json]",
                   "train.grad_clip=null", "data.input_size=[192,256]"],
    )
    assert cfg.train.lr == 0.001
    assert cfg.model.name == "simplebaseline50"
    # Relative paths in overrides resolve against the working directory.
    assert cfg.data.train == [tmp_path / "a.json", tmp_path / "b.json"]
    assert cfg.data.input_size == (192, 256)
    assert cfg.train.epochs == 100  # untouched keys keep the file's values


def test_single_path_is_accepted_for_a_list(tmp_path):
    write(tmp_path / "data" / "train.json", "{}")
    cfg = load_config(write(tmp_path / "c.yaml", "data:\n  train: data/train.json\n"))
    assert cfg.data.train == [tmp_path / "data" / "train.json"]


# -- paths -----------------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_file(tmp_path, monkeypatch):
    write(tmp_path / "proj" / "ds" / "ann.json", "{}")
    write(tmp_path / "proj" / "ckpt.pt", "x")
    cfg_file = write(
        tmp_path / "proj" / "cfg.yaml",
        "data:\n  val: [ds/ann.json]\nmodel:\n  pretrained: ckpt.pt\n",
    )
    monkeypatch.chdir(tmp_path)  # not the config's folder
    cfg = load_config(cfg_file)
    assert cfg.data.val == [tmp_path / "proj" / "ds" / "ann.json"]
    assert cfg.model.pretrained == tmp_path / "proj" / "ckpt.pt"
    assert cfg.data.val[0].is_absolute()


def test_parse_config_uses_base_dir(tmp_path):
    write(tmp_path / "t.json", "{}")
    cfg = parse_config({"data": {"target": "t.json"}}, base_dir=tmp_path)
    assert cfg.data.target == [tmp_path / "t.json"]


# -- base inheritance ------------------------------------------------------------------------------


def test_base_is_relative_to_the_file_and_deep_merged(tmp_path):
    write(tmp_path / "shared" / "ds.json", "{}")
    write(
        tmp_path / "shared" / "base.yaml",
        "data:\n  train: [ds.json]\n  workers: 4\ntrain:\n  lr: 2.5e-4\n  epochs: 50\n  milestones: [10, 20]\n",
    )
    child = write(
        tmp_path / "exp" / "child.yaml",
        "base: ../shared/base.yaml\ntrain:\n  epochs: 30\n  milestones: [25]\n",
    )
    cfg = load_config(child)
    assert cfg.train.epochs == 30  # child wins
    assert cfg.train.lr == 2.5e-4  # inherited inside the same section (deep merge)
    assert cfg.train.milestones == [25]  # lists replace, never concatenate
    assert cfg.data.workers == 4
    # The base's relative path resolves against the base file's folder.
    assert cfg.data.train == [tmp_path / "shared" / "ds.json"]


def test_base_chain_of_three_and_override_on_top(tmp_path):
    write(tmp_path / "a.yaml", "train:\n  batch_size: 8\n  lr: 0.1\n")
    write(tmp_path / "b.yaml", "base: a.yaml\ntrain:\n  lr: 0.01\n")
    c = write(tmp_path / "c.yaml", "base: b.yaml\ntrain:\n  seed: 7\n")
    cfg = load_config(c, overrides=["train.batch_size=2"])
    assert (cfg.train.batch_size, cfg.train.lr, cfg.train.seed) == (2, 0.01, 7)


def test_base_on_quick_preset(tmp_path):
    child = write(tmp_path / "mine.yaml", f"base: {QUICK}\ntrain:\n  epochs: 3\n  milestones: [2]\n")
    cfg = load_config(child)
    assert cfg.model.name == "hourglass_quick" and cfg.train.epochs == 3


def test_circular_and_missing_base(tmp_path):
    write(tmp_path / "x.yaml", "base: y.yaml\n")
    write(tmp_path / "y.yaml", "base: x.yaml\n")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "x.yaml")
    assert err.value.field == "base" and "circular" in str(err.value)
    missing = write(tmp_path / "m.yaml", "base: nowhere.yaml\n")
    with pytest.raises(ConfigError) as err:
        load_config(missing)
    assert err.value.file == str(missing) and err.value.field == "base"
    assert "nowhere.yaml" in str(err.value)


# -- errors: each names the file and the dotted key ------------------------------------------------


def test_unknown_key_names_file_and_key(tmp_path):
    f = write(tmp_path / "c.yaml", "train:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    e = err.value
    assert isinstance(e, DataError)
    assert e.file == str(f) and e.field == "train.lrr"
    assert "unknown key" in str(e) and "did you mean 'lr'" in str(e)
    assert str(e).startswith(f"{f}: train.lrr: ")


def test_unknown_section_names_key(tmp_path):
    f = write(tmp_path / "c.yaml", "trian:\n  lr: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert err.value.field == "trian" and "did you mean 'train'" in str(err.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("train:\n  epochs: ten\n", "train.epochs"),
        ("train:\n  lr: fast\n", "train.lr"),
        ("train:\n  amp: maybe\n", "train.amp"),
        ("model:\n  name: resnet9000\n", "model.name"),
        ("data:\n  input_size: [256]\n", "data.input_size"),
        ("data:\n  input_size: 256\n", "data.input_size"),
        ("train: 3\n", "train"),
        ("train:\n  milestones: [a]\n", "train.milestones[0]"),
        ("codec:\n  sigma: -1\n", "codec.sigma"),
        ("train:\n  device: gpu\n", "train.device"),
    ],
)
def test_wrong_type_names_file_and_key(tmp_path, text, key):
    f = write(tmp_path / "c.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert err.value.file == str(f)
    assert err.value.field == key


def test_every_problem_is_reported_and_the_first_is_named(tmp_path):
    f = write(tmp_path / "c.yaml", "train:\n  epochs: ten\n  lrr: 1\nmodel:\n  head: box\n")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    fields = {p.field for p in err.value.problems}
    assert fields == {"train.epochs", "train.lrr", "model.head"}
    assert all(p.file == str(f) for p in err.value.problems)


def test_missing_referenced_file(tmp_path):
    f = write(tmp_path / "c.yaml", "data:\n  train: [ok.json, gone.json]\n")
    write(tmp_path / "ok.json", "{}")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert err.value.file == str(f) and err.value.field == "data.train[1]"
    assert str(tmp_path / "gone.json") in str(err.value)
    g = write(tmp_path / "g.yaml", "model:\n  pretrained: weights/none.pt\n")
    with pytest.raises(ConfigError) as err:
        load_config(g)
    assert err.value.field == "model.pretrained" and "file not found" in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "absent.yaml")
    assert err.value.file == str(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("train:\n  lr: [1, 2\n", "line 3, column 1"),
        ("train:\n\tlr: 1\n", "line 2, column 1"),
        ("train:\n  lr: 1\n  lr: 2\n", "line 3, column 3"),  # duplicate key
    ],
)
def test_malformed_yaml_names_file_and_position(tmp_path, text, field):
    f = write(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert err.value.file == str(f) and err.value.field == field
    assert "malformed YAML" in str(err.value)


def test_non_mapping_top_level(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path / "l.yaml", "- a\n- b\n"))
    assert err.value.field == "<root>"


@pytest.mark.parametrize("bad", ["train.lr", "=3", "train..lr=3", "train lr=3", "1train=3"])
def test_bad_override_syntax_names_the_override(bad):
    with pytest.raises(ConfigError) as err:
        load_config(QUICK, overrides=[bad])
    assert err.value.file == str(QUICK)
    assert err.value.field == bad and repr(bad) in str(err.value)


def test_override_of_unknown_key_names_the_override():
    with pytest.raises(ConfigError) as err:
        load_config(QUICK, overrides=["train.lrr=0.1"])
    assert err.value.field == "train.lrr"
    assert "override 'train.lrr=0.1'" in str(err.value) and "did you mean 'lr'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(QUICK, overrides=["nosection.x=1"])
    assert err.value.field == "nosection"
    with pytest.raises(ConfigError) as err:
        load_config(QUICK, overrides=["train.lr.x=1"])
    assert err.value.field == "train.lr.x" and "no sub-keys" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(QUICK, overrides=["train=3"])
    assert err.value.field == "train" and "section" in str(err.value)


def test_override_with_wrong_type_names_the_override():
    with pytest.raises(ConfigError) as err:
        load_config(QUICK, overrides=["train.epochs=many"])
    assert err.value.field == "train.epochs"
    assert "override 'train.epochs=many'" in err.value.file


def test_error_in_a_base_file_names_the_base_file(tmp_path):
    base = write(tmp_path / "base.yaml", "train:\n  epochs: ten\n")
    child = write(tmp_path / "child.yaml", "base: base.yaml\ntrain:\n  lr: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(child)
    assert err.value.file == str(base) and err.value.field == "train.epochs"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["model.head=dsnt"], "codec.kind"),  # DSNT decodes by soft-argmax
        (["model.num_joints=17"], "model.num_joints"),  # schema tigdog has 18
        (["train.milestones=[5, 3]"], "train.milestones"),
        (["train.milestones=[10]", "train.epochs=10"], "train.milestones"),
        (["data.heatmap_size=[256, 256]"], "data.heatmap_size"),  # quick input is 128
        (["data.schema=tigdgo"], "data.schema"),
        (["model.name=hourglass2", "model.stacks=4"], "model.stacks"),
    ],
)
def test_cross_field_checks_name_the_key(overrides, key):
    with pytest.raises(ConfigError) as err:
        load_config(QUICK, overrides=overrides)
    assert err.value.field == key


def test_consistent_cross_fields_pass():
    cfg = load_config(QUICK, overrides=["model.head=dsnt", "codec.kind=soft_argmax", "data.schema=coco",
                                        "model.num_joints=17"])
    assert cfg.model.head == "dsnt" and cfg.data.schema_name == "coco"


# -- output ----------------------------------------------------------------------------------------


def test_to_yaml_round_trip_and_atomic_write(tmp_path):
    write(tmp_path / "d.json", "{}")
    cfg = load_config(PAPER, overrides=[f"data.train=[{tmp_path / 'd.json'}]", "train.grad_clip=1.5"])
    text = to_yaml(cfg)
    assert yaml.safe_load(text)["train"]["lr"] == 2.5e-4
    assert "input_size: [256, 256]" in text
    out = write_config(cfg, tmp_path / "out" / "resolved.yaml")
    assert [p.name for p in out.parent.iterdir()] == ["resolved.yaml"]  # no temporary left behind
    assert load_config(out) == cfg
    # The JSON-mode dict round-trips too (the form stored in checkpoints).
    assert parse_config(yaml.safe_load(text)) == cfg


def test_flatten_gives_one_scalar_per_leaf():
    cfg = load_config(PAPER)
    flat = flatten(cfg)
    assert flat["train.lr"] == 2.5e-4 and flat["train.optimizer"] == "rmsprop"
    assert flat["data.input_size"] == "[256, 256]" and flat["train.milestones"] == "[60, 90]"
    assert flat["data.schema"] == "tigdog" and flat["tracking.uri"] is None
    assert all(v is None or isinstance(v, str | int | float | bool) for v in flat.values())
    n_leaves = sum(len(type(getattr(cfg, s)).model_fields) for s in ExperimentConfig.model_fields)
    assert len(flat) == n_leaves


# -- extension -------------------------------------------------------------------------------------


class _TrainPlus(TrainConfig):
    label_smoothing: float = 0.0


class _Extra(Section):
    rounds: int = 3


class _ExtendedConfig(ExperimentConfig):
    train: _TrainPlus = _TrainPlus()
    adapt: _Extra = _Extra()


def test_fields_added_later_do_not_break_existing_files():
    cfg = load_config(PAPER, cls=_ExtendedConfig, overrides=["adapt.rounds=5"])
    assert isinstance(cfg, _ExtendedConfig)
    assert cfg.train.label_smoothing == 0.0 and cfg.train.lr == 2.5e-4
    assert cfg.adapt.rounds == 5
    with pytest.raises(ConfigError) as err:
        load_config(PAPER, cls=_ExtendedConfig, overrides=["adapt.round=5"])
    assert "did you mean 'rounds'" in str(err.value)


@pytest.mark.parametrize(
    ("epochs", "expected"),
    # 3: 1.8 and 2.7 round to 2 and 3, 3 is clipped to the last drop-able epoch 2, the two merge; 1: no room
    # for a drop; 120: [60, 90] still fit and are kept
    [(10, [6, 9]), (3, [2]), (2, [1]), (1, []), (120, [60, 90])],
)
def test_an_epochs_override_scales_milestones_that_no_longer_fit(tmp_path, capsys, epochs, expected):
    """Overriding train.epochs alone on a file with step milestones moves them to the same fraction of the
    new budget (60/100 and 90/100 of 10 -> 6 and 9), with a warning, instead of a milestones error."""
    f = write(tmp_path / "c.yaml", f"base: {QUICK}\ntrain:\n  epochs: 100\n  milestones: [60, 90]\n")
    cfg = load_config(f, overrides=[f"train.epochs={epochs}"])
    assert cfg.train.epochs == epochs and cfg.train.milestones == expected
    warned = capsys.readouterr().err
    assert ("scaled to" in warned) == (epochs < 100)


def test_milestones_given_with_the_epochs_are_never_scaled(tmp_path):
    f = write(tmp_path / "c.yaml", f"base: {QUICK}\ntrain:\n  epochs: 100\n  milestones: [60, 90]\n")
    with pytest.raises(ConfigError) as err:
        load_config(f, overrides=["train.epochs=10", "train.milestones=[60]"])
    assert err.value.field == "train.milestones"
    assert load_config(f).train.milestones == [60, 90]  # no override: the file as written


@pytest.mark.parametrize("value", ["source-val", "none", "last", "target-val", "horse_val"])
def test_select_on_takes_a_set_name_or_a_special_value(value):
    assert parse_config({"train": {"select_on": value}}).train.select_on == value


@pytest.mark.parametrize(("value", "hint"), [("None", "write 'none'"), ("LAST", "write 'last'"),
                                             ("", "the name of a validation set"),
                                             (" last", "the name of a validation set")])
def test_select_on_refuses_special_values_in_other_spellings(value, hint):
    with pytest.raises(ConfigError) as err:
        parse_config({"train": {"select_on": value}}, where="exp.yaml")
    assert err.value.file == "exp.yaml" and err.value.field == "train.select_on" and hint in str(err.value)


def test_the_milestone_hook_belongs_to_the_experiment_schema_not_the_loader(tmp_path):
    """The loader is general: a model without ``fit_overrides`` gets its overrides as they are."""
    from animalpose.config import Section, loader

    class Train(Section):
        epochs: int = 1
        milestones: list[int]

    class Other(Section):
        train: Train

    cfg = loader.parse_config({"train": {"epochs": 30, "milestones": [24]}}, Other, overrides=["train.epochs=10"])
    assert cfg.train.milestones == [24]
    exp = parse_config({"train": {"epochs": 30, "milestones": [24]}}, overrides=["train.epochs=10"])
    assert exp.train.milestones == [8]
