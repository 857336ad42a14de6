"""`animalpose models list/summary` and `animalpose bench models` through the real CLI app."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from animalpose.cli import app
from flows.benchmarks.models import anchor_ratios, format_table, measure_case

runner = CliRunner()


def test_list_json_rows_have_required_fields():
    result = runner.invoke(app, ["models", "list", "--json", "hourglass1", "hourglass4", "hourglass_quick"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"hourglass1", "hourglass4", "hourglass_quick"}
    assert rows["hourglass1"]["params"] == 3_587_474 and rows["hourglass4"]["params"] == 13_022_408
    assert rows["hourglass4"]["input_size"] == [256, 256] and rows["hourglass4"]["num_joints"] == 18
    assert rows["hourglass_quick"]["input_size"] == [128, 128]
    assert all({"name", "params", "input_size", "gflops"} <= set(r) for r in rows.values())
    # 4 stacks cost more than 1 stack; GFLOPs are multiply-adds, so below 2x the FLOP count
    assert rows["hourglass1"]["gflops"] < rows["hourglass4"]["gflops"] < 20


def test_list_text_and_unknown_name():
    result = runner.invoke(app, ["models", "list", "hrnet_w32"])
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("hrnet_w32"))
    assert "256x192" in line and "28,536,113" in line
    bad = runner.invoke(app, ["models", "list", "hourglass3"])
    assert bad.exit_code == 2 and "unknown model 'hourglass3'" in bad.output


def test_summary_blocks_add_up():
    result = runner.invoke(app, ["models", "summary", "hourglass2", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert sum(info["blocks"].values()) == info["params"] == 6_732_452
    assert info["architecture"] == "HourglassNet" and len(info["outputs"]) == 2
    text = runner.invoke(app, ["models", "summary", "hourglass2"])
    assert text.exit_code == 0 and "6,732,452" in text.stdout and "score_" in text.stdout


def test_bench_measure_case_and_report_shapes():
    row = measure_case("hourglass_quick", (64, 64), "channels_last+bf16", batch=2, repeats=1, warmup=0)
    assert row["params"] == 1_701_220 and row["forward_images_per_s"] > 0 and row["train_s_per_image"] > 0
    assert row["forward_ms_per_image"] * row["forward_images_per_s"] == pytest.approx(1000.0)
    assert row["train_s_per_image"] * row["train_images_per_s"] == pytest.approx(1.0)
    assert row["forward_cpu_ms_per_image"] > 0 and row["train_cpu_s_per_image"] > 0
    fused = measure_case("hourglass_quick", (64, 64), "fused", batch=2, repeats=1, warmup=0)
    assert fused["train_images_per_s"] is None and fused["params"] == 1_701_220


def test_bench_measures_a_coarse_to_fine_model_plain_and_fused():
    """rsn_quick's loss reads coordinates (the bench makes them) and its BN folding traces."""
    row = measure_case("rsn_quick", (64, 64), "plain", batch=2, repeats=1, warmup=0)
    assert row["params"] == 8_408_808 and row["train_s_per_image"] > 0
    fused = measure_case("rsn_quick", (64, 64), "fused", batch=2, repeats=1, warmup=0)
    assert fused["forward_images_per_s"] > 0


def test_anchor_ratio_arithmetic_and_table():
    rows = [
        {
            "model": "hourglass4",
            "input_size": [256, 256],
            "mode": "plain",
            "batch": 1,
            "params": 13_022_408,
            "forward_images_per_s": 10.0,
            "forward_ms_per_image": 100.0,
            "train_images_per_s": 4.0,
            "train_s_per_image": 0.25,
        }
    ]
    ratios = anchor_ratios(rows)["plain"]
    assert ratios["forward_speedup"] == [1.35, 1.76]
    assert ratios["train_speedup"] == [0.43 / 0.25, 2.0]
    report = {"torch": "x", "threads": 1, "batch": 1, "repeats": 1, "load_average": [0, 0, 0], "results": rows}
    report["anchor"] = anchor_ratios(rows)
    table = format_table(report)
    assert "hourglass4" in table and "train 1.72-2.00x" in table and "forward 1.35-1.76x" in table


def test_bench_models_rejects_unknown_model():
    result = runner.invoke(app, ["bench", "models", "--model", "resnet9000", "--json"])
    assert result.exit_code != 0 and "--model" in result.output


def test_ratios_to_simplebaseline50_of_the_same_mode_and_run():
    from flows.benchmarks.models import baseline_ratios

    def row(model, mode, f_cpu, t_cpu):
        return {"model": model, "mode": mode, "forward_cpu_ms_per_image": f_cpu, "forward_ms_per_image": 2 * f_cpu,
                "train_cpu_s_per_image": t_cpu, "train_s_per_image": 2 * t_cpu}

    rows = [row("simplebaseline50", "plain", 100.0, 1.0), row("lpn50", "plain", 25.0, 0.5),
            row("lpn50", "bf16", 10.0, 0.1)]  # no baseline row in bf16: no ratio
    ratios = baseline_ratios(rows)
    assert ratios == {"lpn50": {"plain": {"forward_cpu": 0.25, "forward_wall": 0.25, "train_cpu": 0.5,
                                          "train_wall": 0.5}}}
    assert baseline_ratios(rows[1:]) == {}


def test_bench_trains_grmi_on_its_3k_maps(one_thread):
    """G-RMI's loss reads heatmap + offset targets (3K maps): the bench makes them."""
    row = measure_case("grmi_quick", (64, 64), "plain", batch=2, repeats=1, warmup=0)
    assert row["params"] == 2_795_891 and row["train_s_per_image"] > 0
