"""The scheduled-retraining flow against a real local MLflow registry (SQLite in tmp)."""

from pathlib import Path

import pytest
from mlflow import MlflowClient

import flows.retrain as retrain
from animalpose.data.watch import TargetWatcher
from animalpose.registry import current_champion
from animalpose.tracking import Tracker


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    ckpt = root / "model.ckpt"
    ckpt.write_bytes(b"not really weights")
    return f"sqlite:///{root / 'mlflow.db'}", ckpt


def register(uri: str, name: str, ckpt: Path) -> str:
    t = Tracker("retrain-test", "model", uri=uri, system_metrics=False).start()
    t.log_artifact(ckpt, "model")
    version = t.register_model(f"model/{ckpt.name}", name)
    t.end()
    assert version is not None
    return version


def target_folder(tmp_path: Path, n: int = 2) -> Path:
    folder = tmp_path / "incoming"
    folder.mkdir()
    for i in range(n):
        (folder / f"frame{i}.png").write_bytes(bytes([i]) * 100)
    return folder


def fake_scores(monkeypatch, scores: dict[str, float]) -> list[str]:
    scored = []

    def score(uri, eval_data, tracking_uri):
        scored.append(uri)
        return scores[uri.rsplit("/", 1)[1]]

    monkeypatch.setattr(retrain, "score_model", score)
    return scored


def fake_adapt(monkeypatch, store, calls: list):
    ckpt = store[1]

    def adapt(method, species, preset, folder, model_name, tracking_uri, source_model, fingerprint):
        calls.append({"folder": folder, "source_model": source_model, "fingerprint": fingerprint})
        return register(tracking_uri, model_name, ckpt)

    monkeypatch.setattr(retrain, "adapt_challenger", adapt)


def run(tmp_path, store, name, folder):
    return retrain.retrain_flow(species="horse", target_folder=folder, eval_data=tmp_path / "eval",
                                model_name=name, state_file=tmp_path / "seen.json", tracking_uri=store[0])


def test_champion_is_kept_when_the_challenger_is_worse(prefect_harness, tmp_path, store, monkeypatch, read_artifact):
    uri, ckpt = store
    name = "retrain-keep"
    client = MlflowClient(tracking_uri=uri)
    v1 = register(uri, name, ckpt)
    client.set_registered_model_alias(name, "champion", v1)
    calls: list = []
    fake_adapt(monkeypatch, store, calls)
    scored = fake_scores(monkeypatch, {"1": 0.62, "2": 0.55})
    folder = target_folder(tmp_path)

    out = run(tmp_path, store, name, folder)

    assert out["status"] == "kept"
    assert calls[0]["source_model"] == f"models:/{name}@champion"  # adapted from the champion
    assert sorted(scored) == [f"models:/{name}/1", f"models:/{name}/2"]  # both on the same eval set
    assert current_champion(client, name) == "1"
    assert out["decision"]["challenger_version"] == "2" and out["decision"]["winner"] == "champion"
    assert out["decision"]["delta"] == pytest.approx(0.55 - 0.62)
    art = read_artifact("retrain-ccssl-horse")
    assert "champion v1 kept" in art.data and "by 0.0700" in art.data
    # the files are now seen: the next scheduled run does nothing
    again = run(tmp_path, store, name, folder)
    assert again["status"] == "no-new-data" and len(calls) == 1
    assert len(client.search_model_versions(f"name='{name}'")) == 2


def test_a_better_challenger_takes_the_alias(prefect_harness, tmp_path, store, monkeypatch, read_artifact):
    uri, ckpt = store
    name = "retrain-promote"
    client = MlflowClient(tracking_uri=uri)
    v1 = register(uri, name, ckpt)
    client.set_registered_model_alias(name, "champion", v1)
    calls: list = []
    fake_adapt(monkeypatch, store, calls)
    fake_scores(monkeypatch, {"1": 0.50, "2": 0.71})

    out = run(tmp_path, store, name, target_folder(tmp_path))

    assert out["status"] == "promoted" and current_champion(client, name) == "2"
    assert out["decision"]["delta"] == pytest.approx(0.21)
    assert "challenger v2 promoted" in read_artifact("retrain-ccssl-horse").data


def test_nothing_happens_without_new_files(prefect_harness, tmp_path, store, monkeypatch, read_artifact):
    name = "retrain-idle"
    calls: list = []
    fake_adapt(monkeypatch, store, calls)
    fake_scores(monkeypatch, {})
    folder = target_folder(tmp_path, n=3)
    TargetWatcher(folder, tmp_path / "seen.json").mark_seen(["frame0.png", "frame1.png", "frame2.png"])

    out = run(tmp_path, store, name, folder)

    assert out == {"status": "no-new-data", "folder": str(folder), "new_files": []}
    assert calls == []
    assert MlflowClient(tracking_uri=store[0]).search_registered_models(f"name='{name}'") == []
    assert "nothing to do" in read_artifact("retrain-ccssl-horse").data
    # a changed file counts as new again
    (folder / "frame1.png").write_bytes(b"changed" * 50)
    fake_scores(monkeypatch, {"1": 0.4})
    out = run(tmp_path, store, name, folder)
    assert out["new_files"] == ["frame1.png"] and out["status"] == "promoted"
    assert calls[0]["source_model"] is None  # no champion yet: adapt from scratch, first model wins


def test_prepare_target_turns_a_folder_into_readable_unlabelled_data(tmp_path):
    import cv2
    import numpy as np

    from animalpose.data.readers import read_dataset

    folder = tmp_path / "drop"
    (folder / "sub").mkdir(parents=True)
    cv2.imwrite(str(folder / "a.png"), np.zeros((30, 40, 3), np.uint8))
    cv2.imwrite(str(folder / "sub" / "b.jpg"), np.zeros((50, 20, 3), np.uint8))
    (folder / "clip.mp4").write_bytes(b"\0" * 10)
    (folder / "notes.txt").write_text("ignored")

    targets = retrain.prepare_target.fn(folder, tmp_path / "prep", "tigdog")

    assert targets[1:] == [folder / "clip.mp4"]
    ds = read_dataset(targets[0], "auto", "tigdog")
    boxes = {Path(r.image).name: r.bbox for r in ds.records}
    assert boxes == {"a.png": (0.0, 0.0, 40.0, 30.0), "b.jpg": (0.0, 0.0, 20.0, 50.0)}
    assert all((r.keypoints == 0).all() and r.keypoints.shape == (18, 3) for r in ds.records)
