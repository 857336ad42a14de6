"""The WS-CDA switches of issue 29 as flow and deployment parameters: ``discriminator`` (``wscda.discriminator``),
``pplo_filter`` (``wscda.pplo_filter``) and ``synthetic_animals`` (generated animals as an extra labelled source,
every one kept). The deployment's schema lists them, the config carries them, and (through Prefect, training
stopped at its first task) a flow run's parameters reach the WS-CDA config its training task receives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from animalpose.data.coco_writer import write_coco
from animalpose.data.records import PoseRecord
from animalpose.errors import ConfigError


def _coco(path: Path, schema: str, joints: int, category: str, generated: bool = False) -> Path:
    """A one-instance COCO file (its image a blank 32-px PNG); ``generated``: our generator's ``factors``."""
    import cv2

    image = path.with_suffix(".png")
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    kp = np.zeros((joints, 3), np.float32)
    kp[:, :2], kp[:, 2] = 16.0, 2
    meta = {"factors": {"species": category}} if generated else {}
    rec = PoseRecord(str(image), kp, schema, bbox=(4.0, 4.0, 24.0, 24.0), image_size=(32, 32), image_id=1, meta=meta)
    return write_coco([rec], path, schema, category=category)


@pytest.fixture
def files(tmp_path):
    root = tmp_path / "files"
    root.mkdir()
    animal = {k: _coco(root / f"{k}.json", "animalpose", 20, sp) for k, sp in
              (("cow", "cow"), ("sheep", "sheep"), ("horse_train", "horse"), ("horse_val", "horse"),
               ("horse_test", "horse"))}
    return {**animal, "human": _coco(root / "human.json", "coco", 17, "person", generated=True),
            "generated": _coco(root / "generated.json", "animalpose", 20, "horse", generated=True)}


def test_the_wscda_horse_deployment_lists_and_checks_the_switches():
    from flows.deployments import build_deployments, flows_by_name

    (deployment,) = [d for d in build_deployments() if f"{d.flow_name}/{d.name}" == "wscda/horse"]
    schema = deployment._parameter_openapi_schema.model_dump()["properties"]
    assert {"discriminator", "pplo_filter", "synthetic_animals"} <= set(schema)
    flow = flows_by_name()["wscda"]
    checked = flow.validate_parameters({**deployment.parameters, "discriminator": "three_way",
                                        "pplo_filter": "consistency", "synthetic_animals": "200"})
    assert (checked["discriminator"], checked["pplo_filter"], checked["synthetic_animals"]) == (
        "three_way", "consistency", 200)
    with pytest.raises(Exception, match="discriminator"):  # Prefect's ParameterTypeError names the parameter
        flow.validate_parameters({**deployment.parameters, "discriminator": "four_way"})


def test_the_config_carries_the_switches_and_keeps_every_generated_animal(files):
    from flows.presets import load_preset
    from flows.wscda import wscda_config

    common = dict(human=[files["human"]], animals=[files["cow"], files["sheep"]], target=[files["horse_train"]],
                  test=files["horse_test"], rounds=1, model=None, tracking_uri="file:///tmp/none", experiment="x",
                  seed=0)
    plain, _ = wscda_config(load_preset("smoke"), **common)
    assert plain["wscda"]["discriminator"] == "two_way" and plain["wscda"]["pplo_filter"] == "confidence"
    assert plain["wscda"]["labelled_per_species"] == 10  # the preset's config: 10 of every species
    cfg, _ = wscda_config(load_preset("smoke"), synthetic=[files["generated"]], discriminator="three_way",
                          pplo_filter="consistency", **common)
    assert cfg["wscda"]["discriminator"] == "three_way" and cfg["wscda"]["pplo_filter"] == "consistency"
    assert cfg["data"]["train"] == [str(files["cow"]), str(files["sheep"]), str(files["generated"])]
    # 10 cows and 10 sheep as before, and every generated horse
    assert cfg["wscda"]["labelled_per_species"] == {"cow": 10, "sheep": 10, "horse": None}
    with pytest.raises(ConfigError, match=r"synthetic_animals.*horse"):  # horses given and generated: one count
        wscda_config(load_preset("smoke"), synthetic=[files["generated"]],
                     **{**common, "animals": [files["cow"], files["horse_val"]]})


@pytest.mark.timeout(600)
def test_flow_parameters_reach_the_wscda_task(prefect_harness, tmp_path, data_home, files, monkeypatch):
    """The flow with real-like paths and every switch: the config its WS-CDA task receives carries them, and the
    generated horses (2 at the smoke preset's target size) join the labelled animals. The task is replaced by
    a stand-in that stops the run, so nothing trains (about 10 s beside the session's Prefect server)."""
    import flows.wscda as module
    from animalpose.data.readers import read_dataset

    seen: dict = {}

    class Stop(Exception):
        pass

    def wscda(cfg, where, out_dir, tracker=None):
        seen.update(cfg=cfg, out_dir=Path(out_dir))
        raise Stop

    monkeypatch.setattr(module, "wscda", wscda)
    with pytest.raises(Stop):
        module.wscda_flow(species="horse", preset="smoke", rounds=1, human_data=[files["human"]],
                          animal_data=[files["cow"], files["sheep"]], target_data=[files["horse_train"]],
                          val_data=files["horse_val"], test_data=files["horse_test"], discriminator="three_way",
                          pplo_filter="consistency", synthetic_animals=2,
                          tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    w, data = seen["cfg"]["wscda"], seen["cfg"]["data"]
    assert (w["discriminator"], w["pplo_filter"]) == ("three_way", "consistency")
    assert data["train"][:2] == [str(files["cow"]), str(files["sheep"])] and len(data["train"]) == 3
    generated = read_dataset(Path(data["train"][2]))
    assert len(generated.records) == 2 and all("factors" in r.meta for r in generated.records)
    assert w["labelled_per_species"] == {"cow": 10, "sheep": 10, "horse": None}
    # without out_dir the switches work in their own folder beside the preset's
    assert seen["out_dir"].parent.name == "smoke-three_way-consistency-synthetic2"
