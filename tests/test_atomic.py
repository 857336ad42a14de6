import json
import os
import stat

import pytest

from animalpose.atomic import atomic_path, remove_temporaries, write_bytes_atomic, write_json_atomic, write_text_atomic


def test_success_replaces_target_and_leaves_only_it(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    inode_before = target.stat().st_ino
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"  # nothing visible until the block ends
    assert target.read_text() == "new"
    assert target.stat().st_ino != inode_before  # renamed over, not rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_temp_file_is_beside_target_with_same_suffix(tmp_path):
    target = tmp_path / "sub" / "figure.png"  # the folder is created
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent
        assert tmp.suffix == ".png"
        assert tmp.name.startswith(".figure.")
        assert tmp.is_file() and tmp.stat().st_size == 0
        tmp.write_bytes(b"\x89PNG")
    assert target.read_bytes() == b"\x89PNG"
    with atomic_path(tmp_path / "noext") as tmp:  # no suffix: the temporary file gets ".tmp"
        assert tmp.suffix == ".tmp"
        tmp.write_text("x")
    assert (tmp_path / "noext").read_text() == "x"


@pytest.mark.parametrize("exc", [ValueError, KeyboardInterrupt])
def test_exception_keeps_previous_content_and_removes_temp(tmp_path, exc):
    target = tmp_path / "state.json"
    target.write_text('{"round": 1}')
    with pytest.raises(exc), atomic_path(target) as tmp:
        tmp.write_text('{"round": 2, "trunc')
        raise exc("writer failed")
    assert target.read_text() == '{"round": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_exception_without_previous_target_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "new.bin", fsync=True) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_two_open_temps_for_one_target_do_not_collide(tmp_path):
    target = tmp_path / "x.txt"
    with atomic_path(target) as a, atomic_path(target) as b:
        assert a != b
        a.write_text("a")
        b.write_text("b")
    assert target.read_text() == "a"  # the outer block finishes last and wins
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_permissions_follow_umask_like_open(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "m.txt", "x")
        ordinary = tmp_path / "o.txt"
        ordinary.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(ordinary.stat().st_mode) == 0o644


def test_json_helper_round_trip_and_options(tmp_path):
    doc = {"b": [1, 2.5, None], "a": {"name": "horse", "ok": True}}
    path = write_json_atomic(tmp_path / "out" / "doc.json", doc, indent=1, sort_keys=True)
    assert path == tmp_path / "out" / "doc.json"
    text = path.read_text()
    assert json.loads(text) == doc
    assert text == json.dumps(doc, indent=1, sort_keys=True)  # exactly what json.dumps gives, no newline added
    assert text.index('"a"') < text.index('"b"')


def test_json_helper_unencodable_value_leaves_target(tmp_path):
    path = write_json_atomic(tmp_path / "d.json", {"x": 1})
    with pytest.raises(ValueError):
        write_json_atomic(path, {"x": float("nan")}, allow_nan=False)
    assert json.loads(path.read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["d.json"]


def test_text_and_bytes_helpers(tmp_path):
    p = write_text_atomic(tmp_path / "t.csv", "a,b\nc,d\n", newline="\r\n", encoding="utf-8", fsync=True)
    assert p.read_bytes() == b"a,b\r\nc,d\r\n"
    b = write_bytes_atomic(str(tmp_path / "b.bin"), b"\x00\x01")
    assert b.read_bytes() == b"\x00\x01"


def test_remove_temporaries_takes_only_the_writer_names(tmp_path):
    """What a kill inside atomic_path leaves (``.<stem>.<8 hex><suffix>``) goes; everything else stays."""
    (tmp_path / "round_0").mkdir()
    with atomic_path(tmp_path / "state.json") as tmp:
        left = tmp.name  # the name a kill at this instant leaves behind
    stale = [left, ".round_0.0badc0de.ckpt", "round_0/.summary.1234abcd.json"]
    keep = ["state.json", ".notes.txt", ".x.1234abcd", "keep.1234abcd.json", ".y.1234ABCD.json", "round_0/a.png"]
    for name in stale + keep:
        (tmp_path / name).write_text("{")
    top = remove_temporaries(tmp_path)  # this folder only
    assert sorted(p.name for p in top) == sorted(stale[:2])
    assert (tmp_path / stale[2]).exists()
    assert [str(p.relative_to(tmp_path)) for p in remove_temporaries(tmp_path, recursive=True)] == [stale[2]]
    assert all((tmp_path / name).exists() for name in keep)
    (tmp_path / ".last.0badc0de.ckpt").write_text("")
    (tmp_path / ".state.0badc0de.json").write_text("")
    assert [p.name for p in remove_temporaries(tmp_path, suffix=".ckpt")] == [".last.0badc0de.ckpt"]
    assert (tmp_path / ".state.0badc0de.json").exists()
