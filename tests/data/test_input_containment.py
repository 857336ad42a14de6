"""Input side of issue 26: image paths stay under the image root, folders are not files, a pixel limit.

Each corrupt case asserts the error class, the file and the field in the message."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from animalpose.cli import app
from animalpose.config import DataConfig
from animalpose.data import images as images_mod
from animalpose.data import validate as validate_mod
from animalpose.data.images import DEFAULT_MAX_PIXELS, read_image
from animalpose.data.readers import read_dataset
from animalpose.data.readers.common import load_json
from animalpose.data.validate import validate_dataset
from animalpose.engine.checkpoint import load_checkpoint
from animalpose.errors import DataError
from animalpose.keypoints import load_schema

SCHEMA = load_schema("coco")


def _png(path: Path, w: int = 64, h: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 90, np.uint8))
    return path


def _coco(root: Path, file_names: list[str]) -> Path:
    """``root/annotations/data.json`` with one instance per image (17 visible joints inside 64x48)."""
    kps = []
    for k in range(17):
        kps += [10.0 + k, 20.0, 2]
    doc = {"images": [{"id": i + 1, "file_name": f} for i, f in enumerate(file_names)],
           "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1, "keypoints": kps,
                            "bbox": [5, 5, 40, 30]} for i in range(len(file_names))],
           "categories": [{"id": 1, "name": "person", "keypoints": list(SCHEMA.joints)}]}
    path = root / "annotations" / "data.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def opened(monkeypatch):
    """The image paths validation opened (to show an outside path is never read)."""
    seen: list[str] = []
    real = validate_mod.image_problem

    def spy(rec, *a, **k):
        seen.append(rec.image)
        return real(rec, *a, **k)

    monkeypatch.setattr(validate_mod, "image_problem", spy)
    return seen


def test_dot_dot_escape_is_refused_naming_file_and_field_and_never_opened(tmp_path, opened):
    _png(tmp_path / "ds" / "images" / "a.png")
    outside = _png(tmp_path / "secret.png")
    ann = _coco(tmp_path / "ds", ["images/a.png", "../secret.png"])
    with pytest.raises(DataError) as info:
        validate_dataset(read_dataset(ann, "coco"), SCHEMA)
    assert info.value.file == str(ann) and info.value.field == "images[1].file_name"
    assert "outside the dataset's image root" in str(info.value) and "data.allow_outside_root=true" in str(info.value)
    assert str(outside) not in [os.path.realpath(p) for p in opened]


def test_absolute_path_and_etc_passwd_are_refused_unless_allowed(tmp_path, opened):
    _png(tmp_path / "ds" / "images" / "a.png")
    elsewhere = _png(tmp_path / "other" / "b.png")
    ann = _coco(tmp_path / "ds", ["images/a.png", str(elsewhere), "../../../../../../../../etc/passwd"])
    ds = read_dataset(ann, "coco")
    with pytest.raises(DataError, match=r"images\[1\]\.file_name: image path .*b\.png resolves to") as info:
        validate_dataset(ds, SCHEMA)
    fields = {p.field for p in info.value.problems}
    assert fields == {"images[1].file_name", "images[2].file_name"}
    assert not any(p.endswith("passwd") for p in opened)
    kept = validate_dataset(read_dataset(ann, "coco"), SCHEMA, skip_bad=True)
    assert [Path(r.image).name for r in kept.records] == ["a.png"] and kept.skipped.records == 2
    # with the opt-in the outside image is read; /etc/passwd is then just not an image
    with pytest.raises(DataError, match=r"passwd: image: "):
        validate_dataset(read_dataset(ann, "coco"), SCHEMA, allow_outside_root=True)


def test_a_symbolic_link_out_of_the_root_is_refused(tmp_path):
    _png(tmp_path / "ds" / "images" / "a.png")
    target = _png(tmp_path / "elsewhere" / "real.png")
    (tmp_path / "ds" / "images" / "link.png").symlink_to(target)
    ann = _coco(tmp_path / "ds", ["images/a.png", "images/link.png"])
    with pytest.raises(DataError, match=r"images\[1\]\.file_name: .*link\.png resolves to .*elsewhere/real\.png"):
        validate_dataset(read_dataset(ann, "coco"), SCHEMA)
    assert len(validate_dataset(read_dataset(ann, "coco"), SCHEMA, allow_outside_root=True).records) == 2


def test_dot_dot_that_stays_inside_the_root_is_fine(tmp_path):
    _png(tmp_path / "ds" / "images" / "a.png")
    ann = _coco(tmp_path / "ds", ["images/../images/a.png"])
    assert len(validate_dataset(read_dataset(ann, "coco"), SCHEMA).records) == 1


def test_data_check_reports_the_escape_and_exits_1(tmp_path):
    _png(tmp_path / "ds" / "images" / "a.png")
    ann = _coco(tmp_path / "ds", ["images/a.png", "/etc/passwd"])
    res = CliRunner().invoke(app, ["data", "check", str(ann), "--json"])
    assert res.exit_code == 1
    (err,) = json.loads(res.output)["errors"]
    assert err["file"] == str(ann) and err["field"] == "images[1].file_name" and "/etc/passwd" in err["message"]


def test_training_config_opt_in_is_a_typed_setting():
    assert DataConfig().allow_outside_root is False
    assert DataConfig(allow_outside_root=True).allow_outside_root is True
    assert DataConfig().max_image_pixels == DEFAULT_MAX_PIXELS == 100_000_000  # 12x a 4K frame (8.3 MP)


# ---- DeepLabCut, SLEAP, TigDog: the same rule, the root being the project / the .slp's folder / the TigDog root


def _dlc_csv(path: Path, images: list[str]) -> Path:
    """A DLC CollectedData CSV with two body parts labelled inside a 64x48 image, one row per image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["scorer,lab,lab,lab,lab", "bodyparts,nose,nose,tail,tail", "coords,x,y,x,y"]
    rows += [f"{img},10.0,12.0,30.0,20.0" for img in images]
    path.write_text("\n".join(rows) + "\n")
    return path


def _dlc_schema(ds):
    return ds.meta["schema_def"]


def test_dlc_rows_outside_the_project_are_refused_naming_the_row(tmp_path, opened):
    project = tmp_path / "proj"
    _png(project / "labeled-data" / "img0.png")
    outside = _png(tmp_path / "secret.png")
    csv = _dlc_csv(project / "CollectedData.csv", ["labeled-data/img0.png", "../secret.png", "/etc/passwd"])
    ds = read_dataset(csv, "dlc")
    assert ds.meta["image_root"] == str(project)
    with pytest.raises(DataError, match="outside the dataset's image root") as info:
        validate_dataset(ds, _dlc_schema(ds))
    assert info.value.file == str(csv) and info.value.field == "row 5.image"
    assert {(p.file, p.field) for p in info.value.problems} == {(str(csv), "row 5.image"), (str(csv), "row 6.image")}
    assert not any(os.path.realpath(p) in (str(outside), "/etc/passwd") for p in opened)  # never opened
    kept = validate_dataset(read_dataset(csv, "dlc"), _dlc_schema(ds), skip_bad=True)
    assert [Path(r.image).name for r in kept.records] == ["img0.png"] and kept.skipped.records == 2
    # the opt-in reads the outside image; /etc/passwd is then just not an image
    with pytest.raises(DataError, match=r"passwd: image: "):
        validate_dataset(read_dataset(csv, "dlc"), _dlc_schema(ds), allow_outside_root=True)


def test_dlc_project_root_is_the_folder_holding_labeled_data(tmp_path):
    """In a project the label file lives in labeled-data/<video>/, its paths start at the project root; a
    frame that is a link leading out of the project is refused, one inside it is read."""
    project = tmp_path / "proj"
    frames = project / "labeled-data" / "vid"
    _png(frames / "img0.png")
    (project / "config.yaml").write_text("Task: t\nbodyparts: [nose, tail]\n")
    (frames / "img1.png").symlink_to(_png(tmp_path / "elsewhere" / "real.png"))
    csv = _dlc_csv(frames / "CollectedData_lab.csv", ["labeled-data/vid/img0.png", "labeled-data/vid/img1.png"])
    for path in (csv, project):  # the label file alone, and the whole project
        ds = read_dataset(path, "dlc")
        assert ds.meta["image_root"] == str(project)
        with pytest.raises(DataError, match=r"img1\.png resolves to .*elsewhere/real\.png") as info:
            validate_dataset(ds, _dlc_schema(ds))
        assert info.value.file == str(csv) and info.value.field == "row 5.image"
        assert len(validate_dataset(ds, _dlc_schema(ds), allow_outside_root=True).records) == 2


def _slp(path: Path, video: Path) -> Path:
    sio = pytest.importorskip("sleap_io")
    skeleton = sio.Skeleton(["head", "tail"], edges=[("head", "tail")])
    vid = sio.Video.from_filename(str(video))
    inst = sio.Instance.from_numpy(np.array([[3.0, 4.0], [10.0, 12.0]]), skeleton)
    labels = sio.Labels(labeled_frames=[sio.LabeledFrame(video=vid, frame_idx=1, instances=[inst])], videos=[vid],
                        skeletons=[skeleton])
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.save_slp(labels, str(path), verbose=False)
    return path


def test_sleap_video_outside_the_slp_folder_is_refused_unless_allowed(tmp_path, write_video):
    video = write_video(tmp_path / "elsewhere" / "flies.mp4", frames=4)
    slp = _slp(tmp_path / "labels" / "flies.slp", video.resolve())  # the labeller's absolute path
    ds = read_dataset(slp, "slp")
    assert ds.meta["image_root"] == str(slp.parent) and ds.records[0].image == str(video.resolve())
    with pytest.raises(DataError, match=r"flies\.mp4 resolves to .*outside the dataset's image root") as info:
        validate_dataset(ds, ds.meta["schema_def"])
    assert info.value.file == str(slp) and info.value.field == "labeled_frames[0].instances[0].image"
    assert len(validate_dataset(ds, ds.meta["schema_def"], allow_outside_root=True).records) == 1
    # a copy of the video beside the .slp is preferred to the recorded path outside: no opt-in needed
    write_video(slp.parent / "flies.mp4", frames=4)
    ds = read_dataset(slp, "slp")
    assert ds.records[0].image == str(slp.parent / "flies.mp4")
    assert len(validate_dataset(ds, ds.meta["schema_def"]).records) == 1


# ---- a folder where a file is expected


def test_a_folder_given_as_a_file_says_so(tmp_path):
    folder = tmp_path / "looks_like.png"
    folder.mkdir()
    with pytest.raises(DataError, match=r"looks_like\.png: image: is a folder; a file is needed here"):
        read_image(folder)
    with pytest.raises(DataError, match=r"x\.json: <file>: is a folder; a file is needed here"):
        (tmp_path / "x.json").mkdir()
        load_json(tmp_path / "x.json")
    with pytest.raises(DataError, match=r"best\.ckpt: checkpoint: is a folder; a checkpoint file is needed here"):
        (tmp_path / "best.ckpt").mkdir()
        load_checkpoint(tmp_path / "best.ckpt")
    _png(tmp_path / "ds" / "images" / "a.png")
    (tmp_path / "ds" / "images" / "b.png").mkdir()
    ann = _coco(tmp_path / "ds", ["images/a.png", "images/b.png"])
    with pytest.raises(DataError, match=r"b\.png: images\[1\]\.file_name: is a folder; a file is needed here"):
        validate_dataset(read_dataset(ann, "coco"), SCHEMA)


# ---- pixel limit


def _png_header_only(path: Path, w: int, h: int) -> Path:
    """A PNG whose header declares w x h (a decompression bomb's first bytes) with an empty IDAT and IEND."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, monkeypatch):
    bomb = _png_header_only(tmp_path / "bomb.png", 20000, 20000)
    decoded = []
    monkeypatch.setattr(images_mod.cv2, "imdecode", lambda *a: decoded.append(1))
    with pytest.raises(DataError, match=r"bomb\.png: image: 20000x20000 = 400\.0 megapixels exceeds the limit of "
                                        r"100 megapixels"):
        read_image(bomb)
    assert not decoded  # refused before decoding


def test_the_limit_is_configurable_and_names_the_image(tmp_path, monkeypatch):
    img = _png(tmp_path / "ds" / "images" / "a.png", 64, 48)
    monkeypatch.setenv(images_mod.MAX_PIXELS_ENV, "1000")
    with pytest.raises(DataError, match=r"a\.png: image: 64x48 .* limit of 0\.001 megapixels"):
        read_image(img)
    monkeypatch.setenv(images_mod.MAX_PIXELS_ENV, str(64 * 48))
    assert read_image(img).shape == (48, 64, 3)
    monkeypatch.setenv(images_mod.MAX_PIXELS_ENV, "lots")
    with pytest.raises(DataError, match=r"ANIMALPOSE_MAX_IMAGE_PIXELS: expected a positive whole number"):
        read_image(img)
    monkeypatch.delenv(images_mod.MAX_PIXELS_ENV)
    ann = _coco(tmp_path / "ds", ["images/a.png"])
    with pytest.raises(DataError, match=r"a\.png: image: 64x48 = 0\.0 megapixels exceeds the limit"):
        validate_dataset(read_dataset(ann, "coco"), SCHEMA, max_pixels=100)


def test_predict_refuses_a_bomb_before_any_work(tmp_path):
    from animalpose.engine.predict import collect_inputs

    ok = _png(tmp_path / "in" / "a.png")
    _png_header_only(tmp_path / "in" / "b.png", 30000, 30000)
    with pytest.raises(DataError, match=r"b\.png: image: 30000x30000"):
        collect_inputs([tmp_path / "in"])
    assert collect_inputs([ok]) == ([ok], [])
