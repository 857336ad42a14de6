"""Checkpoint writes that survive a kill at any instant: best before last, pending best rebuilt on resume,
stale temporary files removed, a resume checkpoint of another architecture is an error naming it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import animalpose.engine.trainer as trainer_module
from animalpose.engine.checkpoint import load_checkpoint, remove_stale_temporaries
from animalpose.engine.train import train
from animalpose.errors import DataError

STALE = (".last.0badc0de.ckpt", ".best.1234abcd.ckpt")


def _failing_best_write(monkeypatch, exc: BaseException) -> list[str]:
    """Make the first best.ckpt write die half-way: a partial temporary file is left, then ``exc``."""
    real = trainer_module.save_checkpoint
    calls: list[str] = []

    def save(path, **kwargs):
        path = Path(path)
        calls.append(path.name)
        if path.name == "best.ckpt" and calls.count("best.ckpt") == 1:
            (path.parent / ".best.5eed5eed.ckpt").write_bytes(b"PK\x03\x04partial")  # what a kill leaves
            raise exc
        return real(path, **kwargs)

    monkeypatch.setattr(trainer_module, "save_checkpoint", save)
    return calls


def _check_best(result, out: Path) -> None:
    assert result.best_checkpoint == out / "best.ckpt" and result.best_checkpoint.is_file()
    best = load_checkpoint(out / "best.ckpt")
    scores = [h["val/pck@0.05"] for h in result.history]
    assert best["epoch"] == 1 and (best["extra"] or {})["best_score"] == pytest.approx(scores[0])
    assert result.best_score == pytest.approx(max(scores))
    assert not list(out.glob(".*.ckpt"))  # the partial temporary file is gone


def test_kill_inside_the_best_write_keeps_the_best(dots, tiny_config, tmp_path, monkeypatch):
    """The process dies while best.ckpt is written at the end of the only epoch. Saving last first would
    have recorded the epoch as done with its best score, so a resume had nothing left to do and ended
    without best.ckpt; now last.ckpt still holds the mid-epoch state and the resume writes best."""
    # 24 images, batch 4: 6 steps per epoch; last.ckpt is written at step 6, before validation
    cfg = tiny_config(dots["train"], dots["val"], train={"epochs": 1, "checkpoint_every_steps": 6})
    out = tmp_path / "run"
    calls = _failing_best_write(monkeypatch, RuntimeError("killed"))
    with pytest.raises(RuntimeError, match="killed"):
        train(cfg, out_dir=out, progress=False)
    assert calls == ["last.ckpt", "best.ckpt"]  # the step checkpoint, then the failed best: last not rewritten
    assert (out / ".best.5eed5eed.ckpt").is_file() and not (out / "best.ckpt").exists()
    assert load_checkpoint(out / "last.ckpt")["epoch"] == 0
    monkeypatch.undo()
    result = train(cfg, out_dir=out, progress=False, resume=True)
    _check_best(result, out)


def test_interrupt_inside_the_best_write_rebuilds_best_on_resume(dots, tiny_config, tmp_path, monkeypatch):
    """Ctrl-C while best.ckpt is written: the interrupt handler saves last.ckpt (epoch done) without the
    unwritten best score but with the weights marked as a pending best, which resume writes out."""
    cfg = tiny_config(dots["train"], dots["val"], train={"epochs": 1})
    out = tmp_path / "run"
    _failing_best_write(monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out_dir=out, progress=False)
    last = load_checkpoint(out / "last.ckpt")
    assert last["epoch"] == 1 and last["extra"]["best_score"] is None and last["extra"]["pending_best"]
    assert not (out / "best.ckpt").exists()
    monkeypatch.undo()
    result = train(cfg, out_dir=out, progress=False, resume=True)
    _check_best(result, out)
    assert result.best_score == pytest.approx(last["extra"]["pending_best"]["score"])


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    for name in (*STALE, "last.ckpt", ".notes.txt", "keep.1234abcd.ckpt"):
        (tmp_path / name).write_bytes(b"")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted(STALE)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.txt", "keep.1234abcd.ckpt", "last.ckpt"]


def test_resume_removes_stale_temporaries_of_a_killed_run(dots, tiny_config, tmp_path):
    cfg = tiny_config(dots["train"], dots["val"], train={"epochs": 1, "checkpoint_every_steps": 4})
    out = tmp_path / "run"
    assert train(cfg, out_dir=out, progress=False, halt_after_steps=5).halted
    for name in STALE:
        (out / name).write_bytes(b"")
    train(cfg, out_dir=out, progress=False, resume=True)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    assert (out / "best.ckpt").is_file()


@pytest.mark.parametrize("model", [{"channels": 64}, {"name": "hourglass2", "channels": 32}])
def test_resume_from_another_architecture_names_the_file(model, trained, dots, tiny_config, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(trained, out / "last.ckpt")
    cfg = tiny_config(dots["train"], dots["val"], model=model)
    with pytest.raises(DataError) as err:
        train(cfg, out_dir=out, progress=False, resume=True)
    assert err.value.file == str(out / "last.ckpt") and err.value.field == "config.model"
    assert "another architecture" in str(err.value)
    assert sorted(p.name for p in out.iterdir()) == ["last.ckpt"]  # nothing written, no run started


def test_trainer_resume_checks_the_architecture_too(trained, dots, tiny_config, tmp_path):
    """Trainer.resume (used by CC-SSL rounds) refuses a foreign checkpoint with the same error."""
    import torch

    from animalpose.engine.build import build_data, make_model
    from animalpose.engine.trainer import Trainer

    cfg = tiny_config(dots["train"], None, model={"channels": 16})
    data = build_data(cfg)
    t = Trainer(cfg, make_model(cfg, data.schema), data.schema, data.train, {}, tmp_path, device=torch.device("cpu"),
                progress=False)
    with pytest.raises(DataError, match=r"channels 32 \(this run: 16\)") as err:
        t.resume(trained)
    assert err.value.file == str(trained)


def _runs(home: Path, experiment: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                              order_by=["attributes.start_time ASC"])


def test_killed_run_is_marked_killed_on_the_next_start(dots, tiny_config, tmp_path, monkeypatch):
    """A run whose process died (no end()) stays RUNNING in MLflow until the next start in its folder."""
    from animalpose.tracking import Tracker

    monkeypatch.setenv("ANIMALPOSE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = tiny_config(dots["train"], dots["val"], train={"epochs": 1, "checkpoint_every_steps": 4},
                      tracking={"enabled": True, "experiment": "killed"})
    out = tmp_path / "run"
    real_end = Tracker.end

    def die(self, status="FINISHED"):  # SIGKILL: the run is never closed (only the sampling thread stops)
        if self._monitor is not None:
            self._monitor.finish()

    monkeypatch.setattr(Tracker, "end", die)
    train(cfg, out_dir=out, progress=False, halt_after_steps=5)
    monkeypatch.setattr(Tracker, "end", real_end)
    (killed,) = _runs(tmp_path / "home", "killed")
    assert killed.info.status == "RUNNING"
    train(cfg, out_dir=out, progress=False)  # a fresh start, not --resume
    first, second = _runs(tmp_path / "home", "killed")
    assert first.info.run_id == killed.info.run_id and first.info.status == "KILLED"
    assert second.info.status == "FINISHED"


def test_failed_run_is_marked_failed(dots, tiny_config, tmp_path, monkeypatch):
    monkeypatch.setenv("ANIMALPOSE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = tiny_config(dots["train"], dots["val"], train={"epochs": 1},
                      tracking={"enabled": True, "experiment": "failed"})

    def boom(self):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(trainer_module.Trainer, "fit", boom)
    with pytest.raises(RuntimeError, match="out of memory"):
        train(cfg, out_dir=tmp_path / "run", progress=False)
    (run,) = _runs(tmp_path / "home", "failed")
    assert run.info.status == "FAILED"
