"""`animalpose config show` through the real CLI app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from animalpose.cli import app, main
from animalpose.config import load_config, parse_config

runner = CliRunner()
PAPER = Path(__file__).resolve().parents[2] / "configs" / "experiments" / "ccssl_paper.yaml"


def test_show_prints_resolved_yaml_with_overrides():
    result = runner.invoke(app, ["config", "show", str(PAPER), "train.lr=1e-3", "train.epochs=120"])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(result.stdout)
    assert data["train"]["lr"] == 0.001 and data["train"]["epochs"] == 120
    assert data["model"]["name"] == "hourglass4" and data["data"]["input_size"] == [256, 256]
    # Every default is spelt out, and the printed text loads back to the same configuration.
    assert data["train"]["select_on"] == "source-val"
    assert parse_config(data) == load_config(PAPER, overrides=["train.lr=1e-3", "train.epochs=120"])


def test_show_json():
    result = runner.invoke(app, ["config", "show", str(PAPER), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["train"]["optimizer"] == "rmsprop" and data["codec"]["sigma"] == 1.0
    assert set(data) == {"data", "model", "codec", "augment", "train", "tracking", "multiview"}


@pytest.mark.parametrize(
    ("text", "overrides", "key"),
    [
        ("train:\n  lrr: 1\n", [], "train.lrr"),  # unknown key
        ("train:\n  epochs: ten\n", [], "train.epochs"),  # wrong type
        ("data:\n  train: [missing.json]\n", [], "data.train[0]"),  # missing referenced file
        ("train: [1\n", [], "line 2, column 1"),  # malformed YAML
        ("{}\n", ["train.lr"], "train.lr"),  # bad override syntax
        ("{}\n", ["train.nope=1"], "train.nope"),  # override of an unknown key
    ],
)
def test_errors_are_one_line_naming_file_and_key(tmp_path, text, overrides, key):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    result = runner.invoke(app, ["config", "show", str(f), *overrides])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {f}") and f": {key}: " in lines[0]


def test_missing_config_file_and_entry_point(tmp_path, capsys):
    result = runner.invoke(app, ["config", "show", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2 and "none.yaml" in result.stderr
    with pytest.raises(SystemExit) as exc:
        main(["config", "show", str(tmp_path / "none.yaml")])
    assert exc.value.code == 2
    assert "none.yaml" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["ccssl_quick", "ccssl_paper", "ccssl_mirror_mouse", "ccssl_sleap_clip", "wscda_quick",
                                  "wscda_paper"])
def test_show_takes_adapt_configs(name):
    """`config show` validates CC-SSL and WS-CDA files against their own sections (it refused `ccssl:`)."""
    path = PAPER.parents[1] / "adapt" / f"{name}.yaml"
    result = runner.invoke(app, ["config", "show", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    method = "ccssl" if name.startswith("ccssl") else "wscda"
    assert method in data and ("lambda_target" in data[method] or "alpha" in data[method])
    bad = runner.invoke(app, ["config", "show", str(path), f"{method}.no_such_key=1"])
    assert bad.exit_code == 2 and f"{method}.no_such_key" in bad.output


def test_options_may_follow_overrides(tmp_path):
    """`train --config F key=value --out DIR` reads --out as an option (it was taken for an override)."""
    result = runner.invoke(app, ["train", "--config", str(PAPER), "train.epochs=0", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "bad override" not in str(result.exception) and "train.epochs" in str(result.exception)
