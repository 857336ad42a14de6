"""`bench contention` (issue 30): each busy level starts its neighbours, runs both plans in alternating order and
stops the neighbours; the ratios to the quiet level by hand (the epochs themselves are faked here)."""

from __future__ import annotations

import os
from typing import ClassVar

import pytest

import flows.benchmarks.contention as bench


class FakeLoop:
    running: ClassVar[list[FakeLoop]] = []

    def __init__(self, args):
        assert args[-1] == bench.BUSY_LOOP
        FakeLoop.running.append(self)

    def kill(self):
        FakeLoop.running.remove(self)

    def wait(self):
        return 0


def test_levels_alternate_the_plans_and_ratios_are_to_the_quiet_level(tmp_path, monkeypatch):
    seconds = {("new", 0): 10.0, ("old", 0): 9.0, ("new", 1): 15.0, ("old", 1): 45.0, ("new", 2): 24.0,
               ("old", 2): 72.0}
    calls = []

    def fake_child(ann, plan, images, out):
        busy = len(FakeLoop.running)
        calls.append((plan, busy))
        return {"plan": plan, "seconds": seconds[plan, busy], "threads": 1, "workers": 0, "load_at_start": busy}

    monkeypatch.setattr(bench, "quick_data", lambda folder, n: tmp_path / "ann.json")
    monkeypatch.setattr(bench, "_settle", lambda busy, limit: 0.0)
    monkeypatch.setattr(bench, "_child", fake_child)
    monkeypatch.setattr(bench.subprocess, "Popen", FakeLoop)
    r = bench.contention(tmp_path, [0, 1, 2], images=32)
    assert calls == [("new", 0), ("old", 0), ("old", 1), ("new", 1), ("new", 2), ("old", 2)]
    assert FakeLoop.running == []  # every neighbour stopped
    one = r["levels"][1]
    assert one["new"]["over_quiet_same_plan"] == 1.5 and one["old"]["over_quiet_same_plan"] == 5.0
    assert one["old"]["over_quiet_new"] == 4.5 and one["old_over_new"] == 3.0
    assert r["levels"][2]["old"]["over_quiet_same_plan"] == 8.0


def test_a_failed_arm_stops_the_neighbours_and_says_which_arm(tmp_path, monkeypatch):
    def failing(ann, plan, images, out):
        raise RuntimeError(f"the {plan} arm failed")

    monkeypatch.setattr(bench, "quick_data", lambda folder, n: tmp_path / "ann.json")
    monkeypatch.setattr(bench, "_settle", lambda busy, limit: 0.0)
    monkeypatch.setattr(bench, "_child", failing)
    monkeypatch.setattr(bench.subprocess, "Popen", FakeLoop)
    with pytest.raises(RuntimeError, match="the new arm failed"):
        bench.contention(tmp_path, [2], images=32)
    assert FakeLoop.running == []


def test_an_unknown_plan_is_refused(tmp_path):
    with pytest.raises(ValueError, match="plan must be"):
        bench.run_epoch(tmp_path / "ann.json", "fast", 16, tmp_path)


@pytest.mark.slow
def test_both_arms_train_a_real_epoch_in_their_own_process(tmp_path):
    """One quiet level on 16 generated horses: each arm is a fresh process that trains the quick preset's epoch
    with its own settings (the old ones: a thread per core, 2 loader workers)."""
    r = bench.contention(tmp_path, [0], images=16, settle_s=0)
    level = r["levels"][0]
    assert level["busy"] == 0 and set(level) >= {"new", "old"}
    assert level["old"]["workers"] == bench.OLD_WORKERS and level["old"]["threads"] == os.cpu_count()
    assert level["new"]["threads"] >= 1
    for plan in ("new", "old"):
        assert level[plan]["seconds"] > 0 and level[plan]["images_per_s"] > 0
        assert level[plan]["over_quiet_same_plan"] == 1.0


@pytest.mark.parametrize("busy", ["one", "", "-1", "0,x"])
def test_the_cli_refuses_bad_busy_levels_before_any_work(busy, tmp_path):
    from typer.testing import CliRunner

    from animalpose.cli import app

    res = CliRunner().invoke(app, ["bench", "contention", "--busy", busy, "--data-dir", str(tmp_path / "d")])
    assert res.exit_code != 0 and "--busy" in res.output
    assert not (tmp_path / "d").exists()
