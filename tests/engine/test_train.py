"""Training: exact resume, tracking (real SQLite store; unreachable server), bad input before work, DDP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from animalpose.cli import app
from animalpose.engine.checkpoint import load_checkpoint
from animalpose.engine.train import train

REPO = Path(__file__).resolve().parents[2]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_interrupted_and_resumed_run_ends_with_identical_weights(dots, tiny_config, tmp_path):
    # 24 images, batch 4: 6 steps per epoch, 12 in all; a checkpoint every 4 steps.
    cfg = tiny_config(dots["train"], dots["val"], train={"checkpoint_every_steps": 4})
    full = train(cfg, out_dir=tmp_path / "full", progress=False)
    killed = train(cfg, out_dir=tmp_path / "resumed", progress=False, halt_after_steps=5)
    assert killed.halted
    assert load_checkpoint(tmp_path / "resumed" / "last.ckpt")["step"] == 4  # mid-epoch 1: redo step 5
    resumed = train(cfg, out_dir=tmp_path / "resumed", progress=False, resume=True)
    a, b = _weights(full.last_checkpoint), _weights(resumed.last_checkpoint)
    assert load_checkpoint(resumed.last_checkpoint)["step"] == 12
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h["train/loss"] for h in full.history] == [h["train/loss"] for h in resumed.history]
    # and training did change the weights (the comparison is not vacuous)
    first = load_checkpoint(tmp_path / "full" / "best.ckpt")
    assert first["step"] in (6, 12)


def _write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def _raw(dots, **tracking) -> dict:
    return {
        "data": {"train": [str(dots["train"])], "val": [str(dots["val"])], "schema": "coco",
                 "input_size": [64, 64], "heatmap_size": [16, 16], "workers": 0},
        "model": {"name": "hourglass1", "channels": 32},
        "codec": {"sigma": 1.0},
        "train": {"epochs": 1, "batch_size": 8, "device": "cpu"},
        "tracking": {"experiment": "cli-test", **tracking},
    }


def test_train_command_records_an_mlflow_run_with_a_registered_model(dots, tiny_config, tmp_path, monkeypatch):
    monkeypatch.setenv("ANIMALPOSE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = _write_config(tmp_path / "tiny.yaml", _raw(dots))
    res = CliRunner().invoke(app, ["train", "--config", str(config), "--out", str(tmp_path / "out"),
                                   "--no-progress", "train.lr=2e-3"])
    assert res.exit_code == 0, res.output
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("cli-test")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.params["train.lr"] == "0.002" and run.data.params["model.name"] == "hourglass1"
    assert {"train/loss", "val/pck_at_0.05", "train/images_per_s"} <= set(run.data.metrics)
    assert run.data.tags["data.fingerprint.train.json"] and run.data.tags["git.commit"]
    assert [a.path for a in client.list_artifacts(run.info.run_id, "model")] == ["model/best.ckpt"]
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/learning_curves.png", "plots/per_joint_pck.png", "plots/predictions.png"} <= plots
    (version,) = client.search_model_versions("name='cli-test-hourglass1'")
    assert version.run_id == run.info.run_id
    assert (tmp_path / "out" / "best.ckpt").is_file() and (tmp_path / "out" / "summary.json").is_file()


def test_resume_state_from_another_store_gives_that_store_the_whole_run(dots, tiny_config, tmp_path):
    """A finished run's folder resumed against a second store (its run id is not there): a new run in the
    second store with the params, every epoch's metrics, no hash-named val copies, and a registered
    version that is ``champion`` and says what it was validated on."""
    from mlflow import MlflowClient

    stores = [f"sqlite:///{tmp_path / name / 'mlflow.db'}" for name in ("a", "b")]
    cfg_a = tiny_config(dots["train"], dots["val"], train={"epochs": 2},
                        tracking={"enabled": True, "uri": stores[0], "experiment": "moved"})
    first = train(cfg_a, out_dir=tmp_path / "out", progress=False, register_as="moved-model")
    cfg_b = cfg_a.model_copy(update={"tracking": cfg_a.tracking.model_copy(update={"uri": stores[1]})})
    again = train(cfg_b, out_dir=tmp_path / "out", progress=False, resume=True, register_as="moved-model")
    assert again.run_id not in (None, first.run_id)
    client = MlflowClient(stores[1])
    run = client.get_run(again.run_id)
    assert run.data.params["train.epochs"] == "2"
    history = client.get_metric_history(again.run_id, "val/pck_at_0.05")
    assert [m.step for m in history] == [1, 2]
    assert [m.value for m in history] == pytest.approx([h["val/pck@0.05"] for h in first.history])
    assert not [k for k in run.data.metrics if k.startswith("val/") and k.count("/") > 1]
    mv = client.get_model_version_by_alias("moved-model", "champion")
    assert mv.run_id == again.run_id and str(dots["val"]) in mv.description and "2 epochs" in mv.description


def test_training_survives_an_unreachable_tracking_server(dots, tiny_config, tmp_path, capsys):
    cfg = tiny_config(dots["train"], dots["val"], train={"epochs": 1},
                      tracking={"enabled": True, "uri": "http://127.0.0.1:9"})
    result = train(cfg, out_dir=tmp_path / "out", progress=False)
    assert result.best_checkpoint.is_file() and len(result.history) == 1
    assert capsys.readouterr().err.count("MLflow tracking at http://127.0.0.1:9") == 1


def test_missing_dataset_fails_before_work_naming_the_file(dots, tiny_config, tmp_path, capsys):
    from animalpose.cli import main

    raw = _raw(dots)
    raw["data"]["train"] = ["does/not/exist.json"]
    config = _write_config(tmp_path / "bad.yaml", raw)
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--config", str(config), "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert str(config) in err and "data.train" in err and "exist.json" in err
    assert not (tmp_path / "out").exists()


def test_resume_without_checkpoint_is_a_clear_error(dots, tiny_config, tmp_path):
    from animalpose.errors import DataError

    cfg = tiny_config(dots["train"], dots["val"])
    with pytest.raises(DataError, match=r"last\.ckpt"):
        train(cfg, out_dir=tmp_path / "nothing", resume=True, progress=False)


def test_two_process_ddp_with_torchrun(dots, tiny_config, tmp_path):
    config = _write_config(tmp_path / "ddp.yaml", {**_raw(dots), "tracking": {"enabled": False}})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ANIMALPOSE_HOME": str(tmp_path / "home")}
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "animalpose", "train",
                           "--config", str(config), "--out", str(tmp_path / "out"), "--no-progress",
                           "train.epochs=2"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_checkpoint(tmp_path / "out" / "last.ckpt")
    # 24 images split over 2 ranks: 12 each, batch 8 -> 2 steps per epoch per rank, 4 in 2 epochs
    assert ckpt["step"] == 4 and ckpt["epoch"] == 2
    assert not any(k.startswith("module.") for k in ckpt["model"])
    assert len(ckpt["extra"]["history"]) == 2


def test_amp_ema_clipping_channels_last_and_cosine_train_and_checkpoint(dots, tiny_config, tmp_path):
    cfg = tiny_config(dots["train"], dots["val"], train={
        "epochs": 1, "batch_size": 8, "amp": True, "ema": True, "ema_decay": 0.5, "grad_clip": 1.0,
        "channels_last": True, "schedule": "cosine", "warmup_steps": 2, "deterministic": False})
    result = train(cfg, out_dir=tmp_path, progress=False)
    ckpt = load_checkpoint(result.last_checkpoint)
    assert ckpt["step"] == 3 and ckpt["ema"] is not None
    assert any(not torch.equal(ckpt["ema"][k], ckpt["model"][k]) for k in ckpt["model"] if "running" not in k)
    assert torch.isfinite(torch.tensor(result.history[0]["train/loss"]))


def test_early_stopping_when_validation_stops_improving(dots, tiny_config, tmp_path):
    # lr so small that validation PCK cannot change: epoch 1 sets the best, epoch 2 does not improve
    cfg = tiny_config(dots["train"], dots["val"], train={"epochs": 5, "batch_size": 8, "lr": 1e-12,
                                                         "early_stop_patience": 1})
    result = train(cfg, out_dir=tmp_path, progress=False)
    assert result.stopped_early and len(result.history) == 2
    assert load_checkpoint(result.best_checkpoint)["epoch"] == 1


def _speed_path_run(dots, tiny_config, out: Path, epochs: int, **speed) -> tuple[list[float], dict[str, torch.Tensor]]:
    cfg = tiny_config(dots["train"], dots["val"], train={"epochs": epochs, **speed})
    result = train(cfg, out_dir=out, progress=False)
    return [h["train/loss"] for h in result.history], _weights(result.last_checkpoint)


def test_pointwise_linear_training_follows_the_channels_last_loss_trajectory(dots, tiny_config, tmp_path):
    ref_losses, ref_weights = _speed_path_run(dots, tiny_config, tmp_path / "cl", 1, channels_last=True)
    losses, weights = _speed_path_run(dots, tiny_config, tmp_path / "fast", 1, channels_last=True,
                                      pointwise_linear=True)
    # an epoch of Adam steps amplifies rounding differences (per-step equality is tested in test_model_speed)
    assert losses == pytest.approx(ref_losses, rel=2e-2)
    # same state dict (names and shapes): checkpoints interchange with the plain model
    assert {k: w.shape for k, w in weights.items()} == {k: w.shape for k, w in ref_weights.items()}


@pytest.mark.slow
def test_compiled_training_follows_the_plain_loss_trajectory(dots, tiny_config, tmp_path):
    ref_losses, ref_weights = _speed_path_run(dots, tiny_config, tmp_path / "plain", 2)
    losses, weights = _speed_path_run(dots, tiny_config, tmp_path / "compiled", 2, channels_last=True,
                                      pointwise_linear=True, compile=True)
    assert losses == pytest.approx(ref_losses, rel=2e-2)
    assert weights.keys() == ref_weights.keys()  # no "_orig_mod." prefix in the checkpoint


def test_iterative_training_runs_every_cycle_from_the_last_weights_with_a_fresh_optimiser(dots, tiny_config,
                                                                                         tmp_path):
    # 24 images, batch 4: 6 steps per epoch; 2 cycles of 1 epoch
    cfg = tiny_config(dots["train"], dots["val"], train={"epochs": 1, "cycles": 2})
    result = train(cfg, out_dir=tmp_path / "run", progress=False)
    assert [h["epoch"] for h in result.history] == [1, 2]
    ckpt = load_checkpoint(result.last_checkpoint)
    assert ckpt["step"] == 12
    # Adam's per-parameter step count was cleared at the start of cycle 2, so it counts that cycle's 6 steps
    assert {int(s["step"]) for s in ckpt["optimizer"]["state"].values()} == {6}


def test_grmi_trains_validates_and_evaluates_through_the_engine(dots, tiny_config, tmp_path):
    """G-RMI's 3K output maps go through training, flip-tested validation (PCK on its Hough maps) and
    evaluate (Hough decoding, OKS); plumbing only: 2 epochs on 24 dot images."""
    from animalpose.engine.evaluate import evaluate
    from animalpose.keypoints import load_schema

    cfg = tiny_config(dots["train"], dots["val"], model={"name": "grmi_quick"},
                      codec={"kind": "grmi", "radius": 2.0})
    result = train(cfg, out_dir=tmp_path / "run", progress=False)
    assert len(result.history) == 2 and 0.0 <= result.history[-1]["val/pck@0.1"] <= 1.0
    out = evaluate(result.last_checkpoint, dots["val"], device="cpu", progress=False)
    assert out["flip"] and set(out["per_joint"]) == set(load_schema("coco").joints)
    assert 0.0 <= out["metrics"]["AP"] <= 1.0 and out["metrics"]["pixel_error_mean"] >= 0
