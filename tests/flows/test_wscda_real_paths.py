"""The ``wscda/horse`` deployment takes real data paths (issue 29): its parameters validate against the flow,
and the flow's config keeps a real ``val`` split (reported per stage) apart from the ``test`` split."""

from pathlib import Path


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
