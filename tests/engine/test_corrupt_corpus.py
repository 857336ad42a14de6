"""The corrupt-input corpus of issue 26 for the families with no parametrised test elsewhere: DeepLabCut label
files, SLEAP files, videos (through `data check`) and checkpoints (through `evaluate`). Each case: a non-zero
exit, the file and the field in the message, nothing written.

(COCO, images, skips: test_bad_data.py; paths and folders: tests/data/test_input_containment.py; YAML:
tests/test_config.py; output folders: tests/test_outputs.py, test_output_side.py, test_full_disk.py.)"""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from animalpose.cli import main

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"
HEADER = ["scorer,lab,lab,lab,lab", "bodyparts,nose,nose,tail,tail", "coords,x,y,x,y"]


def _dlc(root: Path, lines: list[str]) -> Path:
    """A DLC label file beside ``labeled-data/img0.png`` (64x48)."""
    (root / "labeled-data").mkdir(parents=True)
    cv2.imwrite(str(root / "labeled-data" / "img0.png"), np.full((48, 64, 3), 90, np.uint8))
    path = root / "CollectedData.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _copy(src: Path, dst: Path, cut: float | None = None) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    data = src.read_bytes()
    dst.write_bytes(data if cut is None else data[: int(len(data) * cut)])
    return dst


def _need(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"real data not found at {path}")
    return path


# case -> build(tmp) returning (path to check, the file the error names, the field)
Build = Callable[[Path], tuple[Path, Path, str]]
DATA: dict[str, Build] = {
    "dlc/no coords row": lambda t: (p := _dlc(t, [*HEADER[:2], "labeled-data/img0.png,1,2,3,4"]), p, "header.coords"),
    "dlc/not a number": lambda t: (p := _dlc(t, [*HEADER, "labeled-data/img0.png,1,abc,3,4"]), p, "row 4.nose"),
    "dlc/short row": lambda t: (p := _dlc(t, [*HEADER, "labeled-data/img0.png,1,2,3"]), p, "row 4"),
    "dlc/x without y": lambda t: (p := _dlc(t, ["scorer,lab,lab,lab", "bodyparts,nose,tail,tail", "coords,x,x,y",
                                                "labeled-data/img0.png,1,3,4"]), p, "header.bodyparts[nose]"),
    "dlc/unknown coordinate": lambda t: (p := _dlc(t, [*HEADER[:2], "coords,x,y,x,z", "labeled-data/img0.png,1,2,3,4"]),
                                         p, "header.coords[4]"),
    "dlc/missing image": lambda t: (_dlc(t, [*HEADER, "labeled-data/img9.png,1,2,3,4"]),
                                    t / "labeled-data" / "img9.png", "image"),
    "dlc/image outside the project": lambda t: (p := _dlc(t, [*HEADER, "../../etc/passwd,1,2,3,4"]), p, "row 4.image"),
    "sleap/not HDF5": lambda t: (p := _copy(Path(__file__), t / "bad.slp"), p, "<file>"),
    "sleap/empty file": lambda t: ((p := t / "empty.slp").write_bytes(b"") or p, p, "<file>"),
    "sleap/truncated": lambda t: (p := _copy(_need(SHARED / "sleap-clip" / "clip.slp"), t / "cut.slp", 0.5), p,
                                  "<file>"),
    "sleap/video missing": lambda t: (_copy(_need(SHARED / "sleap-clip" / "clip.slp"), t / "clip.slp"),
                                      t / "clip.mp4", "video"),
    "video/not a video": lambda t: (p := _copy(Path(__file__), t / "text.mp4"), p, "video"),
    "video/empty file": lambda t: ((p := t / "zero.mp4").write_bytes(b"") or p, p, "video"),
    "video/truncated": lambda t: (p := _copy(_need(SHARED / "sleap-clip" / "clip.mp4"), t / "cut.mp4", 0.3), p,
                                  "video"),
}


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _named(err: str, out: str, file: Path, field: str) -> bool:
    """Whether the one-line error (exit 2) or one of `data check --json`'s errors (exit 1) names file and field."""
    if err.startswith("error: "):
        return err.splitlines()[-1].startswith(f"error: {file}: {field}: ")
    return any(e["file"] == str(file) and e["field"] == field for e in json.loads(out)["errors"])


@pytest.mark.parametrize("case", list(DATA))
def test_data_check_names_the_file_and_the_field(case, tmp_path, capsys):
    root = tmp_path / "in"
    root.mkdir()
    path, file, field = DATA[case](root)
    before = _listing(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["data", "check", str(path), "--json"])
    assert exit_.value.code in (1, 2)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert _named(captured.err.strip(), captured.out, file, field), (captured.err, captured.out[-800:])
    assert _listing(tmp_path) == before  # nothing written


class _Evil:
    def __reduce__(self):  # what a malicious checkpoint carries: a call run when it is unpickled
        return (shutil.rmtree, ("/nonexistent-animalpose-test",))


def _checkpoint_cases(trained: Path) -> dict[str, Callable[[Path], tuple[Path, str]]]:
    def save(t: Path, obj) -> Path:
        torch.save(obj, t / "x.ckpt")
        return t / "x.ckpt"

    return {
        "empty file": lambda t: ((p := t / "x.ckpt").write_bytes(b"") or p, "checkpoint"),
        "random bytes": lambda t: ((p := t / "x.ckpt").write_bytes(bytes(range(256)) * 8) or p, "checkpoint"),
        "truncated": lambda t: (_copy(trained, t / "x.ckpt", 0.5), "checkpoint"),
        "pickled object": lambda t: (save(t, {"model": _Evil()}), "checkpoint"),
        "plain pickle": lambda t: ((p := t / "x.ckpt").write_bytes(pickle.dumps(_Evil())) or p, "checkpoint"),
        "not an animalpose checkpoint": lambda t: (save(t, {"state_dict": {}}), "format"),
        "a folder": lambda t: ((p := t / "x.ckpt").mkdir() or p, "checkpoint"),
    }


CHECKPOINTS = ["empty file", "random bytes", "truncated", "pickled object", "plain pickle",
               "not an animalpose checkpoint", "a folder"]


@pytest.mark.parametrize("case", CHECKPOINTS)
def test_evaluate_names_a_bad_checkpoint_before_any_work(case, trained, dots, tmp_path, capsys):
    root = tmp_path / "in"
    root.mkdir()
    path, field = _checkpoint_cases(trained)[case](root)
    before = _listing(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--checkpoint", str(path), "--data", str(dots["val"]), "--device", "cpu", "--json"])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.out == ""
    line = captured.err.strip().splitlines()[-1]
    assert line.startswith(f"error: {path}: {field}: "), line
    assert "weights_only=False" not in line  # torch's advice to unpickle anyway is not passed on
    assert _listing(tmp_path) == before
