import json

import pytest

from animalpose.data.watch import TargetWatcher, file_fingerprint
from animalpose.errors import DataError


def _write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_new_files_then_seen(tmp_path):
    folder = tmp_path / "target"
    _write(folder / "a.png", b"png-a")
    _write(folder / "clips" / "b.mp4", b"mp4-b" * 100)
    _write(folder / "notes.txt", b"ignored: not an image or video")
    w = TargetWatcher(folder, tmp_path / "state" / "seen.json")

    assert w.new_files() == ["a.png", "clips/b.mp4"]
    w.mark_seen(["a.png"])
    assert w.new_files() == ["clips/b.mp4"]
    w.mark_seen(w.new_files())
    assert w.new_files() == []

    _write(folder / "c.jpg", b"jpg-c")
    assert w.new_files() == ["c.jpg"]


def test_changed_content_is_new_again(tmp_path):
    folder = tmp_path / "t"
    _write(folder / "a.png", b"one")
    w = TargetWatcher(folder, tmp_path / "seen.json")
    w.mark_seen(["a.png"])
    _write(folder / "a.png", b"two")
    assert w.new_files() == ["a.png"]


def test_fingerprint_sees_tail_of_large_file(tmp_path):
    p = tmp_path / "v.mp4"
    body = bytearray(b"x" * 300_000)
    p.write_bytes(bytes(body))
    before = file_fingerprint(p)
    body[-1:] = b"y"
    p.write_bytes(bytes(body))
    assert file_fingerprint(p) != before


def test_dataset_fingerprint_tracks_content(tmp_path):
    folder = tmp_path / "t"
    _write(folder / "a.png", b"one")
    w = TargetWatcher(folder, tmp_path / "seen.json")
    f1 = w.dataset_fingerprint()
    assert f1 == w.dataset_fingerprint()
    _write(folder / "b.png", b"two")
    assert w.dataset_fingerprint() != f1


def test_bad_state_and_missing_folder(tmp_path):
    folder = tmp_path / "t"
    _write(folder / "a.png", b"one")
    state = tmp_path / "seen.json"
    state.write_text("{not json")
    with pytest.raises(DataError, match=r"seen\.json"):
        TargetWatcher(folder, state).new_files()
    state.write_text(json.dumps({"seen": []}))
    with pytest.raises(DataError, match="seen"):
        TargetWatcher(folder, state).new_files()
    with pytest.raises(DataError, match="target_folder"):
        TargetWatcher(tmp_path / "missing", state).scan()
    state.unlink()
    with pytest.raises(DataError, match="not in the watched folder"):
        TargetWatcher(folder, state).mark_seen(["b.png"])
