"""The ccssl flow end to end on the smoke preset: a crash in round 2, a resume, the artifact, MLflow, the registry.

One flow's worth of compute serves both checks: the first run is killed inside round 2 (after round 1
finished), the second run must resume at round 2 without redoing generation, pretraining or round 1.
"""

import pytest
from mlflow import MlflowClient

import animalpose.adapt.ccssl as ccssl_lib
import animalpose.engine.train as engine_train
import synthetic
from flows.ccssl import ccssl_flow, gap_recovery
from flows.presets import PRESET_DIR as PRESETS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def test_gap_recovery_formula():
    assert gap_recovery(0.4, 0.55, 0.6) == pytest.approx(0.75)
    assert gap_recovery(0.4, 0.35, 0.6) == pytest.approx(-0.25)
    assert gap_recovery(0.4, 0.5, None) is None
    assert gap_recovery(0.6, 0.7, 0.6) is None  # no gap to recover


def test_killed_in_round_two_resumes_there_and_finishes(prefect_harness, tmp_path, data_home, monkeypatch,
                                                        read_artifact):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    calls = {"generate": 0, "train": 0, "pseudo": [], "epochs": [], "val": []}
    # the smoke preset with the oracle trained for CC-SSL's total epochs (1 + 2 rounds x 1) instead of 1
    preset = tmp_path / "smoke_oracle.yaml"
    text = (PRESETS / "smoke.yaml").read_text().replace("../", f"{PRESETS.parent}/")
    preset.write_text(text + "oracle_epochs: 3\n")
    real_gen, real_train, real_pseudo = synthetic.generate_dataset, engine_train.train, ccssl_lib.generate_pseudo_labels
    kill = {"armed": True}

    def gen(**kw):
        calls["generate"] += 1
        return real_gen(**kw)

    def train(*a, **kw):
        calls["train"] += 1
        calls["epochs"].append(a[0].train.epochs)
        calls["val"].append([p.name for p in a[0].data.val])
        return real_train(*a, **kw)

    def pseudo(*a, **kw):
        round_index = kw["seed"] % 1000  # the library seeds round r with train.seed * 1000 + r
        calls["pseudo"].append(round_index)
        if round_index == 1 and kill["armed"]:
            kill["armed"] = False
            raise RuntimeError("simulated kill in round 2")
        return real_pseudo(*a, **kw)

    monkeypatch.setattr(synthetic, "generate_dataset", gen)
    monkeypatch.setattr(engine_train, "train", train)
    monkeypatch.setattr(ccssl_lib, "generate_pseudo_labels", pseudo)
    kwargs = {"species": "horse", "preset": str(preset), "tracking_uri": uri, "out_dir": tmp_path / "out",
              "register_as": "ccssl-horse-test"}
    client = MlflowClient(tracking_uri=uri)

    state = ccssl_flow(**kwargs, return_state=True)
    assert state.is_failed() and "simulated kill in round 2" in state.message
    assert calls["pseudo"] == [0, 1] and calls["train"] == 1 and calls["generate"] == 5
    (failed,) = client.search_runs([client.get_experiment_by_name("ccssl").experiment_id],
                                   "tags.`animalpose.flow` = 'ccssl-horse'")
    assert failed.info.status == "FAILED"
    assert failed.data.tags["failed_stage"] == "round-2" and "simulated kill" in failed.data.tags["error"]
    assert client.search_registered_models("name='ccssl-horse-test'") == []  # nothing half-done registered

    summary = ccssl_flow(**kwargs)
    # resumed at round 2: no new data, no new pretraining, round 1 not pseudo-labelled again
    assert calls["pseudo"] == [0, 1, 1]
    assert calls["generate"] == 5
    assert calls["train"] == 2  # the oracle, trained once, after the rounds
    assert calls["epochs"] == [1, 3]  # pretraining: pretrain_epochs; the oracle: the preset's oracle_epochs
    # the source model chooses its epoch on the source val set, the oracle on target-val, neither on the test set
    (src_val,), (orc_val,) = calls["val"]
    assert "-cad-source-val-" in src_val and "-photo-target-val-" in orc_val

    assert len(summary["rounds"]) == 2
    for v in [summary["source_only"], *summary["rounds"], summary["oracle"]]:
        assert 0.0 <= v <= 1.0
    expected = gap_recovery(summary["source_only"], summary["rounds"][-1], summary["oracle"])
    assert summary["gap_recovery"] == expected

    art = read_artifact("ccssl-horse")
    for row in ("source-only", "CC-SSL round 1", "CC-SSL round 2", "oracle", "gap recovery"):
        assert row in art.data
    assert summary["mlflow_run_id"] in art.data and "animalpose ui --backend-store-uri" in art.data

    parent = client.get_run(summary["mlflow_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["prefect.flow_run_id"]
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    names = {r.info.run_name for r in children}
    assert {"synth", "source-only", "round-1", "round-2", "oracle", "register"} <= names
    round2 = next(r for r in children if r.info.run_name == "round-2")
    nested = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{round2.info.run_id}'")
    assert [r.info.run_name for r in nested] == ["round 2"]  # the library's own nested round run, 1-based

    (mv,) = client.search_model_versions("name='ccssl-horse-test'")
    assert str(mv.version) == summary["model_version"] == "1" and mv.run_id == parent.info.run_id
