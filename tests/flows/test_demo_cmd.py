import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import flows.ccssl
from animalpose.cli import app

SUMMARY = {"species": "horse", "preset": "smoke", "source_only": 0.40, "rounds": [0.45, 0.52], "oracle": 0.60,
           "gap_recovery": 0.6, "model_name": "ccssl-horse", "model_version": "3", "checkpoint": "/x/round_1.ckpt",
           "mlflow_run_id": "abc123", "mlflow_run_url": "http://127.0.0.1:5000/#/experiments/1/runs/abc123",
           "tracking_uri": "sqlite:////tmp/m.db",
           "mlflow_ui": "animalpose ui --backend-store-uri sqlite:////tmp/m.db"}


def test_demo_prints_the_table_the_ui_command_and_a_json_last_line(monkeypatch):
    seen = {}

    def fake_flow(**kwargs):
        seen.update(kwargs)
        return SUMMARY

    monkeypatch.setattr(flows.ccssl, "ccssl_flow", fake_flow)
    result = CliRunner().invoke(app, ["demo", "--preset", "smoke", "--rounds", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert seen == {"species": "horse", "preset": "smoke", "rounds": 2}
    lines = result.output.strip().splitlines()
    out = json.loads(lines[-1])
    assert out["source_only"] == 0.40 and out["rounds"] == [0.45, 0.52] and out["oracle"] == 0.60
    assert out["gap_recovery"] == 0.6 and out["seconds"] >= 0 and out["peak_rss_mb"] > 0
    text = "\n".join(lines[:-1])
    for label, value in (("source-only", "40.0"), ("CC-SSL round 1", "45.0"), ("CC-SSL round 2", "52.0"),
                         ("oracle (target labels)", "60.0"), ("gap recovery", "60.0%")):
        assert any(label in line and value in line for line in lines), (label, text)
    assert "animalpose ui --backend-store-uri sqlite:////tmp/m.db" in text


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_demo_smoke_end_to_end(tmp_path):
    env = {**os.environ, "ANIMALPOSE_HOME": str(tmp_path / "home"), "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_LOCAL_STORAGE_PATH": str(tmp_path / "results")}
    env.pop("PREFECT_API_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run([str(Path(sys.executable).parent / "animalpose"), "demo", "--preset", "smoke", "--json"],
                          env=env, capture_output=True, text=True, timeout=1400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out["rounds"]) == 2 and all(0 <= v <= 1 for v in [out["source_only"], *out["rounds"], out["oracle"]])
    assert out["tracking_uri"] == f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    assert "animalpose ui --backend-store-uri" in proc.stdout


RELEASE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "animal-pose"


def test_demo_takes_a_real_target(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(flows.ccssl, "ccssl_flow", lambda **kw: seen.update(kw) or SUMMARY)
    files = {n: tmp_path / f"{n}.json" for n in ("train", "test", "val")}
    for f in files.values():
        f.write_text("{}")
    args = ["demo", "--preset", "smoke", "--target", str(files["train"]), "--test", str(files["test"]),
            "--target-val", str(files["val"]), "--schema", "animalpose", "--allow-outside-root"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen["allow_outside_root"] is True
    assert seen["target_data"] == [files["train"]] and seen["test_data"] == files["test"]
    assert seen["target_val_data"] == files["val"] and seen["schema"] == "animalpose"
    refused = CliRunner().invoke(app, ["demo", "--target", str(files["train"])])
    assert refused.exit_code != 0 and "--test" in refused.output


def _real_horses(tmp_path: Path, n: int) -> dict[str, Path]:
    """The first ``n`` horses of each Animal-Pose split, through `animalpose data subset` (checked files)."""
    from animalpose.data.coco_writer import write_coco
    from animalpose.data.readers import read_dataset

    out = {}
    for split in ("train", "val", "test"):
        full = tmp_path / f"horse_{split}_all.json"
        result = CliRunner().invoke(app, ["data", "subset", str(RELEASE), "--category", "horse", "--split-file",
                                          str(RELEASE / "splits.json"), "--split", split, "--out", str(full)])
        assert result.exit_code == 0, result.output
        records = [r for r in read_dataset(full, "coco", "animalpose").records if (r.keypoints[:, 2] > 0).any()]
        out[split] = write_coco(records[:n], tmp_path / f"horse_{split}.json", "animalpose")
    return out


def test_data_subset_writes_a_split_of_the_release(tmp_path):
    if not RELEASE.is_dir():
        pytest.skip(f"real data not found at {RELEASE}")
    out = tmp_path / "horse_test.json"
    result = CliRunner().invoke(app, ["data", "subset", str(RELEASE), "--category", "horse", "--split-file",
                                      str(RELEASE / "splits.json"), "--split", "test", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["images"] == 180
    doc = json.loads(out.read_text())
    splits = json.loads((RELEASE / "splits.json").read_text())["horse"]["test"]
    assert len(doc["images"]) == len(splits) == 180 and len(doc["annotations"]) == 235
    assert all(Path(im["file_name"]).is_absolute() for im in doc["images"])
    # absolute paths to the release's images lie outside the subset file's folder: refused, never opened ...
    refused = CliRunner().invoke(app, ["data", "check", str(out), "--json"])
    errors = json.loads(refused.output)["errors"]
    assert refused.exit_code == 1 and len(errors) == 180
    assert errors[0]["file"] == str(out) and errors[0]["field"].endswith(".file_name")
    assert "outside the dataset's image root" in errors[0]["message"]
    # ... unless the user opts in
    checked = CliRunner().invoke(app, ["data", "check", str(out), "--json", "--allow-outside-root"])
    assert checked.exit_code == 0 and json.loads(checked.output)["errors"] == []


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_demo_on_real_horses_end_to_end(tmp_path):
    """The user's path of issue 27: the smoke flow with Animal-Pose photographs as target, test and the
    oracle's selection set, in the animalpose schema (generated source horses in the same schema)."""
    if not RELEASE.is_dir():
        pytest.skip(f"real data not found at {RELEASE}")
    data = _real_horses(tmp_path, 16)
    env = {**os.environ, "ANIMALPOSE_HOME": str(tmp_path / "home"), "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_LOCAL_STORAGE_PATH": str(tmp_path / "results")}
    env.pop("PREFECT_API_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run([str(Path(sys.executable).parent / "animalpose"), "demo", "--preset", "smoke", "--json",
                           "--target", str(data["train"]), "--test", str(data["test"]),
                           "--target-val", str(data["val"]), "--schema", "animalpose", "--allow-outside-root"],
                          env=env, capture_output=True, text=True, timeout=1400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out["rounds"]) == 2 and all(0 <= v <= 1 for v in [out["source_only"], *out["rounds"], out["oracle"]])
    import torch

    oracle = sorted((tmp_path / "home").rglob("oracle/last.ckpt"))
    assert oracle, "no oracle checkpoint"
    ckpt = torch.load(oracle[0], weights_only=False, map_location="cpu")
    assert ckpt["schema"]["name"] == "animalpose" and ckpt["config"]["data"]["val"] == [str(data["val"])]


def test_demo_names_a_missing_target_file(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--target", str(tmp_path / "nope.json"), "--test", str(tmp_path)])
    assert result.exit_code != 0 and "nope.json" in result.output and "does not exist" in result.output
