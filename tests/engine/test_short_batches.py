"""Training batches that skipped images leave short (issue 26): one image left is not trained on (BatchNorm
raised a traceback), an all-skipped batch still counts as a step (the epoch was one step short, and the
mid-epoch resume position is computed from the step count)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from animalpose.engine.build import build_data, make_model
from animalpose.engine.checkpoint import load_checkpoint
from animalpose.engine.distributed import EpochSampler
from animalpose.engine.train import train


def _copy_dots(dots, tmp_path: Path) -> Path:
    """A private copy of the dot dataset (24 training images), whose images a test may break."""
    root = tmp_path / "dots"
    shutil.copytree(dots["train"].parent.parent, root)
    return root / "annotations" / dots["train"].name


def _break(image: str) -> None:
    """Header and end marker intact (the up-front check passes), pixel data broken (decoding fails)."""
    p = Path(image)
    b = bytearray(p.read_bytes())
    i = b.index(b"IDAT")
    b[i + 20:i + 60] = bytes(x ^ 0xFF for x in b[i + 20:i + 60])
    p.write_bytes(bytes(b))


def _first_batch(cfg) -> list[str]:
    """The images of the first training batch of epoch 0 (the trainer's sampler order)."""
    data = build_data(cfg)
    order = EpochSampler(len(data.train), shuffle=True, seed=cfg.train.seed).indices()
    return [data.train.records[i].image for i in order[: cfg.train.batch_size]]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_one_image_left_in_a_batch_is_not_trained_on(dots, tiny_config, tmp_path, capsys):
    train_json = _copy_dots(dots, tmp_path)
    cfg = tiny_config(train_json, dots["val"])
    first = _first_batch(cfg)
    for image in first[1:]:
        _break(image)
    # what training on that batch did before: BatchNorm at the 64-px hourglass's 1x1 bottleneck refuses it
    data = build_data(cfg)
    model = make_model(cfg, data.schema).train()
    one = next(d for d in (data.train[i] for i in range(len(data.train))) if d)["image"][None]
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        model(one)
    result = train(cfg, out_dir=tmp_path / "run", progress=False)
    assert load_checkpoint(result.last_checkpoint)["step"] == 12  # 2 epochs x 6 steps, the dropped one counted
    assert sorted(s["image"] for s in result.images_skipped) == sorted(first[1:])
    err = capsys.readouterr().err
    assert "warning: step 1 (epoch 1): 3 image(s) skipped as undecodable, 1 image(s) left in the batch" in err
    assert "no update this step" in err


def test_an_all_skipped_batch_keeps_the_step_count_and_the_resume_exact(dots, tiny_config, tmp_path):
    train_json = _copy_dots(dots, tmp_path)
    cfg = tiny_config(train_json, dots["val"], train={"checkpoint_every_steps": 4})
    for image in _first_batch(cfg):
        _break(image)
    whole = train(cfg, out_dir=tmp_path / "whole", progress=False)
    assert load_checkpoint(whole.last_checkpoint)["step"] == 12
    # killed 3 steps into epoch 2 (last.ckpt of step 8, 2 steps in), then resumed: the same weights
    out = tmp_path / "killed"
    assert train(cfg, out_dir=out, progress=False, halt_after_steps=9).halted
    assert load_checkpoint(out / "last.ckpt")["step"] == 8
    resumed = train(cfg, out_dir=out, progress=False, resume=True)
    a, b = _weights(whole.last_checkpoint), _weights(resumed.last_checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(whole.images_skipped) == len(resumed.images_skipped) == 4


def test_a_last_batch_of_one_image_is_dropped_with_one_warning(dots, tiny_config, tmp_path, capsys):
    """25 images in batches of 4: every epoch ends with one image, said once, never trained on."""
    train_json = _copy_dots(dots, tmp_path)
    doc = json.loads(train_json.read_text())
    doc["images"], doc["annotations"] = doc["images"][:1], doc["annotations"][:1]
    doc["annotations"][0]["id"] = doc["images"][0]["id"] = 1000
    doc["annotations"][0]["image_id"] = 1000
    extra = train_json.with_name("one.json")
    extra.write_text(json.dumps(doc))
    cfg = tiny_config(train_json, dots["val"])
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"train": [train_json, extra]})})
    result = train(cfg, out_dir=tmp_path / "run", progress=False)
    assert load_checkpoint(result.last_checkpoint)["step"] == 14  # 2 epochs x 7 steps
    err = capsys.readouterr().err
    assert err.count("1 image(s) left in the batch") == 1 and "skipped as undecodable" not in err
