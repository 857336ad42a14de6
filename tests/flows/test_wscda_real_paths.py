"""The ``wscda/horse`` deployment takes real data paths (issue 29): its parameters validate against the flow,
the flow's config keeps a real ``val`` split (reported per stage) apart from the ``test`` split, and (slow) the
flow runs on real Animal-Pose files and compares its stages in the parent run."""

import json
from pathlib import Path

import pytest


def _files(tmp_path):
    names = ("human.json", "cow_train.json", "sheep_train.json", "horse_train.json", "horse_val.json",
             "horse_test.json")
    out = {}
    for name in names:
        out[name] = tmp_path / name
        out[name].write_text("{}")
    return out


def test_the_wscda_horse_deployment_accepts_real_paths(tmp_path):
    from flows.deployments import build_deployments, flows_by_name

    f = _files(tmp_path)
    (deployment,) = [d for d in build_deployments() if f"{d.flow_name}/{d.name}" == "wscda/horse"]
    params = {**deployment.parameters, "human_data": [str(f["human.json"])],
              "animal_data": [str(f["cow_train.json"]), str(f["sheep_train.json"])],
              "target_data": [str(f["horse_train.json"])], "val_data": str(f["horse_val.json"]),
              "test_data": str(f["horse_test.json"])}
    checked = flows_by_name()["wscda"].validate_parameters(params)
    assert checked["animal_data"] == [f["cow_train.json"], f["sheep_train.json"]]
    assert checked["val_data"] == f["horse_val.json"] and isinstance(checked["test_data"], Path)
    assert "val_data" in deployment._parameter_openapi_schema.model_dump()["properties"]


def test_a_real_val_split_is_reported_apart_from_test(tmp_path):
    from flows.presets import load_preset
    from flows.wscda import wscda_config

    f = _files(tmp_path)
    common = dict(human=[f["human.json"]], animals=[f["cow_train.json"], f["sheep_train.json"]],
                  target=[f["horse_train.json"]], test=f["horse_test.json"], rounds=1, model=None,
                  tracking_uri="file:///tmp/none", experiment="x", seed=0)
    cfg, _ = wscda_config(load_preset("smoke"), val=f["horse_val.json"], **common)
    assert cfg["data"]["val"] == [str(f["horse_val.json"])]
    assert cfg["wscda"]["target_val"] == [str(f["horse_test.json"])]
    assert cfg["data"]["target"] == [str(f["horse_train.json"])]
    assert cfg["data"]["train"] == [str(f["cow_train.json"]), str(f["sheep_train.json"])]
    plain, _ = wscda_config(load_preset("smoke"), **common)  # without val: test is both, as before
    assert plain["data"]["val"] == [str(f["horse_test.json"])] == plain["wscda"]["target_val"]


RELEASE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "animal-pose"


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_flow_on_real_animal_pose_paths_compares_its_stages_in_the_parent_run(prefect_harness, tmp_path,
                                                                                  data_home, read_artifact):
    """The deployment's flow on the smoke preset with real paths as parameters (the first 16 photographs of
    Animal-Pose cow / sheep train, horse train / val / test): the run reads exactly those files, and the parent
    run shows each stage's model side by side (results table + chart, as the CC-SSL flow's)."""
    if not RELEASE.is_dir():
        pytest.skip(f"real data not found at {RELEASE}")
    from mlflow import MlflowClient

    from animalpose.engine.checkpoint import load_checkpoint
    from flows.benchmarks.wscda_animalpose import BenchSettings, prepare
    from flows.wscda import wscda_flow

    files = prepare(BenchSettings(data=RELEASE, max_images=16), tmp_path / "animal-pose")  # `data subset` files
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = wscda_flow(species="horse", preset="smoke", rounds=1, animal_data=[files["cow"], files["sheep"]],
                     target_data=[files["horse_train"]], val_data=files["horse_val"], test_data=files["horse_test"],
                     allow_outside_root=True, tracking_uri=uri, out_dir=tmp_path / "out")
    ckpt = load_checkpoint(tmp_path / "out" / "wscda" / "round_0.ckpt")
    data, wscda = ckpt["config"]["data"], ckpt["config"]["wscda"]  # the run's resolved config
    assert ckpt["schema"]["name"] == data["schema"] == "animalpose"
    assert [Path(p) for p in data["train"]] == [files["cow"], files["sheep"]]
    assert [Path(p) for p in data["target"]] == [files["horse_train"]]
    assert [Path(p) for p in data["val"]] == [files["horse_val"]]
    assert [Path(p) for p in wscda["target_val"]] == [files["horse_test"]]

    assert list(out["scores"]) == ["WS-CDA", "PPLO round 1"]
    for metrics in out["scores"].values():
        assert {"target_test/pck_crop@0.05", "target_val/pck_crop@0.05", "target_test/AP"} <= set(metrics)
    assert out["pck"] == out["scores"]["PPLO round 1"]["target_test/pck_crop@0.05"]
    client = MlflowClient(tracking_uri=uri)
    run_id = out["mlflow_run_id"]
    assert {a.path for a in client.list_artifacts(run_id, "results")} == {"results/results_table.json",
                                                                          "results/stages.png"}
    table = json.loads(Path(client.download_artifacts(run_id, "results/results_table.json", str(tmp_path)))
                       .read_text())
    column = {name: [row[i] for row in table["data"]] for i, name in enumerate(table["columns"])}
    assert column["stage"] == ["WS-CDA", "PPLO round 1"]
    for data_set in ("target_test", "target_val"):
        assert column[f"{data_set}/pck_crop@0.05"] == pytest.approx(
            [out["scores"][s][f"{data_set}/pck_crop@0.05"] for s in column["stage"]])
    # each stage's own run holds its model's scores
    runs = {r.info.run_name: r for r in client.search_runs([client.get_run(run_id).info.experiment_id],
                                                           f"tags.mlflow.parentRunId = '{run_id}'")}
    assert runs["wscda"].data.metrics["target_val/pck_crop_at_0.05"] == pytest.approx(
        out["scores"]["WS-CDA"]["target_val/pck_crop@0.05"])
    artifact = read_artifact("wscda-horse").data
    assert "WS-CDA + 1 PPLO rounds" in artifact and "| PPLO round 1 |" in artifact and "target val" in artifact
