"""CC-SSL rounds on a tiny dot dataset: plumbing, selection per round, λ-weighted loss, resume, diagnostics.

The dots (17 COCO joints as coloured discs) are for plumbing, not accuracy; the accuracy test on
generated animals lives in test_ccssl_e2e.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from animalpose.adapt.ccssl import CCSSLConfig, CCSSLRun, CCSSLTrainer, keep_percentile, num_rounds, run_ccssl
from animalpose.config import parse_config
from animalpose.data.coco_writer import write_coco
from animalpose.data.records import PoseRecord
from animalpose.engine.build import build_data, make_model
from animalpose.engine.trainer import Trainer
from animalpose.errors import ConfigError

SIZE = 64  # tests/adapt/conftest.py's dots


def _config(dots, **ccssl) -> CCSSLConfig:
    raw = {
        "data": {"train": [str(dots["train"])], "val": [str(dots["val"])], "target": [str(dots["target"])],
                 "schema": "coco", "input_size": [SIZE, SIZE], "heatmap_size": [16, 16], "workers": 0},
        "model": {"name": "hourglass1", "channels": 32},
        "codec": {"sigma": 1.0},
        "augment": {"preset": "hourglass"},
        "train": {"epochs": 2, "batch_size": 4, "device": "cpu", "optimizer": "adam", "lr": 1e-3,
                  "deterministic": True, "flip_test": False},
        "tracking": {"enabled": False},
        "ccssl": {"source_epochs": 1, "regenerate_every": 1, "num_geometric": 2, "num_photometric": 1,
                  "pseudo_batch_size": 6, "gallery": 2, "target_val": [str(dots["target_val"])], **ccssl},
    }
    return parse_config(raw, CCSSLConfig)


def test_round_schedule_from_config(dots):
    cfg = _config(dots)
    assert num_rounds(cfg) == 2
    assert keep_percentile(cfg, 0) == pytest.approx(0.8) and keep_percentile(cfg, 1) == pytest.approx(0.6)
    ref = _config(dots, schedule="reference", regenerate_every=10)
    assert [keep_percentile(ref, r) for r in range(4)] == pytest.approx([0.8, 0.6, 0.4, 0.2])
    with pytest.raises(ConfigError):
        _config(dots, lambda_taret=1.0)  # misspelt key
    with pytest.raises(ConfigError, match="collapsed_pairs"):
        _config(dots, collapsed_pairs="swap")


def test_target_loss_is_weighted_by_lambda(dots, tmp_path):
    cfg = _config(dots)
    data = build_data(cfg)
    model = make_model(cfg, data.schema)
    trainer = CCSSLTrainer(cfg, model, data.schema, data.train, {}, tmp_path, device=torch.device("cpu"),
                           progress=False, lambda_target=10.0)
    trainer.model.eval()
    src = torch.utils.data.default_collate([data.train[i] for i in range(2)])
    tgt = torch.utils.data.default_collate([data.train[i] for i in range(2, 4)])
    with torch.no_grad():
        ls = Trainer._forward_loss(trainer, src)[0]
        lt = Trainer._forward_loss(trainer, tgt)[0]
        trainer._target_iter = iter([tgt])
        total = trainer._forward_loss(src)[0]
    assert float(lt) > 0
    assert float(total) == pytest.approx(float(ls) + 10.0 * float(lt), rel=1e-5)


def test_rounds_write_diagnostics_select_more_each_round_and_resume(dots, tmp_path):
    cfg = _config(dots)
    res = run_ccssl(cfg, tmp_path, progress=False)
    assert len(res.rounds) == 2 and res.rounds[1]["epochs"] == [1, 2]
    cov = [r["pseudo/coverage"] for r in res.rounds]
    # top 20% then top 40% of the 12 x 17 joint confidences (ties at the threshold are kept)
    assert cov[0] == pytest.approx(0.2, abs=0.02) and cov[1] == pytest.approx(0.4, abs=0.02)
    assert "target/pck@0.05" in res.rounds[0] and "pck@0.05" in res.source_only
    assert 0.0 <= res.rounds[0]["pseudo/precision@0.05"] <= 1.0
    doc = json.loads((tmp_path / "round_0" / "pseudo_labels.json").read_text())
    assert len(doc["annotations"]) == 12 and doc["info"]["round"] == 0
    ann = doc["annotations"][0]
    assert len(ann["confidence"]) == 17 and len(ann["check"]) == 17
    kept = sum(a["num_keypoints"] for a in doc["annotations"])
    assert kept == res.rounds[0]["pseudo/num_kept"]
    # frames after the first of each clip had a predecessor: flow confidences recorded there only
    flows = [a["flow_confidence"] for a in doc["annotations"]]
    frames = [im["frame_index"] for im in doc["images"]]
    assert all(all(v is None for v in f) for f, fr in zip(flows, frames, strict=True) if fr == 0)
    assert any(v is not None for f, fr in zip(flows, frames, strict=True) if fr > 0 for v in f)
    summary = json.loads((tmp_path / "round_1" / "summary.json").read_text())
    assert set(summary["curves"]) >= {"equivariance", "invariance", "temporal", "combined"}
    assert len(summary["per_joint"]) == 17 and 0.0 <= summary["collapsed_all"] <= 1.0  # coco: 8 L/R pairs
    for name in ("curves.png", "gallery.png"):
        assert (tmp_path / "round_0" / name).is_file()
    assert res.best_checkpoint is not None and res.last_checkpoint == tmp_path / "round_1.ckpt"

    # resume: nothing left to do
    stamp = (tmp_path / "round_1.ckpt").stat().st_mtime_ns
    again = run_ccssl(cfg, tmp_path, progress=False)
    assert len(again.rounds) == 2 and (tmp_path / "round_1.ckpt").stat().st_mtime_ns == stamp
    # resume after round 0: only round 1 is redone, continuing from the round-0 trainer state
    state = json.loads((tmp_path / "state.json").read_text())
    state["rounds"] = state["rounds"][:1]
    (tmp_path / "state.json").write_text(json.dumps(state))
    redo = run_ccssl(cfg, tmp_path, progress=False)
    assert [r["round"] for r in redo.rounds] == [0, 1]
    assert redo.rounds[0] == res.rounds[0]
    assert redo.rounds[1]["pseudo/num_kept"] == res.rounds[1]["pseudo/num_kept"]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=False, map_location="cpu")["model"]


@pytest.mark.parametrize("schedule", ["step", "cosine"])
def test_rounds_run_one_object_per_round_as_in_one_loop(dots, tmp_path, schedule):
    """The flow's way (a new CCSSLRun per round task on the same folder) takes exactly the library loop's
    steps: same pseudo-labels, metrics and weights bit for bit, also under a cosine schedule, which
    depends on the total epochs (the old flow cut ``train.epochs`` per round and had to forbid it)."""
    cfg = _config(dots)
    cfg.train.schedule = schedule
    whole = run_ccssl(cfg, tmp_path / "loop", progress=False)
    per_round = []
    for r in range(num_rounds(cfg)):
        with CCSSLRun(cfg, tmp_path / "tasks", progress=False) as run:
            assert run.rounds_done == r
            per_round.append(run.round(r))
    assert per_round == whole.rounds
    for r in range(num_rounds(cfg)):
        a, b = _weights(tmp_path / "loop" / f"round_{r}.ckpt"), _weights(tmp_path / "tasks" / f"round_{r}.ckpt")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    lr = lambda p: torch.load(p, weights_only=False, map_location="cpu")["optimizer"]["param_groups"][0]["lr"]  # noqa: E731
    assert lr(tmp_path / "tasks" / "round_1.ckpt") == lr(tmp_path / "loop" / "round_1.ckpt")


def test_rounds_run_in_order_and_a_finished_round_is_not_redone(dots, tmp_path):
    cfg = _config(dots)
    run = CCSSLRun(cfg, tmp_path, progress=False)
    with pytest.raises(RuntimeError, match="round 1 asked for"):
        run.round(1)
    with pytest.raises(ValueError, match="not one of this run's 2 rounds"):
        run.round(2)
    assert run.trainer is None  # refusing cost nothing: no data read, no model built
    first = run.round(0)
    stamp = (tmp_path / "round_0.ckpt").stat().st_mtime_ns
    again = CCSSLRun(cfg, tmp_path, progress=False)
    assert again.round(0) == first and again.trainer is None
    assert (tmp_path / "round_0.ckpt").stat().st_mtime_ns == stamp


def test_target_val_selection_needs_labelled_target(dots, tmp_path):
    cfg = _config(dots, target_val=[])
    cfg.train.select_on = "target-val"
    with pytest.raises(ConfigError, match="target_val"):
        run_ccssl(cfg, tmp_path, progress=False)


def test_target_crops_use_the_source_padding_rule(dots, tmp_path):
    """Generated target data is synthetic: its crops take ``bbox_padding_synthetic`` like the source's.

    Regression: every target crop (pseudo-labelling, target training, target-val PCK) used
    ``bbox_padding_real`` (1.5) while the source trained at 1.25, so the animal was 17 % smaller at
    adaptation time than at training time, and the flow's evaluation (engine.evaluate, 1.25) disagreed.
    """
    from animalpose.adapt.ccssl import _read_target
    from synthetic import generate_dataset

    cfg = _config(dots)
    photo = generate_dataset(tmp_path / "photo", "horse", "photo", 2, 64, seed=0) / "annotations/tigdog.json"
    schema = build_data(cfg).schema
    records, pad = _read_target([photo], schema, cfg)
    assert len(records) == 2 and pad == cfg.data.bbox_padding_synthetic == 1.25
    records, pad = _read_target([dots["target"]], schema, cfg)  # plain COCO dots: real-data padding
    assert len(records) == 12 and pad == cfg.data.bbox_padding_real == 1.5


@pytest.mark.parametrize("n", [5, 3, 1])
def test_target_stream_yields_only_full_batches(dots, tmp_path, n):
    """Regression: a pseudo-labelled target set of batch·k + 1 crops ended each pass with a one-image
    batch, which BatchNorm refuses in training mode (the e2e run crashed at a 64-px hourglass's 1×1
    bottleneck). Batch size 4 here: 5 → whole batches only, 3 and 1 → repeated to fill one batch."""
    cfg = _config(dots)
    data = build_data(cfg)
    trainer = CCSSLTrainer(cfg, make_model(cfg, data.schema), data.schema, data.train, {}, tmp_path,
                           device=torch.device("cpu"), progress=False)
    trainer.set_target(torch.utils.data.Subset(data.train, list(range(n))))
    trainer.target_set.set_epoch = lambda e: None
    stream = trainer._target_batches()
    sizes = [len(next(stream)["image"]) for _ in range(4)]
    assert sizes == [4, 4, 4, 4]


def test_file_balanced_draws_give_each_file_an_equal_share():
    """Files [0] * 8 + [1] * 2: each crop of file 1 is drawn with probability 1/4, of file 0 with 1/16, so the
    two files fill half the stream each; one file: every crop 1/n, as a uniform draw."""
    from animalpose.adapt.ccssl import file_balanced_order

    rng = np.random.default_rng(0)
    draws = np.concatenate([file_balanced_order([0] * 8 + [1] * 2, rng) for _ in range(4000)])
    assert len(draws) == 40000 and set(draws) == set(range(10))
    share = np.bincount(draws, minlength=10) / len(draws)
    assert share[8:] == pytest.approx([0.25, 0.25], abs=0.01) and share[:8] == pytest.approx([1 / 16] * 8, abs=0.01)
    one = np.bincount(np.concatenate([file_balanced_order(["v"] * 5, rng) for _ in range(2000)]), minlength=5)
    assert one / one.sum() == pytest.approx([0.2] * 5, abs=0.015)


def test_target_balance_files_draws_the_target_files_equally(dots, tmp_path):
    """``target_balance: files``: the pseudo-labelled stream draws each ``data.target`` file equally (the records
    carry their file's index from ``_read_target``); ``frames`` (default) is a permutation of the crops."""
    from animalpose.adapt.ccssl import TARGET_FILE, _read_target

    cfg = _config(dots, target_balance="files")
    data = build_data(cfg)
    records, _ = _read_target([dots["target"], dots["target_val"]], data.schema, cfg)
    files = [r.meta[TARGET_FILE] for r in records]
    assert set(files) == {0, 1} and files == sorted(files)
    assert _config(dots).ccssl.target_balance == "frames"
    with pytest.raises(ConfigError, match="target_balance"):
        _config(dots, target_balance="videos")

    class Crops(list):  # the stream reads the records' meta and yields indices (no image decoding here)
        def __init__(self, recs):
            super().__init__(range(len(recs)))
            self.records = recs

        def set_epoch(self, e):
            pass

    for balance in ("frames", "files"):
        trainer = CCSSLTrainer(cfg, make_model(cfg, data.schema), data.schema, data.train, {}, tmp_path,
                               device=torch.device("cpu"), progress=False, target_balance=balance)
        trainer._loader = lambda ds, order, bs: (order[i:i + bs] for i in range(0, len(order), bs))
        crops = [0] * 12 + [1] * 2  # 12 crops of the first file, 2 of the second
        trainer.set_target(Crops([replace(records[0], meta={TARGET_FILE: f}) for f in crops]))
        stream = trainer._target_batches()
        drawn = np.concatenate([next(stream) for _ in range(600)])
        second = np.isin(drawn, [12, 13]).mean()
        assert second == pytest.approx(0.5 if balance == "files" else 2 / 14, abs=0.03), balance
    # through a round: the pseudo-labelled crops keep their file's index, and the trainer draws by it
    cfg.data.target = [dots["target"], dots["target_val"]]
    cfg.train.epochs = 1
    run = CCSSLRun(cfg, tmp_path / "run", progress=False)
    run.round(0)
    kept = {r.meta[TARGET_FILE] for r in run.trainer.target_set.records}
    assert kept == {0, 1} and run.trainer.target_balance == "files"


def test_adaptation_rounds_train_at_ccssl_lr_and_source_training_at_train_lr(dots, tmp_path):
    cfg = _config(dots, lr=3e-4)
    cfg.train.epochs = 1
    run_ccssl(cfg, tmp_path, progress=False)
    lr_of = lambda p: torch.load(p, weights_only=False, map_location="cpu")["optimizer"]["param_groups"][0]["lr"]  # noqa: E731
    assert lr_of(tmp_path / "source" / "last.ckpt") == pytest.approx(1e-3)
    assert lr_of(tmp_path / "round_0.ckpt") == pytest.approx(3e-4)
    assert _config(dots).ccssl.lr is None  # default: the rounds continue at train.lr, as the reference
    with pytest.raises(ConfigError):
        _config(dots, lr=0.0)


def test_round_checkpoints_carry_the_normalisation_the_images_had(dots, tmp_path):
    """``evaluate`` / ``predict`` normalise with the checkpoint's stored mean/std; a round checkpoint without
    them was scored with ImageNet's, whatever ``data.normalisation`` the model was trained with."""
    from animalpose.data.dataset import Normalization
    from animalpose.engine.evaluate import load_model

    cfg = _config(dots)
    cfg.data.normalisation = "dataset"
    cfg.train.epochs = 1
    run_ccssl(cfg, tmp_path, progress=False)
    own = build_data(cfg).normalization
    assert own != Normalization()  # the dots' statistics are not ImageNet's
    _, _, _, norm, _ = load_model(tmp_path / "round_0.ckpt")
    assert norm.mean == pytest.approx(own.mean) and norm.std == pytest.approx(own.std)


def test_a_noised_student_learns_the_pseudo_labels_through_the_strong_preset(dots, tmp_path):
    """``target_augment: strong``: the target stream's augmenter is the strong preset with the experiment's
    scale, rotation and flip ranges; the source stream keeps the experiment's own."""
    cfg = _config(dots, target_augment="strong")
    cfg.train.epochs = 1
    cfg.augment.scale, cfg.augment.rotation, cfg.augment.flip_prob = (0.9, 1.1), 170.0, 0.25
    run = CCSSLRun(cfg, tmp_path, progress=False)
    run.round(0)
    target, source = run.trainer.target_set.augment.config, run.trainer.train_set.augment.config
    assert target.preset == "strong" and source.preset == "hourglass"
    assert (target.scale_range, target.rotation, target.flip_prob) == ((0.9, 1.1), 170.0, 0.25)
    assert target.noise_max > 0 and target.blur_sigma[1] > 0  # the noise the student learns through
    default = _config(dots)
    default.train.epochs = 1
    plain = CCSSLRun(default, tmp_path / "plain", progress=False)
    plain.round(0)
    assert plain.trainer.target_set.augment.config.preset == "hourglass"  # default: the experiment's


MOUSE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "mirror-mouse"


def test_a_dlc_project_adapts_to_its_own_video(tmp_path):
    """A lab's DeepLabCut project as it is: the schema comes from the CSV header (``dlc:mirror-mouse``, no
    file under configs/keypoints), the target is the project's video, every 100th frame of it. The video
    reader used to look the header schema up among the shipped files ("unknown keypoint schema")."""
    if not MOUSE.is_dir():
        pytest.skip(f"real data not found at {MOUSE}")
    raw = {
        "data": {"train": [str(MOUSE / "CollectedData.csv")], "target": [str(MOUSE / "videos" / "test_vid.mp4")],
                 "input_size": [64, 64], "heatmap_size": [16, 16], "bbox_padding_real": 1.0, "workers": 0},
        "model": {"name": "hourglass1", "channels": 16},
        "augment": {"preset": "none"},
        "train": {"epochs": 1, "batch_size": 16, "device": "cpu", "optimizer": "adam", "lr": 1e-3,
                  "flip_test": False, "select_on": "last"},
        "tracking": {"enabled": False},
        "ccssl": {"regenerate_every": 1, "num_geometric": 1, "num_photometric": 0, "video_step": 100,
                  "pseudo_batch_size": 5, "gallery": 0},
    }
    cfg = parse_config(raw, CCSSLConfig)
    assert cfg.ccssl.flow().max_gap == 100  # the flow bridges the subsampling gap
    run = CCSSLRun(cfg, tmp_path, progress=False)
    run.prepare()
    assert run.schema.name == "dlc:mirror-mouse" and run.schema.num_joints == 17
    assert [r.frame_index for r in run.target_records] == list(range(0, 994, 100))
    assert {r.keypoints.shape for r in run.target_records} == {(17, 3)}
    metrics = run.round(0)
    assert metrics["pseudo/num_joints"] == 10 * 17
    ckpt = torch.load(tmp_path / "round_0.ckpt", weights_only=False, map_location="cpu")
    assert ckpt["schema"]["name"] == "dlc:mirror-mouse"  # the checkpoint describes its own joints


def test_the_target_labels_are_read_for_diagnostics_only(dots, tmp_path):
    """CC-SSL's target may be a labelled set (the real-horse benchmark's ``train`` photographs, whose truth
    scores the pseudo-labels): its labels must not reach training. The same run on the same images with
    every label removed trains exactly the same weights."""
    from animalpose.data.readers import read_dataset

    records = read_dataset(dots["target"], "coco", "coco").records
    stripped = [PoseRecord(r.image, np.zeros_like(r.keypoints), r.schema, bbox=r.bbox, image_size=r.image_size,
                           image_id=r.image_id, video_id=r.video_id, frame_index=r.frame_index) for r in records]
    unlabelled = write_coco(stripped, tmp_path / "unlabelled" / "annotations" / "target.json", "coco")
    cfg = _config(dots)
    labelled_run = run_ccssl(cfg, tmp_path / "labelled", progress=False)
    cfg.data.target = [unlabelled]
    cfg.data.allow_outside_root = True  # the copy's image paths point at the original images
    blind_run = run_ccssl(cfg, tmp_path / "blind", progress=False)
    assert "pseudo/precision@0.05" in labelled_run.rounds[0] and "pseudo/precision@0.05" not in blind_run.rounds[0]
    for r in range(2):
        a, b = _weights(tmp_path / "labelled" / f"round_{r}.ckpt"), _weights(tmp_path / "blind" / f"round_{r}.ckpt")
        assert all(torch.equal(a[k], b[k]) for k in a)
