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


def test_register_says_one_line_per_species_and_registers_each_deployment_once(deployments):
    """`serve` shows what it waits for: a line as each species' deployments are registered, every deployment
    registered exactly once, one at a time."""
    import asyncio

    from flows.deployments import register

    class Runner:
        def __init__(self):
            self.added, self.active, self.peak = [], 0, 0

        async def aadd_deployment(self, d):
            self.active += 1
            self.peak = max(self.peak, self.active)
            await asyncio.sleep(0.01)
            self.added.append(f"{d.flow_name}/{d.name}")
            self.active -= 1

    runner, lines = Runner(), []
    asyncio.run(register(runner, list(deployments.values()), lines.append))
    assert sorted(runner.added) == sorted(deployments) and runner.peak == 1
    assert len(lines) == len(SPECIES) + 1  # and human/coco
    assert lines[0].startswith("registered ccssl/horse, wscda/horse, pretrain/horse, retrain/ccssl-horse, "
                               "retrain/wscda-horse (5/26, ")
    assert lines[-1].startswith("registered human/coco (26/26, ") and lines[-1].endswith(" s)")


def test_building_says_nothing_of_the_parameter_named_schema():
    """pydantic's warning that the flows' ``schema`` parameter shadows BaseModel.schema stays off `serve`'s
    console (a fresh process: the flows are imported, and their models built, inside build_deployments)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = "from flows.deployments import build_deployments; print(len(build_deployments()))"
    done = subprocess.run([sys.executable, "-W", "always", "-c", code], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root)}, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "26", done.stderr
    assert 'Field name "schema"' not in done.stderr, done.stderr
