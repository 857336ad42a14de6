"""The output side of `predict`, `train` and checkpoints: wrong kinds of path, failing writes, nothing half-written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from animalpose.cli import main
from animalpose.engine import checkpoint as ckpt_mod
from animalpose.engine import predict as predict_mod
from animalpose.engine.predict import predict
from animalpose.errors import OutputError

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"
COCO = SHARED / "mmpose-tests" / "coco"


def test_predict_refuses_a_file_as_output_folder_before_loading_anything(tmp_path, capsys):
    target = tmp_path / "out.txt"
    target.write_text("keep me")
    missing_ckpt = tmp_path / "never-read.ckpt"  # the output check comes first: no checkpoint error
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "--checkpoint", str(missing_ckpt), "--out", str(target), str(COCO / "000000000785.jpg")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write") and str(target) in err and "(--out)" in err and "a folder" in err
    assert target.read_text() == "keep me"


def test_predict_failing_mid_way_leaves_the_previous_outputs_whole(trained, tmp_path, monkeypatch):
    out = tmp_path / "pred"
    first = predict(trained, [COCO], out, progress=False)
    before = {p: Path(p).read_bytes() for p in first["outputs"]}
    labelled_before = sorted(p.name for p in (out / "labelled").iterdir())
    calls = {"n": 0}
    real_imwrite = predict_mod.cv2.imwrite

    def dies_on_third(path, img):  # a crash in the middle of the pass (after two labelled images)
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_imwrite(path, img)

    monkeypatch.setattr(predict_mod.cv2, "imwrite", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        predict(trained, [COCO], out, progress=False)
    assert {p: Path(p).read_bytes() for p in first["outputs"]} == before
    assert sorted(p.name for p in (out / "labelled").iterdir()) == labelled_before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_predict_on_a_full_disk_is_one_clear_line(trained, tmp_path, monkeypatch, capsys):
    def full(path, data, **kw):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(predict_mod, "write_json_atomic", full)
    out = tmp_path / "pred"
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "--checkpoint", str(trained), "--out", str(out), "--no-progress",
              str(COCO / "000000000785.jpg")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "images.json" in err and "no space left on device" in err
    assert list(out.iterdir()) == []  # nothing half-written: no CSV without its JSON, no labelled image


def test_train_refuses_an_unwritable_output_before_reading_data(tiny_config, dots, tmp_path, monkeypatch):
    from animalpose.engine import train as train_mod

    cfg = tiny_config(dots["train"], dots["val"])
    target = tmp_path / "run"
    target.write_text("a file")
    read = []
    monkeypatch.setattr(train_mod, "build_data", lambda *a, **k: read.append(1))
    with pytest.raises(OutputError, match=r"run \(--out\): exists and is a file"):
        train_mod.train(cfg, out_dir=target, progress=False)
    assert not read


def test_checkpoint_write_failure_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    """torch's zip writer on a full disk raises RuntimeError('[enforce fail at inline_container.cc] ...')."""
    path = tmp_path / "last.ckpt"
    ckpt_mod.atomic_torch_save({"w": torch.ones(3)}, path)
    old = path.read_bytes()

    def half_then_fail(obj, fh):
        fh.write(b"PK\x03\x04 half a zip")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0\n"
                           "PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(ckpt_mod.torch, "save", half_then_fail)
    with pytest.raises(OutputError, match=r"last\.ckpt \(checkpoint\): write failed \(disk full\?") as info:
        ckpt_mod.atomic_torch_save({"w": torch.zeros(3)}, path)
    assert "bytes free" in str(info.value)
    assert path.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["last.ckpt"]  # the half-written temporary file is gone


# ---- `data split` and `models import-reference`


def test_data_split_refuses_a_file_as_out_before_reading_the_data(tmp_path, capsys):
    target = tmp_path / "splits"
    target.write_text("keep me")
    with pytest.raises(SystemExit) as exit_:  # the dataset does not exist: the output is checked first
        main(["data", "split", str(tmp_path / "never-read.json"), "--out", str(target), "--by", "frame"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {target} (--out): exists and is a file") and "never-read" not in err
    assert target.read_text() == "keep me"


def test_data_split_failing_mid_way_leaves_the_previous_split_whole(dots, tmp_path, monkeypatch, capsys):
    from animalpose.data import split as split_mod

    out = tmp_path / "splits"
    args = ["data", "split", str(dots["train"]), "--out", str(out), "--by", "frame", "--val", "0.25", "--test", "0.25"]
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["split.json", "test.json", "train.json", "val.json"]
    real = split_mod.write_coco

    def dies_on_val(records, path, *a, **k):  # train.json of the new split is written, then the run dies
        if Path(path).name == "val.json":
            raise OSError(28, "No space left on device", str(path))
        return real(records, path, *a, **k)

    monkeypatch.setattr(split_mod, "write_coco", dies_on_val)
    with pytest.raises(SystemExit) as exit_:
        main([*args[:-4], "--seed", "1", *args[-4:]])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write") and "val.json" in err and "no space left on device" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old split whole, no staging left


def test_import_reference_refuses_an_unwritable_out_before_reading_the_checkpoint(tmp_path, capsys):
    folder = tmp_path / "model.ckpt"
    folder.mkdir()
    with pytest.raises(SystemExit) as exit_:
        main(["models", "import-reference", str(tmp_path / "never-read.pth.tar"), str(folder),
              "--model", "hourglass1", "--mean", "0.5", "--mean", "0.5", "--mean", "0.5"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {folder} (OUT): is a folder") and "never-read" not in err
    assert list(folder.iterdir()) == []
