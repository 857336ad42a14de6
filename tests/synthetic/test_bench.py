"""`animalpose bench synth --json` prints one object with images per second per style."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from animalpose.cli import app


def test_bench_synth_json_reports_rates_per_style():
    res = CliRunner().invoke(app, ["bench", "synth", "--json", "--n", "2", "--size", "48"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    for key in ("cad", "photo", "clip"):
        assert out["images_per_second"][key] > 0 and out["cpu_images_per_second"][key] > 0
    assert set(out["with_encoding"]["images_per_second"]) == {"cad", "photo"}
    assert out["size"] == 48
