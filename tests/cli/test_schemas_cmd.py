"""`animalpose schemas list/show` through the real CLI app."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from animalpose.cli import app, main

runner = CliRunner()


def test_list_json_and_text():
    result = runner.invoke(app, ["schemas", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    expected = {"tigdog": 18, "animalpose": 20, "ap10k": 17, "atrw": 15, "horse10": 22, "coco": 17, "mpii": 16}
    assert {n: rows[n]["num_joints"] for n in expected} == expected
    assert rows["coco"]["sigmas"] is True and rows["tigdog"]["sigmas"] is False
    assert rows["horse10"]["flip_pairs"] == 0 and rows["tigdog"]["flip_pairs"] == 8

    text = runner.invoke(app, ["schemas", "list"])
    assert text.exit_code == 0
    assert any(line.split()[:2] == ["ap10k", "17"] for line in text.stdout.splitlines())


def test_show_json_has_names_pairs_and_sigmas():
    result = runner.invoke(app, ["schemas", "show", "coco", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["name"] == "coco"
    assert data["joints"][:3] == ["nose", "left_eye", "right_eye"] and len(data["joints"]) == 17
    assert data["flip_pairs"][0] == [1, 2] and len(data["flip_pairs"]) == 8
    assert data["sigmas"][0] == 0.026 and len(data["sigmas"]) == 17
    assert [15, 13] in data["skeleton"]  # left_ankle - left_knee

    tig = json.loads(runner.invoke(app, ["schemas", "show", "tigdog", "--json"]).stdout)
    assert tig["sigmas"] is None and len(tig["joints"]) == 18
    ap = json.loads(runner.invoke(app, ["schemas", "show", "animalpose", "--json"]).stdout)
    assert ap["original_order"][2] == "Nose"


def test_show_text_names_flip_pairs_and_skeleton():
    result = runner.invoke(app, ["schemas", "show", "tigdog"])
    assert result.exit_code == 0
    out = result.stdout
    assert out.startswith("tigdog: 18 joints")
    assert "(3,4) L_F_Hoof/R_F_Hoof" in out
    assert "L_Eye-R_Eye" in out
    assert "sigmas: none published" in out
    horse = runner.invoke(app, ["schemas", "show", "horse10"]).stdout
    assert "flip pairs: none" in horse


def test_unknown_schema_is_one_line_on_stderr_and_exit_2():
    result = runner.invoke(app, ["schemas", "show", "zebra"])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ") and "zebra.yaml" in lines[0] and ": name: " in lines[0]


def test_console_entry_point_exit_code(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["schemas", "show", "zebra"])
    assert exc.value.code == 2
    assert "zebra" in capsys.readouterr().err
