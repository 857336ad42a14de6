"""Provenance: content fingerprints of dataset files and folders, and the run tags made of them."""

from __future__ import annotations

from animalpose.provenance import data_tags, fingerprint


def test_fingerprints_change_with_content(tmp_path):
    a = tmp_path / "ann.json"
    a.write_text('{"a": 1}')
    f1 = fingerprint(a)
    a.write_text('{"a": 2}')
    assert fingerprint(a) != f1 and len(f1) == 16
    d1 = fingerprint(tmp_path)
    (tmp_path / "img.png").write_bytes(b"123")
    assert fingerprint(tmp_path) != d1
    assert fingerprint(tmp_path / "nope") == "missing"
    tags = data_tags([a])
    assert tags["data.fingerprint.ann.json"] == fingerprint(a)
