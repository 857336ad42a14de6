"""The CC-SSL pair switches (``ccssl.pair_decoding``, ``ccssl.pair_loss``) reach the round config from a flow
preset's ``ccssl:`` section and from ``animalpose bench ccssl-animalpose --ccssl``."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from animalpose.errors import ConfigError
from flows.presets import engine_config, load_preset


def _files(tmp_path):
    """Stand-ins for the files the round config checks exist (nothing is read)."""
    paths = {name: tmp_path / name for name in ("source.ckpt", "target.json", "val.json", "train.json")}
    for p in paths.values():
        p.write_text("{}")
    return paths


def _preset(tmp_path, ccssl: str):
    path = tmp_path / "preset.yaml"
    base = load_preset("smoke").train_config.resolve()
    path.write_text(f"train_config: {base}\nsource: {{n: 4}}\nsource_val: {{n: 4}}\ntarget: {{n: 4}}\n"
                    f"target_test: {{n: 4}}\npretrain_epochs: 1\noverrides: ['train.milestones=[]']\nccssl: {ccssl}\n")
    return path


def test_a_flow_presets_ccssl_section_sets_both_switches(tmp_path):
    from flows.ccssl import ccssl_config

    files = _files(tmp_path)
    preset = load_preset(_preset(tmp_path, "{pair_decoding: resolve, pair_loss: symmetric}"))
    assert (preset.ccssl.pair_decoding, preset.ccssl.pair_loss) == ("resolve", "symmetric")
    assert (load_preset("quick").ccssl.pair_decoding, load_preset("quick").ccssl.pair_loss) == ("independent",
                                                                                              "ordered")
    raw = engine_config(preset, {"data.train": [files["train.json"]]}).model_dump(mode="json", by_alias=True)
    cfg = ccssl_config(raw, str(preset.train_config), source_checkpoint=files["source.ckpt"],
                       target=[files["target.json"]], target_test=files["val.json"], regenerate_every=1, epochs=2,
                       section=preset.ccssl)
    assert (cfg.ccssl.pair_decoding, cfg.ccssl.pair_loss) == ("resolve", "symmetric")
    assert cfg.ccssl.consistency("cpu").pair_decoding == "resolve"
    bad = _preset(tmp_path, "{pair_decoding: swap}")
    with pytest.raises(ConfigError) as info:
        load_preset(bad)
    assert info.value.file == str(bad.resolve()) and info.value.field == "ccssl.pair_decoding"


def test_the_bench_ccssl_option_reaches_the_round_config(tmp_path, monkeypatch):
    import flows.benchmarks.ccssl_animalpose as bench
    from animalpose.cli import app

    seen = {}

    def capture(out, seeds, settings, **kwargs):
        seen["settings"] = settings
        raise KeyboardInterrupt  # stop before any work

    monkeypatch.setattr(bench, "run_bench", capture)
    CliRunner().invoke(app, ["bench", "ccssl-animalpose", "--seeds", "0", "--preset", "smoke", "--out",
                             str(tmp_path / "out"), "--ccssl", "ccssl.pair_decoding=resolve",
                             "--ccssl", "ccssl.pair_loss=symmetric"])
    settings = seen["settings"]
    assert settings.ccssl_overrides == ("ccssl.pair_decoding=resolve", "ccssl.pair_loss=symmetric")
    files = _files(tmp_path)
    base = bench.engine_config(settings, [files["train.json"]], [files["val.json"]], epochs=1, seed=0)
    for control in (False, True):
        cfg = bench.ccssl_config(settings, base, files["target.json"], files["val.json"], files["source.ckpt"],
                                 control=control)
        assert (cfg.ccssl.pair_decoding, cfg.ccssl.pair_loss) == ("resolve", "symmetric")
    plain = bench.ccssl_config(bench.BenchSettings(preset="smoke"), base, files["target.json"], files["val.json"],
                               files["source.ckpt"])
    assert (plain.ccssl.pair_decoding, plain.ccssl.pair_loss) == ("independent", "ordered")
