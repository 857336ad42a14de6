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


def test_bench_synth_baseline_times_a_git_revision_side_by_side(tmp_path):
    import pytest

    from flows.benchmarks.synth import REPO, baseline_package, compare

    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")

    name = baseline_package("HEAD", tmp_path)
    text = (tmp_path / name / "scene.py").read_text()
    assert f"from {name}.render import" in text and "from synthetic." not in text
    assert (tmp_path / name / "species" / "horse.yaml").is_file()
    out = compare("HEAD", n=2, repeats=1, size=32, clip_frames=2)
    for key in ("cad", "photo", "clip"):
        assert out["cpu_images_per_second"][key] > 0 and out["baseline_cpu_images_per_second"][key] > 0
        assert out["ratio"][key] > 0
    assert not any(m.startswith(name) for m in __import__("sys").modules)


def test_bench_synth_baseline_unknown_revision_is_a_config_error():
    import pytest

    from animalpose.errors import ConfigError
    from flows.benchmarks.synth import compare

    with pytest.raises(ConfigError, match="baseline"):
        compare("no-such-revision-xyz", n=1, repeats=1, size=32)
