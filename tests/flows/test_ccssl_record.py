"""What a smoke CC-SSL flow leaves to look at: MLflow stage runs that compare in one click, role-named
Prefect tasks, an artifact that renders, one console line per stage, and the same record in a second
store that reuses the first run's resume state (checkpoints, ``state.json``, task caches)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from mlflow import MlflowClient

from flows import console
from flows.ccssl import ccssl_flow
from flows.presets import PRESET_DIR as PRESETS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

MODEL_STAGES = {"source-only": ("source-only", "0"), "round-1": ("round", "1"), "round-2": ("round", "2"),
                "control": ("control", "2"), "oracle": ("oracle", "3")}
# the dataset folders' names, e.g. horse-cad-source-val-16x64-seed1-1a2b3c4d
HASHED = re.compile(r"seed\d+-[0-9a-f]{8}")


def _flow_record(client: MlflowClient, run_id: str) -> dict:
    parent = client.get_run(run_id)
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")
    return {"parent": parent, "stages": {r.info.run_name: r for r in children}}


def _task_run_names(flow_run_id: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return [r.name for r in runs]


def _check_stage_runs(client: MlflowClient, record: dict) -> set[str]:
    """Every model stage carries one tag pair and the same evaluation metrics by data set; returns the keys."""
    stages = record["stages"]
    assert set(MODEL_STAGES) | {"synth", "register"} <= set(stages)
    keys = None
    for name, (kind, number) in MODEL_STAGES.items():
        run = stages[name]
        assert (run.data.tags["stage"], run.data.tags["round"]) == (kind, number)
        scored = {k for k in run.data.metrics if k.split("/")[0] in ("target_test", "source_val", "target_val")}
        keys = scored if keys is None else keys
        assert scored == keys, name  # the same metrics on every stage: one click compares them
        assert not any(HASHED.search(k) for k in run.data.metrics), name
        tables = [a.path for a in client.list_artifacts(run.info.run_id, "tables")]
        assert "tables/target_test_pck_per_joint.json" in tables, name
        # pictures on the target: the fixed gallery, the per-joint bars and the test clip's labelled GIF
        pictures = {a.path for a in client.list_artifacts(run.info.run_id, "pictures")}
        assert pictures == {f"pictures/{name}.gif", "pictures/target_test_gallery.png",
                            "pictures/target_test_pck_per_joint.png"}, name
    assert {"target_test/pck_crop_at_0.05", "source_val/pck_crop_at_0.05", "target_val/pck_crop_at_0.05"} <= keys
    return keys


def test_smoke_flow_record_names_tasks_console_and_a_second_store(prefect_harness, tmp_path, data_home,
                                                                   read_artifact, capsys, caplog):
    preset = tmp_path / "smoke.yaml"
    # the smoke preset, with a clip among the test horses: a video target, whose stages each draw a labelled GIF
    text = (PRESETS / "smoke.yaml").read_text().replace("../", f"{PRESETS.parent}/")
    preset.write_text(text.replace("target_test: {n: 16, style: photo, size: 64}",
                                   "target_test: {n: 16, style: photo, size: 64, clips: 1, frames: 6}"))
    first, second = (f"sqlite:///{tmp_path / name / 'mlflow.db'}" for name in ("first", "second"))
    kwargs = {"species": "horse", "preset": str(preset), "out_dir": tmp_path / "out", "register_as": "ccssl-rec"}
    console.configure(json_output=True)  # what --json (or a pipe) gets: one line per stage, no bars
    capsys.readouterr()

    summary = ccssl_flow(**kwargs, tracking_uri=first)

    # console: exactly one line per stage, in order, each with its headline
    lines = [ln for ln in capsys.readouterr().err.splitlines() if " stage " in ln]
    assert [ln.split(" stage ")[1].split(":")[0] for ln in lines] == [
        "synth", "source-only", "round-1", "round-2", "control", "oracle", "register"]
    for ln, key in zip(lines[1:6], ("source_only", None, None, None, "oracle"), strict=True):
        assert ln.rstrip().endswith(" s)")
        if key:
            assert "target test PCK@0.05" in ln and f"{100 * summary[key]:.1f} %" in ln
    assert f"{100 * summary['rounds'][1]:.1f} %" in lines[3]
    # the keep-the-better rule (the smoke preset's target has labelled val frames): its sentence on the line
    assert summary["keep_better"]["sentence"] in lines[4]

    client = MlflowClient(first)
    record = _flow_record(client, summary["mlflow_run_id"])
    keys = _check_stage_runs(client, record)
    stages = record["stages"]
    for name, value in (("source-only", summary["source_only"]), ("round-2", summary["rounds"][1]),
                        ("oracle", summary["oracle"])):
        assert stages[name].data.metrics["target_test/pck_crop_at_0.05"] == pytest.approx(value)
    # the library's nested round runs are numbered from 1 as well
    nested = client.search_runs([record["parent"].info.experiment_id],
                                f"tags.mlflow.parentRunId = '{stages['round-2'].info.run_id}'")
    assert "round 2" in {r.info.run_name for r in nested}
    # the engine's own training run (adopted under source-only): pooled val metrics, no hash-named copies
    (pretrain_run,) = client.search_runs([record["parent"].info.experiment_id],
                                         f"tags.mlflow.parentRunId = '{stages['source-only'].info.run_id}'")
    assert "val/pck_at_0.05" in pretrain_run.data.metrics
    assert not any(HASHED.search(k) for k in pretrain_run.data.metrics)

    parent = record["parent"]
    results = {a.path for a in client.list_artifacts(parent.info.run_id, "results")}
    assert results == {"results/results_table.json", "results/stages.png"}
    table = json.loads(Path(client.download_artifacts(parent.info.run_id, "results/results_table.json",
                                                      str(tmp_path))).read_text())
    column = {name: [row[i] for row in table["data"]] for i, name in enumerate(table["columns"])}
    assert column["stage"] == ["source-only", "round-1", "round-2", "control", "oracle"]
    assert column["target_test/pck_crop@0.05"] == pytest.approx(
        [summary["source_only"], *summary["rounds"], summary["control"], summary["oracle"]])
    exp = client.get_experiment(parent.info.experiment_id)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"

    # the registry: champion from the first version on; its text holds the scores and the data
    mv = client.get_model_version_by_alias("ccssl-rec", "champion")
    assert str(mv.version) == summary["model_version"] == "1"
    assert f"round-2 {100 * summary['rounds'][1]:.1f} %" in mv.description
    assert "target_test: " in mv.description and "fingerprint" in mv.description
    assert str(client.get_model_version_by_alias("horse-source", "champion").version) == "1"

    # Prefect: tasks named by role, rounds from 1, no hash-suffixed names
    names = _task_run_names(parent.data.tags["prefect.flow_run_id"])
    assert {"pretrain-source", "pretrain-oracle", "ccssl-round-1", "ccssl-round-2", "evaluate-round-2-target-test",
            "evaluate-source-only-source-val", "evaluate-oracle-target-val", "synth-target-photo",
            "synth-test-photo", "synth-source-cad", "keep-the-better", "evaluate-control-target-test"} <= set(names)
    role = re.compile(r"synth-(source|source-val|target|test|target-val)-(cad|photo)|pretrain-(source|oracle)"
                      r"|ccssl-round-[12]|keep-the-better"
                      r"|evaluate-(source-only|round-[12]|control|oracle)-(target-test|source-val|target-val)"
                      r"|clip-(source-only|round-[12]|control|oracle)")
    assert [n for n in names if not role.fullmatch(n)] == []  # nothing named by hash (evaluate-36c)
    art = read_artifact("ccssl-horse").data
    assert "PCK\\@0.05" in art and not re.search(r"[A-Za-z0-9]@", art)  # no bare "x@y" for a mailto autolink
    assert "animalpose ui --backend-store-uri" in art

    # a second store, the same checkpoints and state: every stage run is recorded there too
    with caplog.at_level(logging.WARNING, logger="animalpose.tracking"):
        again = ccssl_flow(**kwargs, tracking_uri=second)
    assert again["rounds"] == summary["rounds"] and again["oracle"] == summary["oracle"]
    assert any("is not in the store" in r.getMessage() for r in caplog.records)
    client2 = MlflowClient(second)
    record2 = _flow_record(client2, again["mlflow_run_id"])
    assert _check_stage_runs(client2, record2) == keys
    for name in ("source-only", "oracle"):  # the engine's training runs, new in this store, with their history
        (trained,) = client2.search_runs([record2["parent"].info.experiment_id],
                                         f"tags.mlflow.parentRunId = '{record2['stages'][name].info.run_id}'")
        assert "val/pck_at_0.05" in trained.data.metrics and trained.data.params
    round2 = record2["stages"]["round-2"].data.metrics
    assert "pseudo/num_kept" in round2  # the finished round's own record, replayed into the new store
    for model in ("ccssl-rec", "horse-source", "horse-oracle"):
        assert str(client2.get_model_version_by_alias(model, "champion").version) == "1"
    assert {"results/results_table.json", "results/stages.png"} == {
        a.path for a in client2.list_artifacts(again["mlflow_run_id"], "results")}
