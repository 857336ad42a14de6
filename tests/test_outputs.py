"""Output paths: checked before work (wrong kind, read-only, full) and staged so a failure adds nothing."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from animalpose import outputs
from animalpose.errors import OutputError
from animalpose.outputs import check_output_dir, check_output_file, output_errors, staged_folder


def test_a_file_where_a_folder_is_needed_names_it_and_the_option(tmp_path):
    f = tmp_path / "out"
    f.write_text("x")
    with pytest.raises(OutputError, match=r"cannot write .*out \(--out\): exists and is a file; a folder"):
        check_output_dir(f)
    with pytest.raises(OutputError, match=r"out is a file, not a folder") as info:
        check_output_dir(f / "sub" / "deeper")  # a file above the folder
    assert info.value.file == str(f / "sub" / "deeper") and info.value.field == "--out"
    assert f.read_text() == "x"


def test_a_folder_where_a_file_is_needed(tmp_path):
    with pytest.raises(OutputError, match=r"is a folder; a file name is needed"):
        check_output_file(tmp_path, "--out")
    target = check_output_file(tmp_path / "new" / "a.json")  # its folder is made
    assert target.parent.is_dir() and not target.exists()
    assert list(target.parent.iterdir()) == []  # the write probe is gone


def _failing_open(code):
    real = os.open

    def fake(path, flags, *args):
        if ".write-probe." in str(path):
            raise OSError(code, os.strerror(code), str(path))
        return real(path, flags, *args)
    return fake


@pytest.mark.parametrize(("code", "reason"), [(errno.EROFS, "read-only file system"),
                                              (errno.EACCES, "permission denied"),
                                              (errno.EPERM, "immutable"),
                                              (errno.ENOSPC, "no space left on device")])
def test_unwritable_folder_is_a_clear_error(tmp_path, monkeypatch, code, reason):
    monkeypatch.setattr(outputs.os, "open", _failing_open(code))
    with pytest.raises(OutputError, match=reason) as info:
        check_output_dir(tmp_path / "runs", "--out")
    assert info.value.file == str(tmp_path / "runs")


def test_full_file_system_is_refused_before_work(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda _: type("U", (), {"free": 4096})())
    with pytest.raises(OutputError, match=r"disk full: 4096 bytes free"):
        check_output_file(tmp_path / "x.json", "--out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a mode-555 folder; the monkeypatched cases cover it")
def test_real_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="permission denied"):
            check_output_dir(ro / "sub")
    finally:
        ro.chmod(0o755)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this machine")
def test_a_write_that_hits_a_full_device_becomes_a_clear_error():
    """/dev/full fails every write with ENOSPC: the real error a full disk gives mid-run."""
    with pytest.raises(OutputError, match=r"cannot write /dev/full \(--out\): no space left on device"):
        with output_errors("/dev/full"), open("/dev/full", "w") as fh:
            fh.write("x" * 10)
            fh.flush()


def test_staged_folder_moves_everything_on_success_and_replaces_old_files(tmp_path):
    (tmp_path / "images.csv").write_text("old")
    with staged_folder(tmp_path, "predict") as stage:
        assert stage.parent == tmp_path and stage.name.startswith(".predict.")
        (stage / "images.csv").write_text("new")
        (stage / "labelled").mkdir()
        (stage / "labelled" / "a.png").write_bytes(b"png")
        assert (tmp_path / "images.csv").read_text() == "old"  # nothing visible before the end
    assert (tmp_path / "images.csv").read_text() == "new"
    assert (tmp_path / "labelled" / "a.png").read_bytes() == b"png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images.csv", "labelled"]


def test_staged_folder_adds_nothing_when_the_work_fails(tmp_path):
    (tmp_path / "images.csv").write_text("old")
    with pytest.raises(RuntimeError), staged_folder(tmp_path, "predict") as stage:
        (stage / "images.csv").write_text("half")
        (stage / "a.png").write_bytes(b"png")
        raise RuntimeError("killed mid-way")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images.csv"]
    assert (tmp_path / "images.csv").read_text() == "old"


def test_stagings_of_dead_processes_are_removed_live_ones_kept(tmp_path):
    dead = tmp_path / ".predict.999999999.deadbeef"  # no such pid
    dead.mkdir()
    (dead / "images.csv").write_text("partial")
    live = tmp_path / f".predict.{os.getpid()}.0badcafe"
    live.mkdir()
    assert outputs.remove_dead_stagings(tmp_path, "predict") == [dead]
    assert not dead.exists() and live.is_dir()
