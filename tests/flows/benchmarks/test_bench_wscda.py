"""`animalpose bench wscda`: summary arithmetic by hand, and the plumbing end to end at toy size."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import yaml

from animalpose.errors import DataError
from flows.benchmarks.wscda import (
    METRICS,
    ROWS,
    BenchSettings,
    SeedResult,
    common_joints,
    format_table,
    gap_recovery,
    run_bench,
    summarise,
)


def test_gap_recovery_by_hand():
    assert gap_recovery(0.10, 0.20, 0.30) == pytest.approx(0.5)
    assert gap_recovery(0.10, 0.05, 0.30) == pytest.approx(-0.25)  # (d) below (b): negative
    assert math.isnan(gap_recovery(0.30, 0.20, 0.30))  # oracle not above (b): undefined
    assert math.isnan(gap_recovery(0.30, 0.20, 0.10))


def test_common_joints_are_the_17_with_a_human_counterpart():
    from animalpose.keypoints import load_schema

    joints = load_schema("animalpose").joints
    common = common_joints()
    assert len(common) == 17
    assert sorted(set(range(20)) - set(common.tolist())) == sorted(joints.index(j) for j in
                                                                   ("Throat", "TailBase", "Withers"))


def _seed(seed, values):
    rows = {r: {m: v for m in METRICS} for r, v in zip(ROWS, values, strict=True)}
    return SeedResult(seed, rows)


def test_summarise_mean_std_ordering_and_gap_recovery_by_hand():
    seeds = [_seed(0, [0.1, 0.2, 0.3, 0.4, 0.6]), _seed(1, [0.3, 0.2, 0.5, 0.6, 0.4])]
    out = summarise(seeds)
    assert set(out["rows"]) == set(ROWS)
    a = out["rows"]["a"]["pck@0.05"]
    assert a["mean"] == pytest.approx(0.2) and a["std"] == pytest.approx(np.sqrt(0.02))  # ddof 1
    assert a["values"] == [0.1, 0.3]
    assert out["rows"]["b"]["pck@0.1"]["std"] == 0.0
    # means: a 0.2, b 0.2, c 0.4, d 0.5, e 0.5 (sort is stable: a before b, d before e)
    assert out["ordering"] == "a < b < c < d < e" == out["ordering_pck@0.1"]
    seeds[1].rows["a"]["pck@0.1"] = 0.99  # PCK@0.1 alone moves (a) to the top of its ordering
    assert summarise(seeds)["ordering_pck@0.1"] == "b < c < d < e < a"
    assert out["gap_recovery_d"] == pytest.approx((0.5 - 0.2) / (0.5 - 0.2))
    assert out["gap_recovery_d_per_seed"] == pytest.approx([(0.4 - 0.2) / (0.6 - 0.2), (0.6 - 0.2) / (0.4 - 0.2)])
    assert summarise([seeds[0]])["rows"]["c"]["pck@0.05"]["std"] == 0.0
    table = format_table(out)
    assert "| (c) WS-CDA | 0.400 ± 0.141 |" in table and "gap recovery of (d)" in table
    assert "gap_recovery_d_oracle_human" not in out
    # the oracle from the human model, when trained, gives a second gap recovery of (d)
    for s, v in zip(seeds, (0.7, 0.5), strict=True):
        s.rows["oracle_human"] = dict.fromkeys(METRICS, v)
    out = summarise(seeds)
    assert out["gap_recovery_d_oracle_human"] == pytest.approx((0.5 - 0.2) / (0.6 - 0.2))
    assert out["gap_recovery_d_oracle_human_per_seed"] == pytest.approx([(0.4 - 0.2) / (0.7 - 0.2),
                                                                        (0.6 - 0.2) / (0.5 - 0.2)])
    assert "(the oracle from the human model - b): 0.75" in format_table(out)


def test_bench_plumbing_tiny(tmp_path):
    """One seed at toy size: five rows (and the two controls) with PCK numbers in [0, 1], JSON written."""
    pytest.importorskip("synthetic")
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    settings = replace(BenchSettings(), n_human=6, n_labelled=2, n_target=6, n_test=4, render_size=32,
                       input_size=32, batch_size=4, steps_per_epoch=2, epochs=1, pplo_rounds=1,
                       keep_fractions=(0.2,), human_epochs=2)
    try:
        result = run_bench(tmp_path, [0], settings)
    finally:
        torch.set_num_threads(threads)
    on_disk = json.loads((tmp_path / "wscda_bench.json").read_text())
    assert set(on_disk["rows"]) == {*ROWS, "control", "finetune", "oracle_human", "b_long"}
    for row in on_disk["rows"].values():
        for m in METRICS:
            assert 0.0 <= row[m]["mean"] <= 1.0 and row[m]["std"] == 0.0
    assert on_disk["settings"]["steps_per_epoch"] == 2 and on_disk["torch_threads"] == 1
    from animalpose.engine.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "seed0" / "a" / "wscda.ckpt")["epoch"] == 2  # (a) took human_epochs
    assert load_checkpoint(tmp_path / "seed0" / "b" / "wscda.ckpt")["epoch"] == 1
    assert result["ordering"].count("<") == 4
    seed = on_disk["seeds"][0]
    assert set(seed["seconds"]) == {"a", "b", "e", "control", "finetune", "oracle_human", "b_long",
                                     "cd"}
    assert seed["diagnostics"]["pplo_last/kept"] > 0
    # every row kept its config file (the quick preset as base) for re-runs
    root = tmp_path / "seed0"
    assert {p.name for p in root.glob("*.yaml")} == {"a.yaml", "b.yaml", "e.yaml", "control.yaml",
                                                     "finetune.yaml", "oracle_human.yaml", "b_long.yaml", "cd.yaml"}
    # the paper's start: WS-CDA and both controls from the human model (a); (a), (b), (e) from scratch
    init = {p.stem: yaml.safe_load(p.read_text())["wscda"].get("init_checkpoint") for p in root.glob("*.yaml")}
    human = str(root / "a" / "wscda.ckpt")
    assert init == {"a": None, "b": None, "e": None, "control": human, "finetune": human, "oracle_human": human,
                    "b_long": None, "cd": human}
    # both oracles train on the target animals with their labels
    train = {p.stem: yaml.safe_load(p.read_text())["data"]["train"] for p in root.glob("*.yaml")}
    assert train["oracle_human"] == train["e"] != train["b"]
    # a finished row is never resumed under other settings: the benchmark refuses, naming the file
    with pytest.raises(DataError, match=r"seed0/b\.yaml"):
        run_bench(tmp_path, [0], replace(settings, lr=2e-3, control=False), rows=("b",))
    torch.set_num_threads(threads)
    # eight SimpleBaseline-18 rows leave 2.2 GB of checkpoints: freed now, not at the session's end, so the
    # suite's peak disk stays low on a CI machine whose disk is shared
    for ckpt in tmp_path.rglob("*.ckpt"):
        ckpt.unlink()


def test_requested_rows_train_the_human_model_they_start_from(tmp_path, monkeypatch):
    """Asking for (c) alone (the end-to-end test does) still trains (a) first when (c) starts from it."""
    import animalpose.adapt.wscda.run as wrun
    import flows.benchmarks.wscda as bench

    order = []

    def fake_run(cfg, out, progress=False):
        order.append((out.name, cfg.wscda.init_checkpoint))
        raise StopIteration  # the order is all this test needs

    monkeypatch.setattr(bench, "generate_data", lambda root, s, seed: {k: tmp_path for k in
                                                                         ("human", "few", "target", "test")})
    monkeypatch.setattr(wrun, "run_wscda", fake_run)
    with pytest.raises(StopIteration):
        bench.run_seed(tmp_path, 0, replace(BenchSettings(), control=False), rows=("b", "c"))
    assert order == [("a", None)]
    order.clear()
    with pytest.raises(StopIteration):
        bench.run_seed(tmp_path / "x", 0, replace(BenchSettings(), control=False, init_from_human=False),
                       rows=("c",))
    assert order == [("cd", None)]


def test_row_configs_carry_the_human_budget_w2_and_ratio_only_where_they_apply(tmp_path):
    """(a) alone takes ``human_epochs``; w2 and the ratio reach only the mixed rows (c/d and the α = 0
    control); at the defaults the mixed rows carry no w2/ratio key, so the preset's values apply."""
    from flows.benchmarks.wscda import _raw_config

    data = {k: tmp_path / k for k in ("human", "few", "target", "test")}
    s = replace(BenchSettings(), epochs=3, human_epochs=6)
    rows = ("a", "b", "e", "control", "finetune", "cd", "b_long")
    raw = {r: _raw_config(s, data, 0, r)["wscda"] for r in rows}
    assert {r: w["epochs"] for r, w in raw.items()} == {"a": 6, "b": 3, "e": 3, "control": 3, "finetune": 3,
                                                         "cd": 3, "b_long": 9}  # b_long: (a)'s 6 + 3
    assert not any("w2" in w for w in raw.values()) and "ratio" not in raw["cd"]
    assert _raw_config(replace(s, human_epochs=None), data, 0, "a")["wscda"]["epochs"] == 3
    s = replace(s, w2=2.0, ratio=(1.0, 1.0, 1.0))
    raw = {r: _raw_config(s, data, 0, r)["wscda"] for r in rows}
    assert {r for r, w in raw.items() if w.get("w2") == 2.0} == {"control", "cd"}
    assert {r: w["ratio"] for r, w in raw.items()} == {"a": [1.0, 0.0, 0.0], "b": [0.0, 1.0, 0.0],
                                                       "e": [0.0, 1.0, 0.0], "control": [1.0, 1.0, 1.0],
                                                       "finetune": [0.0, 1.0, 0.0], "cd": [1.0, 1.0, 1.0],
                                                       "b_long": [0.0, 1.0, 0.0]}


def test_bench_command_is_wired():
    from typer.testing import CliRunner

    from animalpose.cli import app

    res = CliRunner().invoke(app, ["bench", "wscda", "--help"])
    assert res.exit_code == 0 and "--seeds" in res.output and "--json" in res.output
