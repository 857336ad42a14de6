import inspect

import pytest
from prefect.client.schemas.schedules import CronSchedule

from flows.deployments import DEFAULT_CRON, SPECIES, build_deployments, deployment_specs, flows_by_name


@pytest.fixture(scope="module")
def deployments():
    return {f"{d.flow_name}/{d.name}": d for d in build_deployments(active=None)}


def test_the_documented_deployments_exist(deployments):
    for name in ("ccssl/horse", "ccssl/tiger", "wscda/horse", "human/coco"):
        assert name in deployments
    for sp in ("horse", "tiger", "dog", "sheep", "elephant"):
        assert f"ccssl/{sp}" in deployments and f"wscda/{sp}" in deployments
        assert f"retrain/ccssl-{sp}" in deployments and f"retrain/wscda-{sp}" in deployments
    # per species: ccssl, wscda, pretrain and two retraining deployments; plus human/coco
    assert len(deployments) == len(deployment_specs()) == 5 * len(SPECIES) + 1


def test_default_parameters_fit_the_flow_signatures(deployments):
    flows = flows_by_name()
    for name, d in deployments.items():
        flow = flows[d.flow_name]
        params = inspect.signature(flow.fn).parameters
        assert set(d.parameters) <= set(params), name
        flow.validate_parameters(dict(d.parameters))  # types check against the flow's annotations
        schema = d._parameter_openapi_schema.model_dump() if hasattr(d, "_parameter_openapi_schema") else None
        if schema is not None:
            assert set(d.parameters) <= set(schema["properties"])
    assert deployments["ccssl/tiger"].parameters == {"species": "tiger", "preset": "quick"}
    assert deployments["human/coco"].parameters["dataset"] == "coco"


def test_only_retraining_is_scheduled_weekly_and_inactive_by_default(deployments, monkeypatch):
    for name, d in deployments.items():
        if d.flow_name == "retrain":
            (sched,) = d.schedules
            assert isinstance(sched.schedule, CronSchedule)
            assert sched.schedule.cron == DEFAULT_CRON == "0 3 * * 1"
            assert sched.schedule.timezone == "UTC"
            assert sched.active is False, name
        else:
            assert not d.schedules, name


def test_schedules_activate_by_flag_or_environment_and_cron_is_configurable(monkeypatch):
    active = build_deployments(active=True, cron="30 2 * * 0", timezone="Europe/Paris")
    retrain = [d for d in active if d.flow_name == "retrain"]
    assert retrain and all(d.schedules[0].active for d in retrain)
    assert {d.schedules[0].schedule.cron for d in retrain} == {"30 2 * * 0"}
    assert {d.schedules[0].schedule.timezone for d in retrain} == {"Europe/Paris"}
    monkeypatch.setenv("ANIMALPOSE_RETRAIN_ACTIVE", "1")
    monkeypatch.setenv("ANIMALPOSE_RETRAIN_CRON", "0 4 1 * *")
    env = [d for d in build_deployments() if d.flow_name == "retrain"]
    assert all(d.schedules[0].active and d.schedules[0].schedule.cron == "0 4 1 * *" for d in env)


def test_an_invalid_cron_is_refused():
    with pytest.raises(ValueError):
        build_deployments(cron="every monday")


def test_the_prefect_yaml_example_mirrors_the_deployments(monkeypatch):
    from pathlib import Path

    import yaml

    doc = yaml.safe_load((Path(__file__).parents[2] / "flows" / "prefect.yaml").read_text())
    specs = {s.full_name: s for s in deployment_specs()}
    flows = flows_by_name()
    by_entry = {f"flows/{fl.fn.__module__.split('.')[-1]}.py:{fl.fn.__name__}": name for name, fl in flows.items()}
    assert len(doc["deployments"]) >= 4
    for d in doc["deployments"]:
        flow_name = by_entry[d["entrypoint"]]
        spec = specs[f"{flow_name}/{d['name']}"]
        assert d["parameters"] == spec.parameters
        flows[flow_name].validate_parameters(d["parameters"])
        for sched in d.get("schedules", []):
            assert sched["cron"] == spec.cron and sched["active"] is False
