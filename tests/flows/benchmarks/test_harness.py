"""The multi-seed harness: seed parsing, mean ± std and paired differences by hand, the seed folder's
reuse / resume / refusal, and the stopwatch."""

from __future__ import annotations

import json
import math
import os

import pytest
import typer

from animalpose.errors import DataError
from flows.benchmarks.harness import (
    SeedFolder,
    Stopwatch,
    claim_arm,
    echo_result,
    paired,
    parse_seeds,
    portable,
    stats,
    timed,
)


def test_parse_seeds():
    assert parse_seeds("0,1,2") == [0, 1, 2]
    assert parse_seeds("3 1, 2") == [3, 1, 2]  # spaces too; the order is kept
    for text, why in (("a", "integers"), ("", "no seed"), (" , ", "no seed"), ("0,1,0", "duplicate")):
        with pytest.raises(typer.BadParameter, match=why):
            parse_seeds(text)


def test_stats_by_hand():
    s = stats([0.4, 0.5, 0.3])
    assert s["mean"] == pytest.approx(0.4) and s["n"] == 3
    assert s["std"] == pytest.approx(0.1)  # sample std: squares 0.01 + 0 + 0.01 over 2 = 0.01
    assert s["values"] == [0.4, 0.5, 0.3]
    # undefined values are kept in `values`, not counted
    s = stats([1.0, None, 3.0])
    assert (s["mean"], s["n"], s["values"]) == (2.0, 2, [1.0, None, 3.0]) and s["std"] == pytest.approx(math.sqrt(2))
    assert stats([5.0])["std"] is None and stats([5.0], std_of_one=0.0)["std"] == 0.0
    assert stats([None]) == {"mean": None, "std": None, "n": 0, "values": [None]}


def test_paired_differences_by_hand():
    d = paired([8.0, 7.0], [9.5, 9.0])  # -1.5, -2.0
    assert d["values"] == [-1.5, -2.0] and d["mean"] == pytest.approx(-1.75)
    assert d["std"] == pytest.approx(math.sqrt(0.125))  # (0.0625 + 0.0625) / 1
    with pytest.raises(ValueError, match="as many"):
        paired([1.0], [1.0, 2.0])


@pytest.mark.parametrize("bare", [False, True])
def test_seed_folder_runs_resumes_reuses_and_refuses(tmp_path, bare):
    key = {"seed": 0, "species": "horse"}
    cache = SeedFolder(tmp_path / "seed0", key, bare_marker=bare)
    assert cache.finished() is None
    assert cache.start() is False  # a fresh folder: settings.json written before the work
    marker = json.loads(cache.marker_path.read_text())
    assert marker == (key if bare else {"settings": key})
    assert cache.start() is True  # interrupted before result.json: resumes
    other = SeedFolder(tmp_path / "seed0", {"seed": 0, "species": "tiger"}, bare_marker=bare)
    with pytest.raises(DataError, match=r"settings.json.*species: 'horse' there, 'tiger' now"):
        other.start()

    saved = cache.save({"seed": 0, "pck": 0.5})
    assert saved == {"seed": 0, "pck": 0.5, "settings": key}
    assert cache.finished() == saved and not list(tmp_path.rglob("*.tmp"))
    with pytest.raises(DataError, match=r"result.json.*species"):
        other.finished()
    cache.result_path.write_text("[1]")
    with pytest.raises(DataError, match="expected a JSON object"):
        cache.finished()


def test_a_seed_is_resumed_from_another_checkout_but_other_settings_are_refused(tmp_path):
    """The config of one checkout is the config of another (by its path from the checkout); a data folder
    through a symlink is the folder itself; a different config or data folder is still refused."""
    data = tmp_path / "shared" / "data"
    data.mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "shared")
    made = {"config": "/work/wt/bench3/configs/adapt/wscda_animalpose.yaml", "data": str(data),
            "overrides": ["wscda.steps_per_epoch=250"], "n": 400}
    here = {**made, "config": "/home/me/animalpose/configs/adapt/wscda_animalpose.yaml",
            "data": str(tmp_path / "link" / "data")}
    assert portable(here) == portable(made)
    assert portable(made)["config"] == "configs/adapt/wscda_animalpose.yaml"
    SeedFolder(tmp_path / "seed_0", made).start()
    assert SeedFolder(tmp_path / "seed_0", here).start() is True  # resumed
    for other in ({**here, "config": "/home/me/animalpose/configs/adapt/wscda_quick.yaml"},
                  {**here, "data": str(tmp_path / "elsewhere")}, {**here, "n": 401}):
        with pytest.raises(DataError, match="other settings"):
            SeedFolder(tmp_path / "seed_0", other).start()


def test_claim_arm_resumes_replaces_unfinished_and_refuses_finished(tmp_path):
    config = tmp_path / "seed0" / "b.yaml"
    claim_arm(config, "lr: 0.001\n", finished=False, arm="b")
    assert config.read_text() == "lr: 0.001\n"
    claim_arm(config, "lr: 0.001\n", finished=True, arm="b")  # same settings: reused as it is
    claim_arm(config, "lr: 0.002\n", finished=False, arm="b")  # unfinished: restarts under the new settings
    assert config.read_text() == "lr: 0.002\n"
    with pytest.raises(DataError, match=r"seed0/b\.yaml.*other settings; remove .*seed0/b or"):
        claim_arm(config, "lr: 0.003\n", finished=True, arm="b")
    assert config.read_text() == "lr: 0.002\n"


def test_timed_calls_once_and_returns_wall_and_cpu():
    calls = []
    wall, cpu = timed(lambda: calls.append(sum(range(200_000))))
    assert calls == [sum(range(200_000))] and wall > 0 and cpu >= 0


def test_stopwatch_laps_and_total():
    clock = Stopwatch()
    sum(range(200_000))
    lap = clock.lap()
    assert set(lap) == {"wall_s", "cpu_s"} and lap["wall_s"] >= 0 and lap["cpu_s"] >= 0
    total = clock.total()
    assert total["wall_seconds"] >= 0 and len(total["load_average"]["before"]) == 3
    assert len(total["load_average"]["after"]) == 3
    # what the figures' rounding depends on travels with them (the same wheel on another CPU rounds otherwise)
    import torch

    m = total["machine"]
    assert m["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and m["torch"] == torch.__version__
    assert m["cpus"] == os.cpu_count() and m["cpu"] and m["commit"]
    json.dumps(total)  # it goes into the benchmarks' JSON as is


def test_echo_result_is_json_alone_or_the_lines(capsys):
    echo_result({"a": 1}, True, "| table |", "timings")
    assert capsys.readouterr().out == '{"a": 1}\n'  # --json: one object, nothing else to parse around
    echo_result({"a": 1}, False, "| table |", "timings")
    assert capsys.readouterr().out == "| table |\ntimings\n"
