"""Every adapt setting is checked when the config loads, before any (source) training: keep fractions
(CC-SSL and WS-CDA) and the CC-SSL schedule."""

from __future__ import annotations

from pathlib import Path

import pytest

from animalpose.adapt.ccssl import CCSSLConfig
from animalpose.adapt.wscda.run import WSCDAConfig
from animalpose.cli import main
from animalpose.config import load_config, parse_config
from animalpose.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "adapt"


@pytest.mark.parametrize(("value", "message"), [
    ("[0.2,1.5]", r"item \[1\]: must lie in \(0, 1\], got 1.5"),
    ("[0.0]", r"item \[0\]: must lie in \(0, 1\], got 0.0"),
    ("[0.6,0.4]", "must be non-decreasing"),
    ("[]", "must list at least one fraction"),
])
@pytest.mark.parametrize(("config", "cls", "section"), [
    ("ccssl_quick.yaml", CCSSLConfig, "ccssl"), ("wscda_quick.yaml", WSCDAConfig, "wscda")])
def test_bad_keep_fractions_fail_at_load(value, message, config, cls, section):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(CONFIGS / config, cls, [f"{section}.keep_fractions={value}"])
    assert err.value.field == f"{section}.keep_fractions"
    assert "override" in err.value.file


def test_keep_fractions_with_the_reference_schedule_is_an_error():
    """schedule: reference ignores keep_fractions; setting both would silently drop one."""
    with pytest.raises(ConfigError, match="not used by schedule 'reference'") as err:
        load_config(CONFIGS / "ccssl_quick.yaml", CCSSLConfig, ["ccssl.schedule=reference"])
    assert err.value.field == "ccssl.keep_fractions"
    assert parse_config({"ccssl": {"schedule": "reference"}}, CCSSLConfig).ccssl.schedule == "reference"


def test_cli_stops_before_source_training(capsys, tmp_path):
    """The quick config trains a source model first (source_epochs > 0): a bad schedule must stop it
    before that, not after."""
    assert load_config(CONFIGS / "ccssl_quick.yaml", CCSSLConfig).ccssl.source_epochs > 0
    with pytest.raises(SystemExit) as exc:
        main(["adapt", "ccssl", "--config", str(CONFIGS / "ccssl_quick.yaml"), "--out", str(tmp_path / "out"),
              "tracking.enabled=false", "ccssl.keep_fractions=[0.4,0.2]"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "ccssl.keep_fractions" in err and "non-decreasing" in err
    assert not (tmp_path / "out").exists()


def test_wscda_human_schema_is_a_known_keypoint_schema():
    assert parse_config({"wscda": {"human_schema": "mpii"}}, WSCDAConfig).wscda.human_schema == "mpii"
    with pytest.raises(ConfigError) as err:
        parse_config({"wscda": {"human_schema": "kocoa"}}, WSCDAConfig, where="w.yaml")
    assert (err.value.file, err.value.field) == ("w.yaml", "wscda.human_schema") and "coco" in str(err.value)


@pytest.mark.parametrize("cls", [CCSSLConfig, WSCDAConfig])
def test_grmi_offsets_are_refused_by_the_adaptation_methods(cls):
    from animalpose.errors import ConfigError

    with pytest.raises(ConfigError, match="one heatmap per joint"):
        parse_config({"model": {"name": "grmi_quick"}, "codec": {"kind": "grmi"}}, cls)
    if cls is CCSSLConfig:
        with pytest.raises(ConfigError, match="cycles"):
            parse_config({"train": {"cycles": 2}}, cls)
