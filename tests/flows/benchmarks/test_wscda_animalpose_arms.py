"""`bench wscda-animalpose --arms` and its per-arm cache (issue 29): chosen arms train into an existing seed folder
(with the arms they start from), a cached arm is reused, and an arm cached or half-trained with other crop
paddings (the synthetic arms before per-source padding: cows and sheep at the generated horses' 1.25) is refused
or, with --retrain-stale, set aside and trained again. Training is replaced by a stand-in that records its calls;
the configs, data files and crop paddings are the bench's own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import flows.benchmarks.wscda_animalpose as bench
from animalpose.data.coco_writer import write_coco
from animalpose.data.records import PoseRecord
from animalpose.errors import DataError
from flows.benchmarks.arm_cache import stale_arms, with_starts

SETTINGS = bench.BenchSettings()


def _coco(path: Path, schema: str, joints: int, generated: bool) -> Path:
    kp = np.zeros((joints, 3), np.float32)
    kp[:, :2], kp[:, 2] = 10.0, 2
    meta = {"factors": {"species": "horse"}} if generated else {}
    rec = PoseRecord(str(path.parent / "x.png"), kp, schema, bbox=(0.0, 0.0, 20.0, 20.0), image_size=(32, 32),
                     image_id=1, meta=meta)
    return write_coco([rec], path, schema)


@pytest.fixture
def data(tmp_path):
    """The bench's data keys as one-record COCO files: photographed horses, cows and sheep; generated humans."""
    root = tmp_path / "files"
    root.mkdir()
    out = {k: _coco(root / f"{k}.json", "animalpose", 20, False)
           for k in ("horse_train", "horse_val", "horse_test", "cow", "sheep")}
    return out, {"human": _coco(root / "human.json", "coco", 17, True),
                 "synthetic": _coco(root / "synthetic.json", "animalpose", 20, True)}


@pytest.fixture
def trained(monkeypatch, data):
    """The arms trained by the stand-in, in order; it writes what run_arm returns, crops included."""
    _, gen = data
    calls: list[str] = []

    def run_arm(arm, settings, files, folder, seed, start, *, progress=False, screen=False):
        calls.append(arm.name)
        (folder / arm.run).mkdir(exist_ok=True)
        assert (start is None) == (arm.start is None)
        out = {"arm": arm.name, "checkpoint": str(folder / arm.run / "best.ckpt"),
               "test": dict.fromkeys(bench.METRICS, 0.1 * len(calls)),
               "crops": bench.expected_crops(arm, settings, files, seed)}
        if arm.name in bench.DISCRIMINATORS:
            out["discriminator"] = {"disc_acc/human": 0.5}
        return out

    monkeypatch.setattr(bench, "run_arm", run_arm)
    monkeypatch.setattr(bench, "generated", lambda settings, out, seed: gen)
    return calls


def _seed(out, data, **kw):
    return bench.run_seed(0, SETTINGS, data[0], out, **kw)


def _legacy(path: Path) -> None:
    """The arm's cached result as written before per-source padding: no crops record."""
    doc = json.loads(path.read_text())
    del doc["crops"]
    path.write_text(json.dumps(doc))


def test_chosen_arms_train_with_their_start_and_a_rerun_trains_only_new_ones(tmp_path, data, trained):
    res = _seed(tmp_path, data, arms=["synthetic_3way", "pplo_consistency"])
    assert trained == ["human_only", "synthetic_3way", "pplo_consistency"]  # (a) first: both start from it
    assert set(res["arms"]) == set(trained) and res["gap_recovery"] is None
    assert not (tmp_path / "seed_0" / "result.json").exists()  # the seed is not complete
    # the synthetic arms crop the photographed cows and sheep at 1.5, the generated horses at 1.25
    crops = res["arms"]["synthetic_3way"]["crops"]
    assert crops == {"human": [1.25], "animals": [1.25, 1.5], "target": [1.5]}
    assert res["arms"]["pplo_consistency"]["crops"]["animals"] == [1.5]
    _seed(tmp_path, data, arms=["synthetic", "human_only"])
    assert trained[3:] == ["synthetic"]  # (a) is cached
    full = _seed(tmp_path, data)
    assert sorted(trained[4:]) == sorted(set(bench.ARMS) - {"human_only", "synthetic_3way", "pplo_consistency",
                                                           "synthetic"})
    assert set(full["arms"]) == set(bench.ARMS) and (tmp_path / "seed_0" / "result.json").is_file()
    n = len(trained)
    assert _seed(tmp_path, data, arms=["oracle"])["arms"] == full["arms"] and len(trained) == n


def test_an_arm_cached_with_other_crops_is_refused_or_set_aside_and_retrained(tmp_path, data, trained):
    _seed(tmp_path, data)
    seed = tmp_path / "seed_0"
    before = json.loads((seed / "arm_synthetic.json").read_text())
    _legacy(seed / "arm_synthetic.json")  # the synthetic arm as cached before per-source padding
    _legacy(seed / "arm_human_only.json")  # one padding per stream: cropped as today, still valid
    _legacy(seed / "arm_wscda.json")
    n = len(trained)
    # the seed is complete, but its synthetic row would mix two crop setups: refused before any work
    with pytest.raises(DataError, match=r"arm_synthetic\.json.*crops.*synthetic: recorded before per-source"):
        _seed(tmp_path, data, arms=["oracle"])
    assert len(trained) == n
    res = _seed(tmp_path, data, arms=["synthetic"], retrain_stale=True)
    assert trained[n:] == ["synthetic"]
    aside = seed / "stale" / "0"
    assert sorted(p.name for p in aside.iterdir()) == ["arm_synthetic.json", "result.json", "synthetic"]
    assert "crops" not in json.loads((aside / "arm_synthetic.json").read_text())
    assert res["arms"]["synthetic"]["crops"] == before["crops"] and (seed / "result.json").is_file()


def test_a_half_trained_run_with_other_crops_and_the_arms_on_it_are_stale(tmp_path, data, trained):
    _seed(tmp_path, data, arms=["human_only"])
    seed = tmp_path / "seed_0"
    # synthetic_3way interrupted after its adversarial step, before per-source padding (no crops in its state)
    (seed / "synthetic_3way").mkdir()
    (seed / "synthetic_3way" / "state.json").write_text(json.dumps({"stages": ["wscda"], "rounds": []}))
    with pytest.raises(DataError, match="synthetic_3way"):
        _seed(tmp_path, data, arms=["synthetic_3way"])
    _seed(tmp_path, data, arms=["synthetic_3way"], retrain_stale=True)
    assert trained == ["human_only", "synthetic_3way"]
    assert (seed / "stale" / "0" / "synthetic_3way" / "state.json").is_file()
    # a stale start model taints every arm trained from it, and a shared run folder both of its arms
    plan = bench.plan_arms(6)
    _seed(tmp_path, data, arms=["wscda", "wscda_pplo", "finetune"])
    doc = json.loads((seed / "arm_human_only.json").read_text())
    doc["crops"]["human"] = [1.5]
    (seed / "arm_human_only.json").write_text(json.dumps(doc))
    files = {**data[0], **data[1]}
    why = stale_arms(seed, plan, lambda arm: bench.expected_crops(arm, SETTINGS, files, 0))
    assert set(why) == {"human_only", "wscda", "wscda_pplo", "finetune", "synthetic_3way"}
    assert "now" in why["human_only"] and "human_only" in why["finetune"]
    assert with_starts(["pplo_consistency"], plan) == {"pplo_consistency", "human_only"}


def test_summary_and_table_over_the_arms_every_seed_has():
    seeds = [{"arms": {a: {"test": dict.fromkeys(bench.METRICS, v)} for a, v in
                       (("human_only", 0.1), ("synthetic", 0.3), ("synthetic_3way", 0.2 + 0.1 * i))},
              "gap_recovery": None} for i in range(2)]
    for s in seeds:
        s["arms"]["synthetic_3way"]["discriminator"] = {"disc_acc/real": 0.6}
    seeds[1]["arms"]["oracle"] = {"test": dict.fromkeys(bench.METRICS, 0.9)}  # in one seed only: left out
    out = bench.summarise(seeds)
    assert out["discriminator_synthetic_3way"]["disc_acc/real"]["mean"] == pytest.approx(0.6)
    assert "discriminator_wscda" not in out
    assert list(out["rows"]) == ["human_only", "synthetic", "synthetic_3way"]
    assert list(out["contrasts"]) == ["synthetic_3way - synthetic"]
    assert out["contrasts"]["synthetic_3way - synthetic"]["values"] == pytest.approx([-0.1, 0.0])
    assert out["paper_ordering_b_c_d"] is None and out["gap_recovery_of_means"] is None
    table = bench.format_table(out)
    assert "| (d) + generated horses, synthetic / real discriminator | 25.0 ± 7.1 |" in table
    assert "(b) < (c) < (d) holds -; gap recovery of (d), (d - b) / (e - b) of the means: -" in table


def test_cli_refuses_an_unknown_arm_before_any_work(tmp_path):
    from animalpose.cli import app

    res = CliRunner().invoke(app, ["bench", "wscda-animalpose", "--arms", "synthetic_3way,nope",
                                   "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "--arms" in res.output and "nope" in res.output
    assert not (tmp_path / "o").exists()
