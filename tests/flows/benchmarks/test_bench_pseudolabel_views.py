"""`animalpose bench pseudolabel-views`: the four modes run, the ratios follow from the medians, labels agree."""

import json

import pytest
from typer.testing import CliRunner


def test_views_side_by_side_json():
    from animalpose.cli import app

    res = CliRunner().invoke(app, ["bench", "pseudolabel-views", "--size", "64", "--images", "3", "--batch", "2",
                                   "--repeats", "1", "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.output.strip().splitlines()[-1])
    assert r["bench"] == "pseudolabel-views" and r["images"] == 3 and r["device"] == "cpu"
    w = r["wall_s"]
    assert set(w) == {"5_plain", "5_fast", "7_plain", "7_fast"} and min(w.values()) > 0
    assert r["ratios"]["seven_over_five_plain"] == pytest.approx(w["7_plain"] / w["5_plain"], abs=2e-3)
    assert r["ratios"]["seven_fast_over_five_plain"] == pytest.approx(w["7_fast"] / w["5_plain"], abs=2e-3)
    assert r["cpu_ratios"]["fast_speedup"] == pytest.approx(r["cpu_s"]["7_plain"] / r["cpu_s"]["7_fast"], abs=2e-3)
    assert r["images_per_s"]["7_fast"] == pytest.approx(3 / w["7_fast"], rel=0.01)
    # the BN-folded channels-last views label like the plain network (float rounding only)
    assert r["max_coord_difference"] < 1e-3
