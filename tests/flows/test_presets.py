import pytest

from animalpose.errors import ConfigError
from flows.presets import available_presets, engine_config, load_preset


def test_shipped_presets_load_and_give_valid_engine_configs(tmp_path):
    assert {"smoke", "quick"} <= set(available_presets())
    smoke = load_preset("smoke")
    assert smoke.rounds == 2 and smoke.source.style == "cad" and smoke.target.style == "photo"
    cfg = engine_config(smoke, {"data.train": [tmp_path], "train.epochs": 3, "tracking.uri": "sqlite:////x.db"})
    assert cfg.train.epochs == 3 and cfg.data.train == [tmp_path] and cfg.tracking.uri == "sqlite:////x.db"
    assert tuple(cfg.data.input_size) == (64, 64) and cfg.model.name == "hourglass1"  # the preset's overrides
    quick = load_preset("quick")
    assert quick.rounds == 3 and quick.ccssl.keep_fractions == [0.2, 0.4, 0.6]
    # the oracle trains on as many (target) images as the source model, for CC-SSL's whole budget
    assert quick.target.n == quick.source.n and quick.target.size == quick.source.size == 128
    assert quick.oracle_epochs == quick.pretrain_epochs + quick.rounds * quick.epochs_per_round == 14
    assert quick.target_val.style == quick.target.style and quick.target_val.n == quick.source_val.n
    qcfg = engine_config(quick, {"data.train": [tmp_path]})
    assert quick.ccssl.lr == qcfg.train.lr == 2e-3  # the rounds continue at the pretraining rate
    assert tuple(qcfg.data.input_size) == (128, 128) and tuple(qcfg.data.heatmap_size) == (32, 32)
    assert qcfg.train.channels_last and qcfg.train.pointwise_linear  # the demo's speed paths


def test_real_preset_gives_the_source_stages_strong_augmentation_and_the_oracle_the_quick_one(tmp_path):
    from flows.pretrain import train_config

    real, quick = load_preset("real"), load_preset("quick")
    assert real.source_overrides == ["augment.preset=strong"] and not quick.source_overrides
    # everything else is the quick preset's (base: quick.yaml)
    assert real.model_dump(exclude={"source_overrides"}) == quick.model_dump(exclude={"source_overrides"})
    common = dict(epochs=2, model=None, tracking_uri=None, experiment="x", seed=0)
    source, _ = train_config(real, [tmp_path], [tmp_path], source=True, **common)
    oracle, _ = train_config(real, [tmp_path], [tmp_path], **common)
    assert source["augment"]["preset"] == "strong" and oracle["augment"]["preset"] == "hourglass"
    # apart from the augmentation the two stages train the same network the same way
    assert {**source, "augment": None} == {**oracle, "augment": None}
    quick_source, _ = train_config(quick, [tmp_path], [tmp_path], source=True, **common)
    assert quick_source["augment"] == oracle["augment"]


def test_preset_errors_name_the_file_and_key(tmp_path):
    with pytest.raises(ConfigError, match="no such flow preset"):
        load_preset("nonexistent")
    bad = tmp_path / "bad.yaml"
    base = (load_preset("smoke").train_config).resolve()
    bad.write_text(f"train_config: {base}\nsource: {{n: 4}}\nsource_val: {{n: 4}}\ntarget: {{n: 4}}\n"
                   "target_test: {n: 4}\npretrain_epochs: 1\nccssl: {keep_fraction: [0.5]}\n")
    with pytest.raises(ConfigError) as info:
        load_preset(bad)
    assert info.value.file == str(bad.resolve()) and info.value.field == "ccssl.keep_fraction"
    bad.write_text(f"train_config: {base}\nsource: {{n: 0}}\nsource_val: {{n: 4}}\ntarget: {{n: 4}}\n"
                   "target_test: {n: 4}\npretrain_epochs: 1\n")
    with pytest.raises(ConfigError) as info:
        load_preset(bad)
    assert info.value.field == "source.n"
    with pytest.raises(ConfigError) as info:
        engine_config(load_preset("smoke"), {"train.epoch": 3})
    assert "train.epoch" in str(info.value)


def test_oracle_chooses_its_epoch_on_target_val_never_on_the_test_set(prefect_harness, data_home, tmp_path):
    import json

    from flows.ccssl import oracle_selection_set, seed_plan
    from flows.pretrain import dataset_dir

    smoke = load_preset("smoke")
    seeds = seed_plan(smoke.seed, 2)
    source_val = [tmp_path / "source-val"]
    chosen = oracle_selection_set("horse", smoke, seeds, source_val)
    expected = dataset_dir("horse", smoke.target_val, seeds.target_val, "target-val")
    assert chosen == [expected]
    assert expected != dataset_dir("horse", smoke.target_test, seeds.test, "test")
    config = json.loads((expected / "manifest.json").read_text())["config"]
    assert (config["seed"], config["n"], config["style"]["name"]) == (6, 16, "photo")  # labelled, target style
    # a target the user gave, or a preset without target_val: the source validation set
    assert oracle_selection_set("horse", smoke, seeds, source_val, given_target=True) == source_val
    plain = smoke.model_copy(update={"target_val": None})
    assert oracle_selection_set("horse", plain, seeds, source_val) == source_val


def test_a_given_target_val_is_the_oracle_selection_set(tmp_path):
    from flows.ccssl import oracle_selection_set, seed_plan
    from flows.presets import load_preset

    p = load_preset("smoke")
    val = tmp_path / "horse_val.json"
    chosen = oracle_selection_set("horse", p, seed_plan(p.seed), [tmp_path / "source_val"], given_target=True,
                                  target_val=val)
    assert chosen == [val]
    fallback = oracle_selection_set("horse", p, seed_plan(p.seed), [tmp_path / "sv"], given_target=True)
    assert fallback == [tmp_path / "sv"]


def test_a_preset_style_is_one_of_the_generator_styles(tmp_path):
    from typing import get_args

    from synthetic.styles import STYLES, StyleName

    assert set(get_args(StyleName)) == set(STYLES)
    bad = tmp_path / "bad.yaml"
    base = (load_preset("smoke").train_config).resolve()
    bad.write_text(f"train_config: {base}\nsource: {{n: 4, style: fotograph}}\nsource_val: {{n: 4}}\n"
                   "target: {n: 4}\ntarget_test: {n: 4}\npretrain_epochs: 1\n")
    with pytest.raises(ConfigError) as info:
        load_preset(bad)
    assert info.value.file == str(bad.resolve()) and info.value.field == "source.style" and "'wild'" in str(info.value)
