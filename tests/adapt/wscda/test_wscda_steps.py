"""WSCDARun, WS-CDA as named steps: a run driven one step per new object on the same folder equals the
uninterrupted ``run_wscda`` bit for bit; finished steps are not retrained; steps out of order are refused;
the object ends the MLflow run it owns."""

import pytest
import torch

from animalpose.config import parse_config


def _cfg(generated, **tracking):
    from animalpose.adapt.wscda import WSCDAConfig

    raw = {
        "data": {"train": [str(generated["few"])], "val": [str(generated["test"])],
                 "target": [str(generated["target"])], "schema": "animalpose", "input_size": [32, 32],
                 "heatmap_size": [8, 8], "workers": 0},
        "model": {"name": "simplebaseline18"},
        "codec": {"kind": "gaussian", "sigma": 1.0},
        # random augmentation on every stream, so any change in the order of RNG draws changes the weights
        "augment": {"preset": "simplebaseline"},
        "train": {"batch_size": 4, "device": "cpu", "seed": 0, "epochs": 1},
        "tracking": {"enabled": False, **tracking},
        "wscda": {"human": [str(generated["human"])], "labelled_per_species": 2, "steps_per_epoch": 2,
                  "pplo_rounds": 2, "discriminator_hidden": 8},
    }
    return parse_config(raw, WSCDAConfig)


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


@pytest.mark.slow
def test_step_by_step_in_new_objects_equals_the_uninterrupted_run(generated, tmp_path):
    from animalpose.adapt.wscda.run import WSCDARun, run_wscda

    cfg = _cfg(generated)
    straight = run_wscda(cfg, tmp_path / "straight", progress=False)

    out = tmp_path / "steps"
    with WSCDARun(cfg, out, progress=False) as run:
        with pytest.raises(RuntimeError, match="adversarial"):
            run.pplo_round(0)
        wscda = run.adversarial()
        rng = torch.get_rng_state()
    with WSCDARun(cfg, out, progress=False) as run:
        assert run.last_step == "wscda" and run.num_rounds == 2
        with pytest.raises(RuntimeError, match="before round 0 finished"):
            run.pplo_round(1)
        with pytest.raises(ValueError, match="outside"):
            run.pplo_round(2)
        # the reported figures of the finished step, recomputed from its checkpoint; the global RNG is where
        # the finished step left it (restored from its checkpoint, untouched by evaluate's loaders)
        assert run.evaluate() == {k: v for k, v in wscda.items() if not k.startswith("train/")}
        assert torch.equal(torch.get_rng_state(), rng)
        stamp = (out / "wscda.ckpt").stat().st_mtime_ns
        assert run.adversarial() == wscda and (out / "wscda.ckpt").stat().st_mtime_ns == stamp
        run.pplo_round(0)
    with WSCDARun(cfg, out, progress=False) as run:
        run.pplo_round(1)
    with WSCDARun(cfg, out, progress=False) as run:
        stamp = (out / "round_0.ckpt").stat().st_mtime_ns
        assert run.pplo_round(0) == straight.rounds[0] and (out / "round_0.ckpt").stat().st_mtime_ns == stamp
        stepped = run.result()

    assert stepped.wscda == straight.wscda and stepped.rounds == straight.rounds
    assert stepped.last_checkpoint == out / "round_1.ckpt"
    for name in ("wscda.ckpt", "round_0.ckpt", "round_1.ckpt"):
        a, b = _weights(tmp_path / "straight" / name), _weights(out / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_the_run_it_owns_ends_finished_or_failed(generated, tmp_path):
    from mlflow import MlflowClient

    from animalpose.adapt.wscda.run import WSCDARun

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = _cfg(generated, enabled=True, uri=uri, experiment="steps")
    with WSCDARun(cfg, tmp_path / "ok", progress=False) as run:
        ok = run.tracker.run_id
    with pytest.raises(KeyError), WSCDARun(cfg, tmp_path / "bad", progress=False) as run:
        bad = run.tracker.run_id
        raise KeyError("boom")
    client = MlflowClient(uri)
    assert client.get_run(ok).info.status == "FINISHED"
    assert client.get_run(bad).info.status == "FAILED"
    # the config as one MLflow param per leaf, lists as JSON (config.flatten, as every other run)
    params = client.get_run(ok).data.params
    assert params["wscda.labelled_per_species"] == "2" and params["data.input_size"] == "[32, 32]"
    assert params["data.schema"] == "animalpose"


@pytest.mark.slow  # a whole tracked run, two PPLO rounds
def test_nested_round_runs_are_numbered_from_one(generated, tmp_path):
    """MLflow shows PPLO rounds 1 and 2 (names, ``round`` tags, metric steps) for the API's rounds 0 and 1,
    as CC-SSL numbers its rounds and the flow its stages (``pplo-round-1`` holds ``pplo round 1``)."""
    from mlflow import MlflowClient

    from animalpose.adapt.wscda.run import run_wscda

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_wscda(_cfg(generated, enabled=True, uri=uri, experiment="numbering"), tmp_path / "run",
                       progress=False)
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("numbering").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.info.run_name: r for r in client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")}
    assert set(children) == {"wscda", "pplo round 1", "pplo round 2"}
    for n in (1, 2):
        tags = children[f"pplo round {n}"].data.tags
        assert (tags["stage"], tags["round"]) == ("round", str(n))
    kept = client.get_metric_history(parent.info.run_id, "kept")
    assert [(m.step, m.value) for m in kept] == [(1, result.rounds[0]["kept"]), (2, result.rounds[1]["kept"])]
    assert "round" not in parent.data.metrics  # the 0-based index is no metric
    assert [m.step for m in client.get_metric_history(children["pplo round 2"].info.run_id, "kept")] == [2]
