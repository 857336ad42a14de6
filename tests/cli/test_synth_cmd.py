"""`animalpose synth` and `animalpose synth gallery`."""

from __future__ import annotations

import json

import cv2
from typer.testing import CliRunner

from animalpose.cli import app

runner = CliRunner()


def test_synth_then_gallery(tmp_path):
    out = tmp_path / "ds"
    res = runner.invoke(app, ["synth", "--species", "sheep", "--style", "cad", "--n", "3", "--size", "48",
                              "--seed", "2", "--out", str(out), "--clips", "1", "--frames", "2", "--masks"])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"images": 5, "stills": 3, "clip_frames": 2, "clips": 1}
    assert sorted(p.name for p in (out / "annotations").iterdir()) == ["animalpose.json", "tigdog.json"]
    assert len(list((out / "masks").iterdir())) == 5
    png = tmp_path / "gallery.png"
    res = runner.invoke(app, ["synth", "gallery", str(out), "--out", str(png), "--count", "4", "--cols", "2"])
    assert res.exit_code == 0, res.output
    sheet = cv2.imread(str(png))
    assert sheet.shape == (320, 320, 3)  # 2 x 2 tiles of 160 px
    # Overlays are drawn: the gallery differs from the plain images resized.
    plain = cv2.resize(cv2.imread(str(out / "images" / "000000.png")), (160, 160), interpolation=cv2.INTER_AREA)
    assert (sheet[:160, :160].astype(int) - plain).any()


def test_synth_requires_species_and_out(tmp_path):
    res = runner.invoke(app, ["synth", "--n", "1"])
    assert res.exit_code != 0
    res = runner.invoke(app, ["synth", "--species", "unicorn", "--out", str(tmp_path / "x"), "--n", "1"])
    assert res.exit_code != 0
    assert "unicorn" in str(res.exception) + res.output
