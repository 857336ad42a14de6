"""WSCDARun options of the real-data benchmark (issue 29): ``wscda.select_on_val`` keeps each step's best
epoch on ``data.val`` without changing training; ``wscda.labelled_per_species`` as None (every labelled
animal) or a per-species table (None: all of that species)."""

import json

import pytest
import torch

from animalpose.config import parse_config
from animalpose.errors import ConfigError

synthetic = pytest.importorskip("synthetic")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("wscda_select_data")
    specs = {"human": ("human", 6, 1), "horse": ("horse", 5, 2), "dog": ("dog", 3, 5), "target": ("dog", 6, 3),
             "val": ("dog", 4, 4)}
    return {name: synthetic.generate_dataset(root / name, sp, "photo", n, 32, seed) for name, (sp, n, seed)
            in specs.items()}


def _cfg(generated, **wscda):
    from animalpose.adapt.wscda import WSCDAConfig

    raw = {
        "data": {"train": [str(generated["horse"]), str(generated["dog"])], "val": [str(generated["val"])],
                 "target": [str(generated["target"])], "schema": "animalpose", "input_size": [32, 32],
                 "heatmap_size": [8, 8], "workers": 0},
        "model": {"name": "simplebaseline18"},
        "codec": {"kind": "gaussian", "sigma": 1.0},
        "augment": {"preset": "simplebaseline"},  # random draws on every stream: a changed RNG order shows
        "train": {"batch_size": 4, "device": "cpu", "seed": 0, "epochs": 2},
        "tracking": {"enabled": False},
        "wscda": {"human": [str(generated["human"])], "labelled_per_species": 2, "steps_per_epoch": 2,
                  "pplo_rounds": 0, "discriminator_hidden": 8, **wscda},
    }
    return parse_config(raw, WSCDAConfig)


@pytest.mark.slow  # two SimpleBaseline-18 runs with their checkpoints: about 25 s on the shared machine
def test_select_on_val_keeps_the_best_epoch_and_leaves_training_alone(generated, tmp_path):
    from animalpose.adapt.wscda.datasets import report_pck
    from animalpose.adapt.wscda.run import WSCDARun, run_wscda
    from animalpose.engine.checkpoint import load_checkpoint

    plain = run_wscda(_cfg(generated), tmp_path / "plain", progress=False)
    with WSCDARun(_cfg(generated, select_on_val=True), tmp_path / "chosen", progress=False) as run:
        run.adversarial()
        val_set = run.select_set
        pose = run.pose
    a = torch.load(tmp_path / "plain" / "wscda.ckpt", weights_only=True)["model"]
    b = torch.load(tmp_path / "chosen" / "wscda.ckpt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # scoring epochs changed nothing
    assert not (tmp_path / "plain" / "wscda.best.ckpt").exists()

    curve = json.loads((tmp_path / "chosen" / "wscda.best.json").read_text())
    assert [e["epoch"] for e in curve["epochs"]] == [1, 2]
    best = max(curve["epochs"], key=lambda e: (e["pck@0.05"], -e["epoch"]))  # the first of equals wins
    assert curve["best_epoch"] == best["epoch"]
    ckpt = load_checkpoint(tmp_path / "chosen" / "wscda.best.ckpt")
    assert ckpt["epoch"] == best["epoch"] and ckpt["metrics"]["val/pck@0.05"] == best["pck@0.05"]
    # the kept weights score what the curve says (the same crops, the same pass)
    pose.load_state_dict(ckpt["model"])
    assert report_pck(pose, val_set, "cpu", 4) == pytest.approx({k: v for k, v in best.items() if k != "epoch"})
    # the last epoch's entry is the finished step's own score on val
    last = curve["epochs"][-1]
    assert last["pck@0.05"] == pytest.approx(plain.wscda[f"{next(iter(run.report_sets))}/pck@0.05"])


def test_select_on_val_needs_a_validation_set(generated, tmp_path):
    from animalpose.adapt.wscda.run import WSCDARun

    cfg = _cfg(generated, select_on_val=True)
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"val": []})})
    with pytest.raises(ConfigError, match="select_on_val"):
        WSCDARun(cfg, tmp_path, progress=False)


def test_labelled_per_species_all_or_per_species_table(generated, tmp_path):
    from animalpose.adapt.wscda.datasets import species_of
    from animalpose.adapt.wscda.run import WSCDARun

    def few(per_species):
        with WSCDARun(_cfg(generated, labelled_per_species=per_species), tmp_path / str(per_species),
                      progress=False) as run:
            names = [species_of(r) for r in run.few]
        return {s: names.count(s) for s in set(names)}

    assert few(2) == {"horse": 2, "dog": 2}
    assert few(None) == {"horse": 5, "dog": 3}
    assert few({"horse": None, "dog": 1}) == {"horse": 5, "dog": 1}
    assert few({"horse": 3}) == {"horse": 3}  # a species the table leaves out keeps none
    with pytest.raises(ConfigError, match=r"labelled_per_species\.dog"):
        few({"horse": None, "dog": 4})
