"""`animalpose bench ccssl`: aggregation arithmetic, per-seed cache / resume / refusal, the flow's seed plan.

The per-seed runner is injected (a fake flow that returns fixed summaries), so no test here trains a
model except the slow end-to-end run of the smoke preset.
"""

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from animalpose.errors import DataError
from animalpose.paths import REPO_ROOT
from flows.benchmarks import ccssl as bench

# three seeds (hand-made PCKs); the gap recoveries are computed by hand in the tests
SUMMARIES = {
    0: {"source_only": 0.40, "rounds": [0.45, 0.55], "oracle": 0.60},  # (0.55 - 0.40) / 0.20 = 0.75
    1: {"source_only": 0.50, "rounds": [0.52, 0.60], "oracle": 0.70},  # (0.60 - 0.50) / 0.20 = 0.50
    2: {"source_only": 0.30, "rounds": [0.35, 0.41], "oracle": 0.40},  # (0.41 - 0.30) / 0.10 = 1.10
}


def seed_result(seed: int, **changes) -> dict:
    return {"seed": seed, **SUMMARIES[seed], **changes}


class FakeFlow:
    """A per-seed runner that records its calls and returns ``SUMMARIES[seed]`` (or raises once)."""

    def __init__(self, fail_on: set[int] | None = None):
        self.calls: list[dict] = []
        self.fail_on = set(fail_on or ())

    def __call__(self, **kwargs) -> dict:
        self.calls.append(kwargs)
        if kwargs["seed"] in self.fail_on:
            self.fail_on.discard(kwargs["seed"])
            raise RuntimeError("simulated crash")
        s = SUMMARIES[kwargs["seed"]]
        return {**s, "gap_recovery": bench.gap_recovery(s["source_only"], s["rounds"][-1], s["oracle"]),
                "model_name": kwargs["register_as"], "model_version": "1", "mlflow_run_id": f"run{kwargs['seed']}",
                "checkpoint": "/not/kept"}


# --------------------------------------------------------------------------------------------------
# aggregation


def test_summary_means_sample_stds_and_both_gap_recoveries():
    s = bench.summarise([seed_result(k) for k in (0, 1, 2)])
    assert s["seeds"] == [0, 1, 2]
    rows = s["rows"]
    assert rows["source_only"]["mean"] == pytest.approx(0.40)
    assert rows["source_only"]["std"] == pytest.approx(0.10)  # sample std of 0.4, 0.5, 0.3
    assert rows["rounds"][0]["mean"] == pytest.approx((0.45 + 0.52 + 0.35) / 3)
    assert rows["rounds"][1]["mean"] == pytest.approx(0.52)
    # deviations 0.03, 0.08, -0.11 from 0.52: (0.0009 + 0.0064 + 0.0121) / 2 = 0.0097
    assert rows["rounds"][1]["std"] == pytest.approx(0.0097 ** 0.5)
    assert rows["oracle"]["mean"] == pytest.approx(1.7 / 3) and rows["oracle"]["values"] == [0.6, 0.7, 0.4]
    per = s["gap_recovery"]["per_seed"]
    assert per["values"] == pytest.approx([0.75, 0.50, 1.10])
    assert per["mean"] == pytest.approx(2.35 / 3) and per["n"] == 3 and per["undefined_seeds"] == []
    # deviations 0.75 - 0.78333 = -0.03333, -0.28333, 0.31667: squares sum 0.18167, / 2 = 0.090833
    assert per["std"] == pytest.approx(0.090833 ** 0.5, rel=1e-4)
    # from the means: (0.52 - 0.40) / (0.56667 - 0.40) = 0.72, not the mean of the per-seed ratios
    assert s["gap_recovery"]["of_means"] == pytest.approx(0.72)
    assert s["gap_recovery"]["of_means_seeds"] == [0, 1, 2]


def test_undefined_recovery_is_counted_named_and_not_averaged():
    seeds = [seed_result(0), seed_result(1, oracle=0.45), seed_result(2)]  # seed 1: oracle below source-only
    s = bench.summarise(seeds)
    per = s["gap_recovery"]["per_seed"]
    assert per["values"][1] is None and per["undefined_seeds"] == [1]
    assert per["n"] == 2 and per["mean"] == pytest.approx((0.75 + 1.10) / 2)
    # of the means: oracle mean (0.60 + 0.45 + 0.40) / 3 = 0.48333; (0.52 - 0.40) / 0.08333 = 1.44
    assert s["gap_recovery"]["of_means"] == pytest.approx(1.44)
    table = bench.format_table(s)
    assert "(2 of 3 seeds)" in table and "undefined" in table and "seed(s) [1]" in table

    # no oracle at all: recovery undefined both ways, oracle row undefined, nothing silently dropped
    none = bench.summarise([seed_result(k, oracle=None) for k in (0, 1)])
    assert none["gap_recovery"]["of_means"] is None and none["gap_recovery"]["per_seed"]["n"] == 0
    assert none["rows"]["oracle"]["mean"] is None and none["gap_recovery"]["per_seed"]["undefined_seeds"] == [0, 1]
    # equal oracle and source-only means: no gap
    assert bench.gap_recovery(0.5, 0.6, 0.5) is None and bench.gap_recovery(0.5, 0.6, float("nan")) is None


def test_one_seed_has_no_std_and_round_counts_must_agree():
    s = bench.summarise([seed_result(0)])
    assert s["rows"]["source_only"]["std"] is None and s["gap_recovery"]["of_means"] == pytest.approx(0.75)
    assert "40.0 ± n/a" in bench.format_table(s)
    with pytest.raises(ValueError, match="different numbers of rounds"):
        bench.summarise([seed_result(0), seed_result(1, rounds=[0.6])])


def test_gap_recovery_is_the_flows():
    from flows.ccssl import gap_recovery

    for args in [(0.4, 0.55, 0.6), (0.4, 0.35, 0.6), (0.4, 0.5, None), (0.6, 0.7, 0.6), (0.6, 0.7, 0.5)]:
        assert bench.gap_recovery(*args) == gap_recovery(*args)


def test_table_rows_and_percentages():
    table = bench.format_table(bench.summarise([seed_result(k) for k in (0, 1, 2)]))
    lines = table.splitlines()
    assert lines[0].startswith("| model | PCK@0.05 (crop, %), mean ± std over 3 seed(s) | seed 0 | seed 1 | seed 2 |")
    row = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in lines[2:8]}
    assert row["source-only"] == ["40.0 ± 10.0", "40.0", "50.0", "30.0"]
    assert row["CC-SSL round 2"] == ["52.0 ± 9.8", "55.0", "60.0", "41.0"]
    assert row["oracle (target labels)"][1:] == ["60.0", "70.0", "40.0"]
    assert row["gap recovery, per seed then mean"] == ["78.3% ± 30.1% (3 of 3 seeds)", "75.0%", "50.0%", "110.0%"]
    assert row["gap recovery of the means"][0] == "72.0%"


# --------------------------------------------------------------------------------------------------
# per-seed cache, resume, refusal


def test_seeds_run_once_with_their_own_folder_store_name_then_are_reused(tmp_path):
    fake = FakeFlow()
    out = tmp_path / "bench"
    first = bench.run_bench(out, [0, 2], preset="smoke", runner=fake)
    assert [c["seed"] for c in fake.calls] == [0, 2]
    for call in fake.calls:
        k = call["seed"]
        assert call["out_dir"] == out.resolve() / f"seed{k}" and call["preset"] == "smoke"
        assert call["tracking_uri"] == f"sqlite:///{out.resolve() / 'mlflow.db'}" and call["species"] == "horse"
        assert call["register_as"] == f"ccssl-horse-bench-seed{k}"
        saved = json.loads((out / f"seed{k}" / "result.json").read_text())
        assert saved["rounds"] == SUMMARIES[k]["rounds"] and saved["wall_s"] >= 0 and saved["cpu_s"] >= 0
        assert saved["settings"]["seed"] == k and len(saved["settings"]["preset_sha256"]) == 64
        assert saved["model_name"] == f"ccssl-horse-bench-seed{k}" and not saved["resumed"]
    assert not any(p.name.endswith(".tmp") for p in out.rglob("*"))
    assert [s["reused"] for s in first["per_seed"]] == [False, False]
    assert json.loads((out / "ccssl_bench.json").read_text())["gap_recovery"] == first["gap_recovery"]

    again = bench.run_bench(out, [0, 1, 2], preset="smoke", runner=fake)
    assert [c["seed"] for c in fake.calls] == [0, 2, 1]  # only the new seed ran
    assert [s["reused"] for s in again["per_seed"]] == [True, False, True]
    assert again["gap_recovery"]["per_seed"]["values"] == pytest.approx([0.75, 0.50, 1.10])


def test_interrupted_seed_resumes_and_other_settings_are_refused(tmp_path):
    preset = tmp_path / "mine.yaml"  # a copy of the smoke preset whose content the test changes
    text = (REPO_ROOT / "configs" / "flows" / "smoke.yaml").read_text()
    preset.write_text(text.replace("../", f"{REPO_ROOT / 'configs'}/"))  # its config paths made absolute
    fake = FakeFlow(fail_on={0})
    with pytest.raises(RuntimeError, match="simulated crash"):
        bench.run_bench(tmp_path / "b", [0], preset=str(preset), runner=fake)
    assert (tmp_path / "b" / "seed0" / "settings.json").is_file()
    assert not (tmp_path / "b" / "seed0" / "result.json").exists()

    # an interrupted seed folder of other settings is refused before the flow runs
    with pytest.raises(DataError, match=r"settings.json.*species: 'horse' there, 'tiger' now"):
        bench.run_bench(tmp_path / "b", [0], species="tiger", preset=str(preset), runner=fake)
    assert len(fake.calls) == 1

    resumed = bench.run_bench(tmp_path / "b", [0], preset=str(preset), runner=fake)
    assert len(fake.calls) == 2 and resumed["per_seed"][0]["resumed"] is True

    # a finished seed: the preset file changed -> refused, naming result.json and the hash
    preset.write_text(preset.read_text() + "\n# edited\n")
    with pytest.raises(DataError, match=r"result.json.*preset_sha256"):
        bench.run_bench(tmp_path / "b", [0], preset=str(preset), runner=fake)
    assert len(fake.calls) == 2


def test_a_changed_style_definition_refuses_the_old_seed(tmp_path, monkeypatch):
    """Same preset file, but the generator's photo style was redefined: the data differ, so the cached
    seed must not be mixed into the table."""
    import synthetic.styles as styles

    fake = FakeFlow()
    bench.run_bench(tmp_path / "b", [0], preset="smoke", runner=fake)
    monkeypatch.setitem(styles.PHOTO, "detail", styles.PHOTO["detail"] + 0.5)
    monkeypatch.setattr(styles, "_style_table", functools.cache(styles._style_table.__wrapped__))  # empty cache
    with pytest.raises(DataError, match=r"result.json.*style_digests"):
        bench.run_bench(tmp_path / "b", [0], preset="smoke", runner=fake)
    assert len(fake.calls) == 1


def test_unreadable_result_is_a_data_error(tmp_path):
    (tmp_path / "seed0").mkdir()
    (tmp_path / "seed0" / "result.json").write_text("{not json")
    with pytest.raises(DataError, match=r"result\.json"):
        bench.run_seed(tmp_path, 0, preset="smoke", runner=FakeFlow())
    key = bench.settings_key("horse", "smoke", 0)
    (tmp_path / "seed0" / "result.json").write_text(json.dumps({"settings": key, "source_only": 0.4}))
    with pytest.raises(DataError, match="rounds"):
        bench.run_seed(tmp_path, 0, preset="smoke", runner=FakeFlow())
    with pytest.raises(DataError, match="flow summary of seed 1: rounds"):  # a runner without rounds
        bench.run_seed(tmp_path, 1, preset="smoke", runner=lambda **kw: {"source_only": 0.4, "oracle": 0.6})
    assert not (tmp_path / "seed1" / "result.json").exists()


def test_cli_prints_the_table_and_a_json_last_line(tmp_path, monkeypatch):
    """``animalpose bench ccssl`` calls the demo's flow (replaced here by the fake) with the seed."""
    import flows.ccssl
    from animalpose.cli import app

    fake = FakeFlow()
    monkeypatch.setattr(flows.ccssl, "ccssl_flow", fake)
    result = CliRunner().invoke(app, ["bench", "ccssl", "--preset", "smoke", "--seeds", "0,1", "--out",
                                      str(tmp_path / "b"), "--json"])
    assert result.exit_code == 0, result.output
    assert [c["seed"] for c in fake.calls] == [0, 1]
    lines = result.output.strip().splitlines()
    out = json.loads(lines[-1])
    assert out["seeds"] == [0, 1] and out["gap_recovery"]["per_seed"]["values"] == pytest.approx([0.75, 0.5])
    assert any(line.startswith("| source-only | 45.0 ± 7.1 | 40.0 | 50.0 |") for line in lines)
    bad = CliRunner().invoke(app, ["bench", "ccssl", "--seeds", "0,0", "--out", str(tmp_path / "c")])
    assert bad.exit_code != 0 and "duplicate" in bad.output


# --------------------------------------------------------------------------------------------------
# the flow's seed


def test_seed_plan_replaces_every_preset_seed():
    from flows.ccssl import seed_plan

    plan = seed_plan(0)
    assert (plan.source, plan.source_val, plan.target, plan.test, plan.target_val, plan.train) == (0, 1, 2, 3, 4, 0)
    assert seed_plan(7) == seed_plan(0, 7) == seed_plan(3, 7)
    p5 = seed_plan(0, 5)
    assert (p5.source, p5.source_val, p5.target, p5.test, p5.target_val, p5.train) == (5, 6, 7, 8, 9, 5)


class _Stop(Exception):
    pass


@pytest.mark.parametrize(("seed", "data_seeds", "train_seed"), [(None, [0, 1, 2, 3, 4], 0), (4, [4, 5, 6, 7, 8], 4)])
def test_flow_hands_the_plans_seeds_to_generation_and_training(monkeypatch, tmp_path, seed, data_seeds, train_seed):
    """The flow body up to the first training config: which seeds reach make_dataset and train_config."""
    import flows.ccssl
    from animalpose.tracking import Tracker

    seen: dict[str, list] = {"data": [], "train": []}

    def make_dataset(species, spec, s, role, **kw):
        seen["data"].append((role, s))
        return [tmp_path / role]

    def train_config(preset, train, val, **kw):
        seen["train"].append(kw["seed"])
        raise _Stop

    monkeypatch.setattr(flows.ccssl, "parent_tracker", lambda *a, **k: Tracker(enabled=False))
    monkeypatch.setattr(flows.ccssl, "make_dataset", make_dataset)
    monkeypatch.setattr(flows.ccssl, "train_config", train_config)
    with pytest.raises(_Stop):
        flows.ccssl.ccssl_flow.fn(species="horse", preset="smoke", seed=seed, out_dir=tmp_path / "out")
    assert seen["data"] == list(zip(["source", "source-val", "target", "test", "target-val"], data_seeds, strict=True))
    assert seen["train"] == [train_seed]


def test_demo_passes_seed_only_when_given(monkeypatch):
    import flows.ccssl
    from animalpose.cli import app

    seen = []

    def fake_flow(**kwargs):
        seen.append(kwargs)
        s = SUMMARIES[kwargs.get("seed", 0)]
        return {**s, "species": "horse", "preset": "smoke", "gap_recovery": 0.75, "model_name": "m",
                "model_version": "1", "mlflow_run_id": "r", "mlflow_run_url": "u", "tracking_uri": "t",
                "mlflow_ui": "mlflow ui", "seed": kwargs.get("seed", 0)}

    monkeypatch.setattr(flows.ccssl, "ccssl_flow", fake_flow)
    assert CliRunner().invoke(app, ["demo", "--preset", "smoke", "--seed", "2", "--json"]).exit_code == 0
    assert CliRunner().invoke(app, ["demo", "--preset", "smoke"]).exit_code == 0
    assert seen == [{"species": "horse", "preset": "smoke", "rounds": None, "seed": 2},
                    {"species": "horse", "preset": "smoke", "rounds": None}]


# --------------------------------------------------------------------------------------------------
# end to end


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_bench_smoke_one_seed_end_to_end(tmp_path):
    env = {**os.environ, "ANIMALPOSE_HOME": str(tmp_path / "home"), "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_LOCAL_STORAGE_PATH": str(tmp_path / "results"), "OMP_NUM_THREADS": "1"}
    env.pop("PREFECT_API_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [str(Path(sys.executable).parent / "animalpose"), "bench", "ccssl", "--preset", "smoke", "--seeds", "0",
           "--out", str(tmp_path / "bench"), "--json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print("\n".join(proc.stdout.strip().splitlines()[:-1]))  # the table, shown with pytest -s
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    (seed,) = out["per_seed"]
    assert len(seed["rounds"]) == 2 and all(0 <= v <= 1 for v in [seed["source_only"], *seed["rounds"], seed["oracle"]])
    assert seed["gap_recovery"] == bench.gap_recovery(seed["source_only"], seed["rounds"][-1], seed["oracle"])
    assert out["rows"]["source_only"]["values"] == [seed["source_only"]] and "| CC-SSL round 2 |" in proc.stdout
    assert (tmp_path / "bench" / "seed0" / "pretrain").is_dir() and (tmp_path / "bench" / "mlflow.db").is_file()

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)  # reused, not rerun
    assert again.returncode == 0, again.stderr[-3000:]
    out2 = json.loads(again.stdout.strip().splitlines()[-1])
    assert out2["per_seed"][0]["reused"] and out2["rows"] == out["rows"]
