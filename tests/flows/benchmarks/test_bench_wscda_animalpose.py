"""`bench wscda-animalpose` (issue 29): the arm plan and each arm's config, the epoch choice, the summary by
hand, and (slow) the smoke preset end to end on a few real Animal-Pose photographs with its cache and resume."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from animalpose.errors import DataError
from flows.benchmarks.wscda_animalpose import (
    ARMS,
    METRICS,
    PCK,
    PRESETS,
    BenchSettings,
    arm_config,
    arm_document,
    choose,
    format_screen,
    format_table,
    plan_arms,
    run_bench,
    run_seed,
    summarise,
    summarise_screen,
)

RELEASE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "real" / "animal-pose"
KEYS = ("horse_train", "horse_val", "horse_test", "cow", "sheep", "human", "synthetic")


@pytest.fixture
def files(tmp_path):
    """Stand-ins for the bench's data files (configs only check that they exist)."""
    out = {}
    for key in KEYS:
        out[key] = tmp_path / f"{key}.json"
        out[key].write_text("{}")
    return out


def _configs(settings, files, tmp_path):
    """{arm: the arm's config document}, each arm starting from a stand-in of its start arm's model."""
    start = tmp_path / "start.ckpt"
    start.write_text("")
    return {a.name: arm_config(a, settings, files, 3, start if a.start else None)
            for a in plan_arms(settings.human_epochs)}


def test_the_plan_trains_every_arm_after_the_one_it_starts_from():
    plan = plan_arms(6)
    assert tuple(a.name for a in plan) == ARMS
    seen = set()
    for arm in plan:
        assert arm.start is None or arm.start in seen, arm.name
        seen.add(arm.name)
    starts = {a.name: a.start for a in plan}
    assert {a for a, s in starts.items() if s == "human_only"} == {"wscda", "wscda_pplo", "alpha0", "finetune",
                                                                  "synthetic", "synthetic_3way",
                                                                  "pplo_consistency", "wscda_grl", "wscda_weak"}
    runs = {a.name: a.run for a in plan}
    assert runs["wscda"] == runs["wscda_pplo"] and len(set(runs.values())) == len(ARMS) - 1
    assert {a.name for a in plan if a.pplo} == {"wscda_pplo", "synthetic", "synthetic_3way", "pplo_consistency"}


def test_each_arm_draws_only_its_own_data_and_the_controls_match_wscda(files, tmp_path):
    cfgs = _configs(BenchSettings(), files, tmp_path)
    for name, cfg in cfgs.items():
        text = json.dumps(cfg)
        assert str(files["horse_test"]) not in text, name  # test photographs are only ever scored
        assert cfg["data"]["val"] == [str(files["horse_val"])] and cfg["data"]["target"] == [str(files["horse_train"])]
        assert cfg["train"]["seed"] == 3
        assert cfg["wscda"]["human"] == [str(files["human"])]
    # the horses' train labels: the oracle alone
    assert [n for n, c in cfgs.items() if str(files["horse_train"]) in c["data"]["train"]] == ["oracle"]
    assert [n for n, c in cfgs.items() if str(files["synthetic"]) in c["data"]["train"]] == ["synthetic",
                                                                                           "synthetic_3way"]
    w = {n: c["wscda"] for n, c in cfgs.items()}
    assert w["human_only"]["ratio"] == [1.0, 0.0, 0.0] and w["human_only"]["epochs"] == 6
    # alpha = 0: the batches and steps of (c), only alpha and the PPLO rounds differ
    assert {k: v for k, v in w["alpha0"].items() if k not in ("alpha", "pplo_rounds")} == w["wscda"]
    assert w["alpha0"]["alpha"] == 0.0 and "alpha" not in w["wscda"]  # (c): the config's alpha = -1
    # finetune: (b)'s batches from the human model
    assert {k: v for k, v in w["finetune"].items() if k != "init_checkpoint"} == w["animals_only"]
    assert "init_checkpoint" not in w["animals_only"] and "init_checkpoint" not in w["oracle"]
    assert w["synthetic"] == {**w["wscda"], "labelled_per_species": {"cow": None, "sheep": None, "horse": None}}
    # the combination arms: one switch each over the arm they extend
    assert w["synthetic_3way"] == {**w["synthetic"], "discriminator": "three_way"}
    assert w["pplo_consistency"] == {**w["wscda"], "pplo_filter": "consistency"}
    assert cfgs["synthetic_3way"]["data"] == cfgs["synthetic"]["data"]
    assert cfgs["pplo_consistency"]["data"] == cfgs["wscda"]["data"]
    # the adversarial term's strength (item 3): (c) without PPLO, one switch each, the batches of alpha = 0
    assert w["wscda_grl"] == {**w["wscda"], "scheme": "grl", "pplo_rounds": 0}
    assert w["wscda_weak"] == {**w["wscda"], "alpha": -0.1, "pplo_rounds": 0}
    assert cfgs["wscda_grl"]["data"] == cfgs["wscda_weak"]["data"] == cfgs["alpha0"]["data"]
    assert w["oracle"]["labelled_per_species"] is None and "labelled_per_species" not in w["animals_only"]


def test_labelled_per_species_n_limits_cows_and_sheep_only(files, tmp_path):
    w = {n: c["wscda"] for n, c in _configs(BenchSettings(labelled_per_species=5), files, tmp_path).items()}
    assert w["animals_only"]["labelled_per_species"] == 5 == w["wscda"]["labelled_per_species"]
    assert w["synthetic"]["labelled_per_species"] == {"cow": 5, "sheep": 5, "horse": None}
    assert w["synthetic_3way"]["labelled_per_species"] == w["synthetic"]["labelled_per_species"]
    assert w["pplo_consistency"]["labelled_per_species"] == 5
    assert w["oracle"]["labelled_per_species"] is None


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_arm_config_loads_and_the_controls_take_the_steps_of_wscda(preset, files, tmp_path):
    from animalpose.adapt.wscda.run import WSCDAConfig
    from animalpose.config import load_config

    settings = PRESETS[preset]
    start = tmp_path / "start.ckpt"
    start.write_text("")
    loaded = {}
    for arm in plan_arms(settings.human_epochs):
        path = tmp_path / f"{arm.name}.yaml"
        path.write_text(yaml.safe_dump(arm_document(arm, settings, files, 3, start if arm.start else None)))
        loaded[arm.name] = load_config(path, WSCDAConfig)
    steps = {n: (c.wscda.epochs or c.train.epochs) * c.wscda.steps_per_epoch for n, c in loaded.items()}
    assert len({steps[n] for n in ARMS if n != "human_only"}) == 1  # every arm but (a): the same steps
    assert loaded["human_only"].wscda.epochs == settings.human_epochs
    assert all(c.wscda.select_on_val and c.data.schema_name == "animalpose" for c in loaded.values())
    # the prepared files name the release's images by absolute path: every arm opts in to reading them
    assert all(c.data.allow_outside_root for c in loaded.values())
    assert loaded["wscda"].wscda.alpha == -1.0 and loaded["wscda"].wscda.beta == 500.0  # the paper's
    assert loaded["wscda"].wscda.pplo_rounds >= 1 and loaded["alpha0"].wscda.pplo_rounds == 0
    # the paper's discriminator and PPLO filter everywhere but in the arm that switches each
    assert {n for n, c in loaded.items() if c.wscda.discriminator == "three_way"} == {"synthetic_3way"}
    assert {n for n, c in loaded.items() if c.wscda.pplo_filter == "consistency"} == {"pplo_consistency"}
    if preset == "long":  # 5x the quick preset's steps, every arm
        assert steps["wscda"] == 1000 and steps["human_only"] == 1500


def test_a_set_override_reaches_the_arms_that_do_not_set_the_key(files, tmp_path):
    settings = BenchSettings(overrides=("wscda.alpha=-0.5", "wscda.steps_per_epoch=7"))
    docs = {a.name: arm_document(a, settings, files, 0, None) for a in plan_arms(settings.human_epochs)}
    assert docs["wscda"]["wscda"]["alpha"] == -0.5 == docs["synthetic"]["wscda"]["alpha"]
    assert docs["alpha0"]["wscda"]["alpha"] == 0.0 == docs["animals_only"]["wscda"]["alpha"]
    assert {d["wscda"]["steps_per_epoch"] for d in docs.values()} == {7}
    assert docs["wscda"]["data"]["input_size"] == [128, 128]  # the bench config underneath


def test_choose_takes_the_best_val_epoch_over_steps_first_of_equals():
    curves = {"round_0": {"epochs": [{"epoch": 1, "pck@0.05": 0.2, "pck@0.1": 0.5},
                                     {"epoch": 2, "pck@0.05": 0.3, "pck@0.1": 0.4}], "best_epoch": 2},
              "round_1": {"epochs": [{"epoch": 1, "pck@0.05": 0.3, "pck@0.1": 0.9}], "best_epoch": 1}}
    assert choose(curves) == ("round_0", 2, {"pck@0.05": 0.3, "pck@0.1": 0.4})
    curves["round_1"]["epochs"][0]["pck@0.05"] = 0.31
    assert choose(curves) == ("round_1", 1, {"pck@0.05": 0.31, "pck@0.1": 0.9})


def _seed(values: dict[str, float], disc: float, gap) -> dict:
    arms = {a: {"test": dict.fromkeys(METRICS, v)} for a, v in values.items()}
    arms["wscda"]["discriminator"] = {"disc_acc/human": disc, "disc_acc/target": 1 - disc}
    arms["synthetic_3way"]["discriminator"] = {"disc_acc/synthetic": disc / 2, "disc_acc/real": 1 - disc / 2}
    for arm in ("wscda_grl", "wscda_weak"):
        arms[arm]["discriminator"] = {"disc_acc/human": disc}
    return {"arms": arms, "gap_recovery": gap}


def test_summary_by_hand():
    s0 = dict(zip(ARMS, (0.10, 0.20, 0.30, 0.40, 0.60, 0.25, 0.15, 0.45, 0.50, 0.38, 0.26, 0.24), strict=True))
    s1 = dict(zip(ARMS, (0.10, 0.30, 0.20, 0.35, 0.50, 0.25, 0.25, 0.30, 0.20, 0.45, 0.27, 0.20), strict=True))
    out = summarise([_seed(s0, 0.9, 0.5), _seed(s1, 0.7, 0.25)])
    assert out["rows"]["wscda"]["AP"]["mean"] == pytest.approx(0.25)
    assert out["rows"]["wscda"]["AP"]["std"] == pytest.approx(0.1 / 2 ** 0.5)  # ddof 1
    c = out["contrasts"]["wscda - alpha0"]
    assert c["values"] == pytest.approx([0.05, -0.05]) and c["seeds_above"] == 1
    assert out["contrasts"]["wscda_pplo - wscda"]["seeds_above"] == 2
    assert out["contrasts"]["synthetic - wscda_pplo"]["mean"] == pytest.approx((0.05 - 0.05) / 2)
    # (b) < (c) < (d): 0.2 < 0.3 < 0.4 holds in seed 0; 0.3 > 0.2 in seed 1
    assert out["paper_ordering_b_c_d"] == {"seeds": 2, "seeds_holding": 1}
    # means b 0.25, d 0.375, e 0.55
    assert out["gap_recovery_of_means"] == pytest.approx((0.375 - 0.25) / (0.55 - 0.25))
    assert out["gap_recovery_per_seed"] == [0.5, 0.25]
    assert out["discriminator_wscda"]["disc_acc/human"]["mean"] == pytest.approx(0.8)
    assert out["discriminator_synthetic_3way"]["disc_acc/real"]["mean"] == pytest.approx(0.6)
    # synthetic_3way - synthetic: +0.05, -0.10; pplo_consistency - wscda_pplo: -0.02, +0.10
    three = out["contrasts"]["synthetic_3way - synthetic"]
    assert three["values"] == pytest.approx([0.05, -0.10]) and three["seeds_above"] == 1
    consistency = out["contrasts"]["pplo_consistency - wscda_pplo"]
    assert consistency["mean"] == pytest.approx(0.04) and consistency["seeds_above"] == 1
    # wscda_grl - alpha0: +0.01, +0.02; wscda_weak - alpha0: -0.01, -0.05
    assert out["contrasts"]["wscda_grl - alpha0"]["seeds_above"] == 2
    assert out["contrasts"]["wscda_weak - alpha0"]["mean"] == pytest.approx(-0.03)
    table = format_table(out)
    assert "| (c) WS-CDA from (a) | 25.0 ± 7.1 |" in table
    assert "wscda - alpha0 (paired per seed): +0.0 ± 7.1 points PCK@0.05, above in 1 of 2 seeds" in table
    assert "holds in 1 of 2 seeds" in table and "41.7 %" in table
    assert "| (d) with CC-SSL's consistency filter | 41.5 ± 4.9 |" in table


def test_screen_summary_by_hand_reads_val_only():
    def seed(values):
        return {"arms": {a: {"val": {"pck@0.05": v, "pck@0.1": 2 * v}, "step": "wscda", "epoch": 3}
                         for a, v in values.items()}}

    out = summarise_screen([seed({"wscda": 0.10, "alpha0": 0.08, "finetune": 0.20}),
                            seed({"wscda": 0.06, "alpha0": 0.07, "finetune": 0.22})])
    assert out["split"] == "val" and set(out["rows"]) == {"wscda", "alpha0", "finetune"}
    assert out["rows"]["wscda"]["pck@0.05"]["mean"] == pytest.approx(0.08)
    assert out["rows"]["wscda"]["pck@0.1"]["values"] == pytest.approx([0.2, 0.12])
    assert out["rows"]["alpha0"]["chosen"] == ["wscda:3", "wscda:3"]
    assert set(out["contrasts"]) == {"wscda - alpha0", "wscda - finetune"}  # only contrasts of present arms
    c = out["contrasts"]["wscda - alpha0"]
    assert c["values"] == pytest.approx([0.02, -0.01]) and c["seeds_above"] == 1
    table = format_screen(out)
    assert "| (c) WS-CDA from (a) | 8.0 ± 2.8 | 10.0 / 6.0 | 16.0 ± 5.7 | wscda:3, wscda:3 |" in table
    assert "wscda - alpha0 on val (paired per seed): +0.5 ± 2.1 points PCK@0.05, above in 1 of 2 seeds" in table


def test_a_screened_seed_is_scored_on_test_later_without_training_again(files, tmp_path, monkeypatch):
    """--screen trains the named arms (and their start) and scores val only; the same OUT without --screen
    scores each cached model on test once and trains nothing."""
    import flows.benchmarks.wscda_animalpose as bench

    trained, scored = [], []

    def fake_run_arm(arm, settings, files, folder, seed, start, *, progress=False, screen=False):
        trained.append((arm.name, screen))
        ckpt = folder / arm.run / "wscda.best.ckpt"
        result = {"arm": arm.name, "checkpoint": str(ckpt), "step": "wscda", "epoch": 1,
                  "val": {"pck@0.05": 0.1, "pck@0.1": 0.2}, "crops": {}}
        return result if screen else {**result, "test": {"x": 1}}

    def fake_score(checkpoint, test):
        scored.append(Path(checkpoint).parent.name)
        return dict.fromkeys(METRICS, 0.3)

    monkeypatch.setattr(bench, "run_arm", fake_run_arm)
    monkeypatch.setattr(bench, "score", fake_score)
    monkeypatch.setattr(bench, "generated", lambda s, out, seed: {k: files[k] for k in ("human", "synthetic")})
    monkeypatch.setattr(bench, "stale_arms", lambda folder, plan, expected: {})
    data = {k: v for k, v in files.items() if k not in ("human", "synthetic")}
    settings = BenchSettings()
    screened = run_seed(0, settings, data, tmp_path, arms=["wscda", "alpha0"], screen=True)
    assert trained == [("human_only", True), ("wscda", True), ("alpha0", True)] and scored == []
    assert set(screened["arms"]) == {"human_only", "wscda", "alpha0"}
    assert all("test" not in a for a in screened["arms"].values())
    assert not (tmp_path / "seed_0" / "result.json").exists()
    full = run_seed(0, settings, data, tmp_path, arms=["wscda", "alpha0"])
    assert len(trained) == 3 and sorted(scored) == ["alpha0", "human_only", "wscda"]
    assert all(a["test"][PCK] == 0.3 for a in full["arms"].values())
    cached = json.loads((tmp_path / "seed_0" / "arm_wscda.json").read_text())
    assert cached["test"][PCK] == 0.3 and cached["val"]["pck@0.05"] == 0.1
    run_seed(0, settings, data, tmp_path, arms=["wscda", "alpha0"])
    assert len(scored) == 3  # scored once


def test_cli_refuses_an_unknown_preset_before_any_work(tmp_path):
    from animalpose.cli import app

    res = CliRunner().invoke(app, ["bench", "wscda-animalpose", "--preset", "paper", "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "--preset" in res.output
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_smoke_preset_on_real_photographs_caches_every_arm_and_resumes(tmp_path):
    """Every arm at the smoke preset (16 photographs per real split): the JSON cache, the real splits, the
    epoch choice on val, and a second invocation that trains and scores nothing again."""
    if not RELEASE.is_dir():
        pytest.skip(f"real data not found at {RELEASE}")
    settings = replace(PRESETS["smoke"], data=RELEASE)
    result = run_bench(tmp_path, [0], settings)
    seed = tmp_path / "seed_0"
    images = {k: {im["file_name"] for im in json.loads((tmp_path / "data" / f"{k}.json").read_text())["images"]}
              for k in ("horse_train", "horse_val", "horse_test", "cow_train", "sheep_train")}
    assert all(0 < len(v) <= 16 for v in images.values())
    assert not images["horse_test"] & (images["horse_train"] | images["horse_val"])
    for arm in ARMS:
        doc = json.loads((seed / f"arm_{arm}.json").read_text())
        assert doc == result["per_seed"][0]["arms"][arm]
        assert doc["test"]["instances"] > 0 and all(0.0 <= doc["test"][m] <= 1.0 for m in METRICS), arm
        assert Path(doc["checkpoint"]) == seed / ("wscda" if arm == "wscda_pplo" else arm) / f"{doc['step']}.best.ckpt"
        curve = doc["val_curve"][doc["step"]]
        assert len(curve) == 1 and doc["epoch"] == 1 and doc["val"]["pck@0.05"] == curve[0]["pck@0.05"]
    arms = result["per_seed"][0]["arms"]
    paper_domains = {f"disc_acc/{d}" for d in ("human", "animal", "source", "target")}
    assert set(arms["wscda"]["discriminator"]) == paper_domains
    # the three-way discriminator reports synthetic (generated humans and horses) and real (photographs) too
    assert set(arms["synthetic_3way"]["discriminator"]) == paper_domains | {"disc_acc/synthetic", "disc_acc/real"}
    for arm in ("wscda_pplo", "synthetic", "synthetic_3way", "pplo_consistency"):
        assert arms[arm]["step"] == "round_0" and arms[arm]["rounds"][0]["coverage"] > 0, arm
    # the consistency arm retrains (c)'s adversarial step in its own folder: the same step, epoch for epoch
    assert (json.loads((seed / "pplo_consistency" / "wscda.best.json").read_text())
            == json.loads((seed / "wscda" / "wscda.best.json").read_text()))
    assert arms["human_only"]["epoch"] == 1 and set(result["summary"]["rows"]) == set(ARMS)
    assert json.loads((seed / "result.json").read_text())["arms"] == arms
    assert not list(seed.rglob("*.train.ckpt"))  # every arm scored: the resume states are gone, the models kept
    assert all(Path(a["checkpoint"]).is_file() for a in arms.values())

    def stamps():
        return {p: p.stat().st_mtime_ns for p in seed.rglob("*") if p.suffix in (".ckpt", ".json")}

    before = stamps()
    assert run_bench(tmp_path, [0], settings)["per_seed"] == result["per_seed"]
    (seed / "result.json").unlink()  # an interrupted seed: every arm is cached, none is trained or scored again
    before.pop(seed / "result.json")
    again = run_bench(tmp_path, [0], settings)
    assert again["per_seed"][0]["arms"] == arms
    assert {p: t for p, t in stamps().items() if p.name != "result.json"} == before
    # a seed completed before an arm was added: only that arm trains and is scored
    doc = json.loads((seed / "result.json").read_text())
    del doc["arms"]["pplo_consistency"]
    (seed / "result.json").write_text(json.dumps(doc))
    (seed / "arm_pplo_consistency.json").unlink()
    shutil.rmtree(seed / "pplo_consistency")
    added = run_bench(tmp_path, [0], settings)["per_seed"][0]["arms"]
    assert set(added) == set(ARMS) and added["wscda"] == arms["wscda"]
    assert added["pplo_consistency"]["rounds"][0]["coverage"] > 0
    others = {p: t for p, t in before.items() if "pplo_consistency" not in p.name and "pplo_consistency" not in
              p.parent.name}
    assert {p: t for p, t in stamps().items() if p.name != "result.json" and p in others} == others
    with pytest.raises(DataError, match="other settings"):
        run_bench(tmp_path, [0], replace(settings, labelled_per_species=2))
    with pytest.raises(DataError, match=r"prepared\.json.*max_images"):  # the real subset is refused too
        run_bench(tmp_path, [0], replace(settings, max_images=8))
