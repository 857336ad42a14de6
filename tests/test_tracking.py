"""Tracking: a real local SQLite store gets params, metrics, tables, artifacts and a registered model;
an unreachable server costs a single warning and never an exception."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from animalpose.tracking import Tracker, default_tracking_uri, resolve_uri


def test_default_store_is_absolute_sqlite_under_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ANIMALPOSE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = default_tracking_uri()
    assert uri == f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    assert resolve_uri(None) == uri
    assert resolve_uri("http://example:5000") == "http://example:5000"
    import os

    assert os.environ["DO_NOT_TRACK"] == "true" and os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_run_has_params_metrics_tables_artifacts_and_registered_model(tmp_path, monkeypatch):
    monkeypatch.setenv("ANIMALPOSE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from mlflow import MlflowClient

    ckpt = tmp_path / "best.ckpt"
    ckpt.write_bytes(b"weights")
    with Tracker("unit", "run", tags={"stage": "train"}, system_metrics=False) as tr:
        assert tr.active
        tr.log_params({"train.lr": 0.001, "model.name": "hourglass_quick"})
        tr.log_metrics({"loss": 0.5, "skipped": float("nan")}, step=1)
        tr.log_metrics({"loss": 0.25}, step=2)
        tr.log_table({"nose": 0.5, "tail": float("nan")}, "tables/pck.json")
        tr.log_figure(Figure(), "plots/curve.png")
        tr.log_artifact(ckpt, "model")
        version = tr.register_model("model", "unit-model")
        child = tr.child("round-1")
        child.log_metrics({"pseudo_labels": 10}, step=0)
        child.end()
    assert version == "1"
    client = MlflowClient(tr.uri)
    run = client.get_run(tr.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"train.lr": "0.001", "model.name": "hourglass_quick"}
    assert run.data.metrics == {"loss": 0.25}
    assert [m.value for m in client.get_metric_history(tr.run_id, "loss")] == [0.5, 0.25]
    assert run.data.tags["stage"] == "train" and run.data.tags["git.commit"]
    assert {a.path for a in client.list_artifacts(tr.run_id)} == {"model", "plots", "tables"}
    assert [a.path for a in client.list_artifacts(tr.run_id, "model")] == ["model/best.ckpt"]
    versions = client.search_model_versions("name='unit-model'")
    assert [v.run_id for v in versions] == [tr.run_id]
    kid = client.get_run(child.run_id)
    assert kid.data.tags["mlflow.parentRunId"] == tr.run_id and kid.data.metrics == {"pseudo_labels": 10}
    # the store really is the sqlite file under the data dir, and artifacts sit beside it
    assert (tmp_path / "home" / "mlflow.db").is_file()
    assert (tmp_path / "home" / "mlartifacts").is_dir()


def test_unreachable_server_warns_once_and_never_raises(capsys):
    tr = Tracker("x", "y", uri="http://127.0.0.1:9", system_metrics=False).start()
    assert not tr.active
    tr.log_params({"a": 1})
    tr.log_metrics({"loss": 1.0}, step=1)
    assert tr.register_model("model", "m") is None
    tr.child("c").log_metrics({"a": 1})
    tr.end()
    err = capsys.readouterr().err
    assert err.count("warning: MLflow tracking at http://127.0.0.1:9") == 1


def test_disabled_tracker_is_a_no_op(capsys):
    tr = Tracker("x", enabled=False).start()
    tr.log_metrics({"a": 1.0})
    tr.end()
    assert not tr.active and capsys.readouterr().err == ""


@pytest.mark.parametrize("status_exc", [RuntimeError])
def test_failed_block_marks_run_failed(tmp_path, monkeypatch, status_exc):
    monkeypatch.setenv("ANIMALPOSE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from mlflow import MlflowClient

    with pytest.raises(status_exc), Tracker("unit", "boom", system_metrics=False) as tr:
        raise status_exc("boom")
    assert MlflowClient(tr.uri).get_run(tr.run_id).info.status == "FAILED"


def test_artifacts_of_any_sqlite_store_sit_beside_its_database_not_in_the_working_folder(tmp_path, monkeypatch):
    """Regression: a store given by URI (flows, tests) put artifacts in ./mlruns of the current folder."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"weights")
    with Tracker("elsewhere", "run", uri=uri, system_metrics=False) as tr:
        tr.log_artifact(ckpt, "model")
    assert list(cwd.iterdir()) == []
    assert len(list((tmp_path / "store" / "mlartifacts" / "elsewhere").rglob("model.ckpt"))) == 1


def test_a_child_in_a_with_block_is_one_run_and_adopt_nests_a_library_run(tmp_path, monkeypatch):
    """``with tracker.child(...)`` (already started) opens one run, not two; ``adopt`` nests a run the library
    created on its own (engine.train's) under a flow's stage."""
    monkeypatch.setenv("ANIMALPOSE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from mlflow import MlflowClient

    with Tracker("unit", "parent", system_metrics=False) as parent:
        with parent.child("round 0") as child:
            child.log_metrics({"kept": 3})
        with Tracker("unit", "trained alone", system_metrics=False) as alone:
            pass
        parent.adopt(alone.run_id)
        parent.adopt(None)  # nothing to adopt: no error
    client = MlflowClient(parent.uri)
    runs = client.search_runs([parent.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["parent", "round 0", "trained alone"]
    by_name = {r.info.run_name: r for r in runs}
    assert by_name["round 0"].info.status == "FINISHED"
    assert by_name["round 0"].data.tags["mlflow.parentRunId"] == parent.run_id
    assert by_name["trained alone"].data.tags["mlflow.parentRunId"] == parent.run_id


def test_a_resume_run_id_from_another_store_starts_a_new_run_and_warns(tmp_path, caplog):
    """Resume state written against store A, replayed against store B: the run id is not in B, so B gets a
    new run (tracking stays on) and a WARNING names the id; store A's own id still resumes in A."""
    from mlflow import MlflowClient

    a, b = (f"sqlite:///{tmp_path / name / 'mlflow.db'}" for name in ("a", "b"))
    with Tracker("unit", "first", uri=a, system_metrics=False) as first:
        first.log_metrics({"loss": 1.0})
    with caplog.at_level("WARNING", logger="animalpose.tracking"):
        moved = Tracker("unit", "first", uri=b, resume_run_id=first.run_id, system_metrics=False).start()
    assert moved.active and moved.resume_missed and moved.run_id != first.run_id
    assert any(first.run_id in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    moved.log_metrics({"loss": 0.5})
    moved.end()
    assert MlflowClient(b).get_run(moved.run_id).data.metrics == {"loss": 0.5}
    again = Tracker("unit", "first", uri=a, resume_run_id=first.run_id, system_metrics=False).start()
    assert again.run_id == first.run_id and not again.resume_missed
    again.end()


def test_experiments_open_in_model_training_mode_and_the_first_version_is_champion(tmp_path):
    """MLflow 3's UI shows an experiment in its model-training view when the experiment carries
    ``mlflow.experimentKind = custom_model_development``; the first registered version gets ``champion``
    and keeps it when a second is registered; each version carries its description."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ckpt = tmp_path / "m.ckpt"
    ckpt.write_bytes(b"w")
    versions = []
    for text in ("first: PCK 40 % on test.json", "second: PCK 50 % on test.json"):
        with Tracker("kind", "run", uri=uri, system_metrics=False) as tr:
            tr.log_artifact(ckpt, "model")
            versions.append(tr.register_model("model/m.ckpt", "kind-model", description=text))
    client = MlflowClient(uri)
    assert client.get_experiment_by_name("kind").tags["mlflow.experimentKind"] == "custom_model_development"
    assert versions == ["1", "2"]
    assert str(client.get_model_version_by_alias("kind-model", "champion").version) == "1"
    assert client.get_model_version("kind-model", "2").description == "second: PCK 50 % on test.json"
