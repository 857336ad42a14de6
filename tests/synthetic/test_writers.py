"""Datasets on disk: byte-identical for a seed whatever the worker count, valid COCO, idempotent."""

from __future__ import annotations

import json

import numpy as np
import pytest

from animalpose.data.check import check_dataset
from animalpose.data.readers.coco import read_coco
from animalpose.errors import ConfigError, OutputError
from animalpose.keypoints import load_schema
from synthetic import generate_dataset
from synthetic.template import load_template


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_with_one_and_two_workers(tmp_path):
    kw = {"species": "horse", "style": "photo", "n": 4, "size": 48, "seed": 3, "clips": 1, "frames": 3,
          "masks": True}
    a = _files(generate_dataset(tmp_path / "a", workers=1, **kw))
    b = _files(generate_dataset(tmp_path / "b", workers=2, **kw))
    assert a.keys() == b.keys()
    assert len([k for k in a if k.startswith("images/")]) == 7
    assert len([k for k in a if k.startswith("masks/")]) == 7
    assert a == b
    c = _files(generate_dataset(tmp_path / "c", workers=1, **{**kw, "seed": 4}))
    assert c["images/000000.jpg"] != a["images/000000.jpg"]  # photo images are JPEG


def test_generation_is_idempotent_and_reruns_when_the_config_changes(tmp_path):
    out = generate_dataset(tmp_path / "d", "dog", "cad", 2, 40, 0)
    stamp = (out / "images" / "000000.png").stat().st_mtime_ns
    generate_dataset(tmp_path / "d", "dog", "cad", 2, 40, 0)
    assert (out / "images" / "000000.png").stat().st_mtime_ns == stamp
    generate_dataset(tmp_path / "d", "dog", "cad", 3, 40, 0)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["images"] == 3 and manifest["n"] == 3
    (out / "images" / "000001.png").unlink()  # an incomplete folder is regenerated
    generate_dataset(tmp_path / "d", "dog", "cad", 3, 40, 0)
    assert (out / "images" / "000001.png").is_file()


@pytest.mark.parametrize("style", ["cad", "photo", "wild"])
@pytest.mark.parametrize("species", ["horse", "tiger", "dog", "sheep", "elephant", "human"])
def test_every_template_writes_valid_coco(tmp_path, species, style):
    out = generate_dataset(tmp_path / species, species, style, 3, 56, 1, clips=1, frames=2)
    tpl = load_template(species)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["species"] == species and manifest["counts"]["images"] == 5
    assert sorted(manifest["schemas"]) == sorted(tpl.keypoints)
    for schema_name in tpl.keypoints:
        schema = load_schema(schema_name)
        doc = json.loads((out / "annotations" / f"{schema_name}.json").read_text())
        assert doc["info"]["schema"] == schema_name
        assert doc["categories"][0]["keypoints"] == list(schema.joints)
        ds = read_coco(out, schema_name)
        assert len(ds.records) == 5
        report = check_dataset(ds)
        assert report.ok, [str(p) for p in report.errors]
        for rec in ds.records:
            kp = rec.keypoints
            assert kp.shape == (schema.num_joints, 3) and np.isfinite(kp).all()
            lab = kp[:, 2] > 0
            assert np.all((kp[lab, :2] >= 0) & (kp[lab, :2] <= 55))
            assert isinstance(rec.meta["factors"]["alpha"]["mode"], str)
        clip = [r for r in ds.records if r.video_id is not None]
        assert [r.frame_index for r in clip] == [0, 1] and len({r.video_id for r in clip}) == 1


def test_bad_requests_raise_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="species"):
        generate_dataset(tmp_path, "unicorn", "cad", 1, 64, 0)
    with pytest.raises(ConfigError, match="frames"):
        generate_dataset(tmp_path, "dog", "cad", 1, 64, 0, clips=1, frames=1)
    with pytest.raises(ConfigError, match="size"):
        generate_dataset(tmp_path, "dog", "cad", 1, 8, 0)


def test_box_covers_visible_silhouette_and_labelled_keypoints():
    from synthetic.writers import _bbox

    parts = np.zeros((20, 30), np.uint8)
    parts[5:10, 4:8] = 3  # silhouette: columns 4..7, rows 5..9
    parts[0:2, 0:2] = 255  # an occluder does not count
    kp = np.array([[12.0, 7.0, 1], [0.0, 0.0, 0], [6.0, 6.0, 2]], np.float32)  # occluded joint at x = 12
    assert _bbox(parts, kp) == [3.5, 4.5, 8.5, 5.0]
    assert _bbox(np.zeros((4, 4), np.uint8), np.zeros((1, 3), np.float32)) == [0.0, 0.0, 0.0, 0.0]


def test_interrupted_generation_resumes_without_rewriting_finished_images(tmp_path, monkeypatch):
    import synthetic.writers as writers

    kw = {"species": "tiger", "style": "cad", "n": 4, "size": 40, "seed": 5}
    fresh = _files(generate_dataset(tmp_path / "fresh", **kw))
    real_write = writers._write_item
    calls = {"n": 0}

    def killed_after_two(*args):  # the run dies after two images
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_write(*args)

    monkeypatch.setattr(writers, "_write_item", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(tmp_path / "run", **kw)
    out = tmp_path / "run"
    assert not out.exists()  # nothing half-written where the dataset goes
    stage = tmp_path / ".run.partial"
    assert sorted(p.name for p in (stage / "images").iterdir()) == ["000000.png", "000001.png"]
    stamp = (stage / "images" / "000000.png").stat().st_mtime_ns
    monkeypatch.setattr(writers, "_write_item", real_write)
    generate_dataset(tmp_path / "run", **kw)
    assert (out / "images" / "000000.png").stat().st_mtime_ns == stamp  # kept, not re-encoded
    assert not stage.exists() and not (out / ".partial").exists()
    assert _files(out) == fresh


def test_a_failed_regeneration_keeps_the_previous_dataset_whole(tmp_path, monkeypatch):
    import synthetic.writers as writers

    out = generate_dataset(tmp_path / "ds", "tiger", "cad", 3, 40, 1)
    before = _files(out)
    monkeypatch.setattr(writers, "write_coco", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space")))
    with pytest.raises(OutputError, match=r"ds \(--out\): no space left on device"):
        generate_dataset(tmp_path / "ds", "tiger", "cad", 5, 40, 2)  # another config: would replace it
    assert _files(out) == before
    monkeypatch.undo()
    new = _files(generate_dataset(tmp_path / "ds", "tiger", "cad", 5, 40, 2))
    assert len([k for k in new if k.startswith("images/")]) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no staging or old copy left


def test_output_that_is_a_file_or_a_foreign_folder_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OutputError, match=r"file \(--out\): exists and is a file"):
        generate_dataset(f, "tiger", "cad", 1, 40, 0)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(OutputError, match="not a dataset written by `animalpose synth`"):
        generate_dataset(foreign, "tiger", "cad", 1, 40, 0)
    assert (foreign / "notes.txt").read_text() == "keep"
