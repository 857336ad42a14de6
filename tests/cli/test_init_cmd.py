"""`animalpose init --from-dlc` and `animalpose data split` through the real CLI app, on a DeepLabCut
project made of the real mirror-mouse labels and video (tests/conftest.py: make_dlc_project)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from animalpose.adapt.ccssl import CCSSLConfig
from animalpose.cli import app
from animalpose.config import load_config
from animalpose.data.readers import read_dataset
from animalpose.errors import DataError

runner = CliRunner()


def test_init_from_dlc_writes_configs_that_load_from_anywhere_and_train(tmp_path, dlc_project, monkeypatch):
    project = dlc_project(tmp_path / "lab" / "mirror-rick-2026-12-05", sessions=3)
    result = runner.invoke(app, ["init", "--from-dlc", str(project)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    out = project / "animalpose"
    assert report["out"] == str(out) and report["schema"] == "dlc:mirror" and report["joints"] == 17
    assert report["split_by"] == "video" and report["videos"] == [str(project / "videos" / "test_vid.mp4")]
    # the files use relative paths (inside the project) and validate from another working directory
    train_raw = yaml.safe_load((out / "train.yaml").read_text())
    adapt_raw = yaml.safe_load((out / "adapt_ccssl.yaml").read_text())
    assert train_raw["data"]["train"] == ["data/train.json"] and train_raw["model"]["num_joints"] == 17
    assert adapt_raw["base"] == "train.yaml" and adapt_raw["data"]["target"] == ["../videos/test_vid.mp4"]
    assert "paw1LH_top, paw2LF_top" in (out / "train.yaml").read_text()  # the body parts, named in the header
    moved = tmp_path / "moved"
    shutil.move(str(project.parent), moved)  # the project folder moves with its configs
    out = moved / project.name / "animalpose"
    monkeypatch.chdir(tmp_path)
    cfg = load_config(out / "adapt_ccssl.yaml", CCSSLConfig)
    assert cfg.data.target == [out / ".." / "videos" / "test_vid.mp4"]
    assert cfg.ccssl.video_step == 4 and cfg.ccssl.source_epochs == 180  # 994 frames -> every 4th (<= 300)
    # the adaptation runs at the rate the supervised schedule (180 epochs, cut at 144) ends at
    assert (cfg.train.epochs, cfg.train.lr) == (27, pytest.approx(2e-3 * cfg.train.gamma))
    shown = runner.invoke(app, ["config", "show", str(out / "adapt_ccssl.yaml")])
    assert shown.exit_code == 0, shown.output
    assert yaml.safe_load(shown.stdout)["ccssl"]["lambda_target"] == 1.0
    # the three splits: whole sessions, every labelled frame once
    split = json.loads((out / "data" / "split.json").read_text())
    assert sorted(v for s in split["splits"].values() for v in s["videos"]) == ["session0", "session1", "session2"]
    assert sum(s["frames"] for s in split["splits"].values()) == 90
    test_set = read_dataset(out / "data" / "test.json")
    assert test_set.schema == "dlc:mirror" and all(Path(r.image).is_file() for r in test_set.records)
    # data/ sits beside labeled-data/: the split files say ../, so the configs opt in to reading outside data/
    assert load_config(out / "train.yaml").data.allow_outside_root and cfg.data.allow_outside_root
    # a tiny run of the generated train config (smaller network and crops: the plumbing, not the accuracy)
    ran = runner.invoke(app, ["train", "--config", str(out / "train.yaml"), "--out", str(tmp_path / "run"),
                              "train.epochs=1", "train.device=cpu", "model.channels=16", "data.input_size=[64,64]",
                              "data.heatmap_size=[16,16]", "tracking.enabled=false", "--no-progress"])
    assert ran.exit_code == 0, ran.output
    assert (tmp_path / "run" / "last.ckpt").is_file()


def test_init_refuses_two_sources_and_a_project_without_labels(tmp_path, dlc_project):
    bad = runner.invoke(app, ["init", "--from-dlc", "a", "--from-sleap", "b.slp"])
    assert bad.exit_code == 2 and "one of --from-dlc" in bad.output
    project = dlc_project(tmp_path / "p", sessions=1, frames=10)
    shutil.rmtree(project / "labeled-data" / "session0")
    from animalpose.project_init import init_from_dlc

    with pytest.raises(DataError, match="labeled-data"):
        init_from_dlc(project)


def test_init_target_frames_sets_the_video_step(tmp_path, dlc_project):
    """--target-frames N: the frame step keeps about N frames of the longest video (994 frames: N 100 -> every
    10th, N 1000 -> every frame); N 0 is refused by the CLI, and by the library naming the field."""
    project = dlc_project(tmp_path / "p", sessions=3)
    for n, step in ((100, 10), (1000, 1)):
        ran = runner.invoke(app, ["init", "--from-dlc", str(project), "--out", str(tmp_path / f"o{n}"),
                                  "--target-frames", str(n)])
        assert ran.exit_code == 0, ran.output
        assert load_config(tmp_path / f"o{n}" / "adapt_ccssl.yaml", CCSSLConfig).ccssl.video_step == step
        said = "every video frame" if step == 1 else f"every {step}-th video frame"
        header = " ".join(line[2:] for line in (tmp_path / f"o{n}" / "adapt_ccssl.yaml").read_text().splitlines()
                          if line.startswith("# "))
        assert said in header
    assert runner.invoke(app, ["init", "--from-dlc", str(project), "--target-frames", "0"]).exit_code == 2
    from animalpose.project_init import init_from_dlc

    with pytest.raises(DataError, match="target_frames: must be at least 1"):
        init_from_dlc(project, tmp_path / "zero", target_frames=0)
    assert not (tmp_path / "zero").exists()  # refused before the split is written


def test_data_split_command(tmp_path, dlc_project):
    project = dlc_project(tmp_path / "p", sessions=5, frames=90)
    args = ["data", "split", str(project), "--val", "0.2", "--test", "0.2", "--seed", "7"]
    first = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    second = runner.invoke(app, [*args, "--out", str(tmp_path / "b")])
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    a, b = (json.loads(r.stdout)["splits"] for r in (first, second))
    assert a == b and sum(s["frames"] for s in a.values()) == 90  # seeded: the same split twice
    assert {s: a[s]["frames"] for s in a} == {"train": 54, "val": 18, "test": 18}
    assert sorted(os.listdir(tmp_path / "a")) == ["split.json", "test.json", "train.json", "val.json"]
    one_video = runner.invoke(app, ["data", "split", str(project / "labeled-data" / "session0" /
                                                        "CollectedData_rick.csv"), "--out", str(tmp_path / "c")])
    # (main() turns the DataError into one line on stderr and exit code 2)
    assert isinstance(one_video.exception, DataError) and "--by frame" in str(one_video.exception)
    assert "CollectedData_rick.csv: split" in str(one_video.exception)


SLEAP = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "sleap-clip" / "clip.slp"


def test_init_from_sleap_keeps_each_frame_whole_and_crops_per_animal(tmp_path):
    """The SLEAP clip: one video, 2 flies in each of 1,500 labelled frames. One video -> split by frame (with a
    note); both flies of a frame land in the same split; each fly is cropped around its own keypoints; no
    CC-SSL config (every frame is labelled: no predicted fly gives a box on an unlabelled frame)."""
    if not SLEAP.is_file():
        pytest.skip(f"real data not found at {SLEAP}")
    from animalpose.project_init import init_from_sleap

    result = init_from_sleap(SLEAP, tmp_path / "flies")
    assert result.schema == "sleap:clip" and len(result.bodyparts) == 13 and result.by == "frame"
    assert result.adapt_config is None and any("adapt_ccssl.yaml not written" in n for n in result.notes)
    frames = {}
    for name in ("train", "val", "test"):
        ds = read_dataset(result.split[name])
        for r in ds.records:
            frames.setdefault(r.frame_index, set()).add(name)
            assert r.bbox[2] < 300  # a fly's keypoint box, not the 1024-px frame
    assert len(frames) == 1500 and all(len(s) == 1 for s in frames.values())
    assert load_config(result.train_config).model.num_joints == 13


def test_the_generated_adapt_config_runs_with_its_control(tmp_path, dlc_project):
    """init, then `adapt ccssl` on the generated config as a user would run it (shrunk to a tiny network and
    one epoch, every 100th video frame): the header schema flows through CC-SSL, the val split scores both
    arms, and the report names the one kept."""
    project = dlc_project(tmp_path / "mouse", sessions=3)
    assert runner.invoke(app, ["init", "--from-dlc", str(project)]).exit_code == 0
    cfg = project / "animalpose" / "adapt_ccssl.yaml"
    ran = runner.invoke(app, ["adapt", "ccssl", "--config", str(cfg), "--out", str(tmp_path / "run"), "--no-progress",
                              "train.epochs=1", "ccssl.source_epochs=1", "ccssl.regenerate_every=1",
                              "model.channels=16", "data.input_size=[64,64]", "data.heatmap_size=[16,16]",
                              "ccssl.video_step=100", "ccssl.num_geometric=1", "ccssl.num_photometric=0",
                              "tracking.enabled=false", "train.device=cpu"])
    assert ran.exit_code == 0, ran.output
    report = json.loads(ran.stdout.strip().splitlines()[-1])["keep_better"]
    assert report["final"] == str(tmp_path / "run" / "final.ckpt")
    scores = {k: report[k] for k in ("source", "control", "adapted")}  # the model both started from, too
    assert report["kept"] == min(scores, key=lambda k: (scores[k], list(scores).index(k)))
    kept = json.loads((tmp_path / "run" / "keep_better.json").read_text())
    assert kept["val"] == [str(project / "animalpose" / "data" / "val.json")]
    import torch

    ckpt = torch.load(tmp_path / "run" / "final.ckpt", weights_only=False, map_location="cpu")
    assert ckpt["schema"]["name"] == "dlc:mirror" and len(ckpt["schema"]["joints"]) == 17


def _slp_with_predictions(path: Path, user_frames: int, predicted_frames: range) -> Path:
    """The real SLEAP clip's first ``user_frames`` labelled frames as user labels and its labels on
    ``predicted_frames`` as SLEAP predictions (a project after SLEAP's inference on its video), plus one
    predicted fly beside a user-labelled one on the last user frame."""
    sio = pytest.importorskip("sleap_io")
    src = sio.load_slp(str(SLEAP))
    by_frame = {int(lf.frame_idx): lf for lf in src.labeled_frames}
    skeleton = src.skeletons[0]
    frames = []
    for f in sorted(by_frame):
        insts = list(by_frame[f].instances)
        if f < user_frames - 1:
            chosen = [sio.Instance.from_numpy(i.numpy(), skeleton, track=i.track) for i in insts]
        elif f == user_frames - 1:
            chosen = [sio.Instance.from_numpy(insts[0].numpy(), skeleton, track=insts[0].track),
                      sio.PredictedInstance.from_numpy(insts[1].numpy(), skeleton, score=0.8, track=insts[1].track)]
        elif f in predicted_frames:
            chosen = [sio.PredictedInstance.from_numpy(i.numpy(), skeleton, score=0.9, track=i.track) for i in insts]
        else:
            continue
        frames.append(sio.LabeledFrame(video=src.videos[0], frame_idx=f, instances=chosen))
    sio.save_slp(sio.Labels(labeled_frames=frames, videos=src.videos, skeletons=[skeleton], tracks=src.tracks),
                 str(path), verbose=False)
    return path


def test_init_from_sleap_predictions_are_the_target_never_labels(tmp_path):
    """A SLEAP project with predictions: only user instances are split; the predictions on unlabelled frames
    are written as CC-SSL's target (box and track kept, keypoints dropped, every frame: 20 frames is under the
    300 a video keeps), the one sharing a user-labelled frame is dropped; the adapt config loads and runs
    (shrunk) through `adapt ccssl` on the real fly crops."""
    if not SLEAP.is_file():
        pytest.skip(f"real data not found at {SLEAP}")
    from animalpose.project_init import init_from_sleap

    slp = _slp_with_predictions(tmp_path / "flies.slp", 12, range(100, 120))
    result = init_from_sleap(slp, tmp_path / "flies", allow_outside_root=True)  # the video stays in shared/
    split_records = [r for name in ("train", "val", "test") for r in read_dataset(result.split[name]).records]
    assert len(split_records) == 11 * 2 + 1 and {r.frame_index for r in split_records} == set(range(12))
    assert any("41 predicted instances are not labels" in n and "40 of them" in n for n in result.notes)

    target = read_dataset(tmp_path / "flies" / "data" / "video_frames.json").records
    assert sorted({r.frame_index for r in target}) == list(range(100, 120)) and len(target) == 40
    assert all((r.keypoints == 0).all() for r in target)
    truth = {(r.frame_index, r.instance_id): r for r in read_dataset(SLEAP, "slp").records}
    for r in target:
        assert r.bbox == pytest.approx(truth[(r.frame_index, r.instance_id)].keypoint_box())
    cfg = load_config(result.adapt_config, CCSSLConfig)
    assert cfg.ccssl.video_step == 1 and cfg.ccssl.temporal and cfg.ccssl.temporal_agreement == 20.0
    assert cfg.ccssl.lambda_target == pytest.approx(yaml.safe_load(result.adapt_config.read_text())["ccssl"]
                                                   ["lambda_target"])
    # --target-frames 5 of the 20 predicted frames: every 4th (100, 104, ..., 116)
    fewer = init_from_sleap(slp, tmp_path / "fewer", allow_outside_root=True, target_frames=5)
    kept = read_dataset(tmp_path / "fewer" / "data" / "video_frames.json").records
    assert sorted({r.frame_index for r in kept}) == [100, 104, 108, 112, 116]
    assert load_config(fewer.adapt_config, CCSSLConfig).ccssl.video_step == 4

    ran = runner.invoke(app, ["adapt", "ccssl", "--config", str(result.adapt_config), "--out", str(tmp_path / "run"),
                              "--no-progress", "train.epochs=1", "ccssl.source_epochs=1", "ccssl.regenerate_every=1",
                              "model.channels=16", "data.input_size=[64,64]", "data.heatmap_size=[16,16]",
                              "ccssl.num_geometric=1", "ccssl.num_photometric=0", "tracking.enabled=false",
                              "train.device=cpu"])
    assert ran.exit_code == 0, ran.output
    report = json.loads(ran.stdout.strip().splitlines()[-1])
    assert report["keep_better"]["kept"] in {"source", "control", "adapted"}
    saved = json.loads(next((tmp_path / "run").rglob("keep_better.json")).read_text())
    assert {k: report["keep_better"][k] for k in ("margin_se", "frames")} == {k: saved[k] for k in ("margin_se",
                                                                                                  "frames")}


def test_sleap_target_step_is_a_multiple_of_the_predictions_spacing():
    """Predictions on every 2nd frame of 10..38 (15 frames) kept at about 5 a video: step 6 (2 × ceil(15 / 5)),
    frames 10, 16, 22, 28, 34 of each track; without tracks the temporal checks are off."""
    import numpy as np

    from animalpose.data.records import PoseRecord
    from animalpose.project_init import sleap_target

    def rec(f, track):
        kp = np.array([[f, 1.0, 2], [f + 4.0, 3.0, 2]], np.float32)
        return PoseRecord(image="v.mp4", keypoints=kp, schema="s", video_id="v", frame_index=f, instance_id=track)

    got = sleap_target([rec(f, t) for f in range(10, 39, 2) for t in (0, 1)], per_video=5)
    assert got.step == 6 and got.tracked
    kept = [(r.frame_index, r.instance_id) for r in got.records]
    assert kept == [(f, t) for f in (10, 16, 22, 28, 34) for t in (0, 1)]
    assert got.records[0].bbox == pytest.approx((10, 1, 4, 2)) and not got.records[0].keypoints.any()
    assert not sleap_target([rec(10, None), rec(12, None)]).tracked
    assert sleap_target([]) is None


MIRROR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "mirror-mouse"
MIRROR_PARTS = ["paw1LH_top", "paw2LF_top", "paw3RF_top", "paw4RH_top", "tailBase_top", "tailMid_top", "nose_top",
                "obs_top", "paw1LH_bot", "paw2LF_bot", "paw3RF_bot", "paw4RH_bot", "tailBase_bot", "tailMid_bot",
                "nose_bot", "obsHigh_bot", "obsLow_bot"]


def _lp_config(path: Path, **data) -> Path:
    """A Lightning Pose config's data section, as config_mirror-mouse-example.yaml writes it."""
    base = {"data_dir": "${LP_TEST_ROOT:" + str(MIRROR.parent) + "}/mirror-mouse",
            "video_dir": "${data.data_dir}/videos",
            "csv_file": "CollectedData.csv", "num_keypoints": 17, "keypoint_names": MIRROR_PARTS,
            "mirrored_column_matches": [[0, 1, 2, 3, 4, 5, 6], [8, 9, 10, 11, 12, 13, 14]]}
    path.write_text(yaml.safe_dump({"data": {**base, **data}, "training": {"max_epochs": 300}}))
    return path


def test_init_from_lightning_pose_folder_and_config(tmp_path):
    """The real mirror-mouse data is a Lightning Pose data folder (CollectedData.csv beside labeled-data/ and
    videos/). From the folder: one labelled folder -> split by frame, with a note; the video is the target. From
    its config: the mirror rig's column matches become train.yaml's multiview.views by name, and the generated
    config trains (fitting the views' subspace into the checkpoint)."""
    if not MIRROR.is_dir():
        pytest.skip(f"real data not found at {MIRROR}")
    folder = runner.invoke(app, ["init", "--from-lp", str(MIRROR), "--out", str(tmp_path / "a")])
    assert folder.exit_code == 0, folder.output
    report = json.loads(folder.stdout.strip().splitlines()[-1])
    assert (report["schema"], report["joints"], report["split_by"]) == ("dlc:mirror-mouse", 17, "frame")
    assert "split by frame" in folder.stderr and report["videos"] == [str(MIRROR / "videos" / "test_vid.mp4")]
    assert "multiview" not in yaml.safe_load((tmp_path / "a" / "train.yaml").read_text())  # a folder names no views
    cfg = load_config(tmp_path / "a" / "adapt_ccssl.yaml", CCSSLConfig)
    assert [p.resolve() for p in cfg.data.target] == [(MIRROR / "videos" / "test_vid.mp4").resolve()]
    # no views: the top 20 % a round, no view assignment
    assert cfg.ccssl.keep_fractions == [0.2] * 3 and not cfg.ccssl.view_assignment and cfg.ccssl.joint_gate is None
    split = json.loads((tmp_path / "a" / "data" / "split.json").read_text())
    assert sum(s["frames"] for s in split["splits"].values()) == 90

    config = _lp_config(tmp_path / "lp.yaml")
    made = runner.invoke(app, ["init", "--from-lp", str(config), "--out", str(tmp_path / "b")])
    assert made.exit_code == 0, made.output
    train_cfg = load_config(tmp_path / "b" / "train.yaml")
    assert train_cfg.multiview.views == [[MIRROR_PARTS[i], MIRROR_PARTS[j]] for i, j in
                                         zip(range(7), range(8, 15), strict=True)]
    assert train_cfg.multiview.views[0] == ["paw1LH_top", "paw1LH_bot"] and train_cfg.multiview.correct == "auto"
    # a rig with a val split: the mirror-mouse rig's setting, the look-alike parts found on val by the source model
    rig = load_config(tmp_path / "b" / "adapt_ccssl.yaml", CCSSLConfig).ccssl
    assert (rig.view_assignment, rig.view_assignment_reference, rig.label_point) == ("auto", "auto", "median_views")
    assert (rig.keep_fractions, rig.temporal_agreement, rig.joint_gate, rig.presence_quantile) == (
        [1.0] * 3, 20.0, 0.2, 0.05)
    assert rig.multiview_loss_views == train_cfg.multiview.views
    no_val = runner.invoke(app, ["init", "--from-lp", str(config), "--out", str(tmp_path / "c"), "--val", "0"])
    assert no_val.exit_code == 0, no_val.output  # nothing to find the parts or calibrate on: the plain template
    assert not load_config(tmp_path / "c" / "adapt_ccssl.yaml", CCSSLConfig).ccssl.view_assignment
    assert load_config(tmp_path / "c" / "train.yaml").multiview.correct == []  # nothing to find the groups on
    # the rig's config runs (shrunk): the look-alike parts are looked for on val, the gate and floors calibrated
    ran = runner.invoke(app, ["adapt", "ccssl", "--config", str(tmp_path / "b" / "adapt_ccssl.yaml"), "--out",
                              str(tmp_path / "adapted"), "--no-progress", "--no-control", "train.epochs=1",
                              "ccssl.source_epochs=1", "ccssl.regenerate_every=1", "model.channels=16",
                              "data.input_size=[64,64]", "data.heatmap_size=[16,16]", "ccssl.video_step=100",
                              "ccssl.num_geometric=1", "ccssl.num_photometric=0", "tracking.enabled=false",
                              "train.device=cpu"])
    assert ran.exit_code == 0, ran.output
    state = json.loads(next((tmp_path / "adapted").rglob("state.json")).read_text())
    assert isinstance(state["view_groups"], list) and "joint_gate" in state
    ran = runner.invoke(app, ["train", "--config", str(tmp_path / "b" / "train.yaml"), "--out", str(tmp_path / "run"),
                              "train.epochs=1", "train.device=cpu", "model.channels=16", "data.input_size=[64,64]",
                              "data.heatmap_size=[16,16]", "tracking.enabled=false", "--no-progress"])
    assert ran.exit_code == 0, ran.output
    import torch

    ckpt = torch.load(tmp_path / "run" / "last.ckpt", weights_only=False, map_location="cpu")
    assert ckpt["config"]["multiview"]["views"][6] == ["nose_top", "nose_bot"]
    # correct: auto looked for the look-alike parts on the real val frames when training ended
    val_frames = json.loads((tmp_path / "b" / "data" / "split.json").read_text())["splits"]["val"]["frames"]
    assert ckpt["extra"]["multiview_found"]["frames"] == val_frames > 0


@pytest.mark.parametrize(("data", "field", "says"), [
    ({"keypoint_names": MIRROR_PARTS[::-1]}, "data.keypoint_names", "differ from the body parts"),
    ({"num_keypoints": 16}, "data.num_keypoints", "lists 17"),
    ({"mirrored_column_matches": [[0, 1], [8, 17]]}, "data.mirrored_column_matches", "indices [17] outside 0..16"),
    ({"mirrored_column_matches": [[0, 1], [8]]}, "data.mirrored_column_matches", "different numbers"),
    ({"data_dir": "/nonexistent/mirror"}, "data.data_dir", "not a folder"),
    ({"data_dir": "${oc.env:HOME}/x"}, "data.data_dir", "cannot expand"),
    ({"csv_file": "labels.csv"}, "data.csv_file", "file not found"),
])
def test_init_from_lightning_pose_config_errors_name_the_field(tmp_path, data, field, says):
    if not MIRROR.is_dir():
        pytest.skip(f"real data not found at {MIRROR}")
    from animalpose.project_init import init_from_lp

    config = _lp_config(tmp_path / "lp.yaml", **data)
    with pytest.raises(DataError) as err:
        init_from_lp(config, tmp_path / "out")
    assert err.value.field == field and says in str(err.value), str(err.value)
    assert not (tmp_path / "out" / "train.yaml").exists()


def test_init_from_lightning_pose_folder_needs_one_csv(tmp_path):
    (tmp_path / "labeled-data").mkdir()
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_text("scorer\n")
    from animalpose.project_init import init_from_lp

    with pytest.raises(DataError, match=r"2 CSVs \(a.csv, b.csv\)"):
        init_from_lp(tmp_path)
    bad = runner.invoke(app, ["init", "--from-lp", str(tmp_path), "--from-dlc", str(tmp_path)])
    assert bad.exit_code == 2 and "--from-lp DATA_DIR|CONFIG.yaml" in bad.output


def test_init_refuses_views_that_name_no_body_part_before_writing(tmp_path):
    if not MIRROR.is_dir():
        pytest.skip(f"real data not found at {MIRROR}")
    from animalpose.data.readers.dlc import read_dlc
    from animalpose.project_init import init_project

    dataset = read_dlc(MIRROR / "CollectedData.csv")
    with pytest.raises(DataError, match=r"keypoints \['snout_top'\] are not among"):
        init_project(dataset, [], tmp_path / "out", source="a test", views=[["snout_top", "nose_bot"]])
    assert not (tmp_path / "out").exists()
