"""run_wscda on generated data: three sources, WS-CDA stage, a PPLO round, engine-readable checkpoints,
resume and the ``animalpose adapt wscda`` command."""

import json

import pytest
import yaml

from animalpose.config import parse_config
from animalpose.errors import ConfigError


def _raw(generated, **wscda):
    return {
        "data": {"train": [str(generated["few"])], "val": [str(generated["test"])],
                 "target": [str(generated["target"])], "schema": "animalpose", "input_size": [32, 32],
                 "heatmap_size": [8, 8], "workers": 0},
        "model": {"name": "simplebaseline18"},
        "codec": {"kind": "gaussian", "sigma": 1.0},
        "augment": {"preset": "none"},
        "train": {"batch_size": 4, "device": "cpu", "seed": 0, "epochs": 1},
        "tracking": {"enabled": False},
        "wscda": {"human": [str(generated["human"])], "labelled_per_species": 2, "steps_per_epoch": 2,
                  "pplo_rounds": 1, "discriminator_hidden": 8, **wscda},
    }


def test_configuration_errors_name_the_key(generated, tmp_path):
    from animalpose.adapt.wscda import WSCDAConfig, run_wscda

    cfg = parse_config(_raw(generated, human=[]), WSCDAConfig, where="t.yaml")
    with pytest.raises(ConfigError, match=r"wscda\.human"):
        run_wscda(cfg, tmp_path, progress=False)
    raw = _raw(generated)
    raw["model"] = {"name": "hourglass_quick"}
    with pytest.raises(ConfigError, match=r"model\.name"):
        run_wscda(parse_config(raw, WSCDAConfig, where="t.yaml"), tmp_path, progress=False)
    with pytest.raises(ConfigError, match=r"wscda\.labelled_per_species"):
        run_wscda(parse_config(_raw(generated, labelled_per_species=7), WSCDAConfig), tmp_path, progress=False)
    # every stream generated: a synthetic / real output would have nothing to tell apart
    with pytest.raises(ConfigError, match=r"wscda\.discriminator.*every human and animal is generated"):
        run_wscda(parse_config(_raw(generated, discriminator="three_way"), WSCDAConfig), tmp_path, progress=False)


@pytest.mark.slow
def test_run_wscda_end_to_end_resume_and_command(generated, tmp_path):
    from typer.testing import CliRunner

    from animalpose.adapt.wscda import WSCDAConfig, run_wscda
    from animalpose.cli import app
    from animalpose.engine.evaluate import load_model

    raw = _raw(generated)
    out = tmp_path / "run"
    result = run_wscda(parse_config(raw, WSCDAConfig), out, progress=False)
    assert result.last_checkpoint == out / "round_0.ckpt"
    assert {"train/l_ddl", "train/disc_acc/human", "train/disc_acc/target", "test/pck@0.05"} <= set(result.wscda)
    (r0,) = result.rounds
    # round 0 keeps the top 20% of the 8 target crops × 20 joints = 160 joints: 32
    assert r0["kept"] == 32 and r0["coverage"] == pytest.approx(0.2)
    assert 0.0 <= r0["pseudo/precision"] <= 1.0
    for name in ("wscda.ckpt", "round_0.ckpt"):
        _, schema, cfg, _, _ = load_model(out / name)  # the adapter folded back: an ordinary model
        assert schema.name == "animalpose" and cfg.model.name == "simplebaseline18"
    stamp = (out / "round_0.ckpt").stat().st_mtime_ns
    again = run_wscda(parse_config(raw, WSCDAConfig), out, progress=False)  # resume: nothing left to do
    assert again.rounds == result.rounds and (out / "round_0.ckpt").stat().st_mtime_ns == stamp

    config = tmp_path / "wscda.yaml"
    config.write_text(yaml.safe_dump(raw))
    res = CliRunner().invoke(app, ["adapt", "wscda", "--config", str(config), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["rounds"] == 1 and summary["last_checkpoint"] == str(out / "round_0.ckpt")


def test_every_stream_takes_the_configs_augmentation_ranges(generated, tmp_path, monkeypatch):
    """The augmenter WS-CDA builds carries ``augment.scale/rotation/flip_prob`` from the config, not only the
    preset's defaults (the simplebaseline preset: scale ±35 %, rotation ±45°, flip 0.5)."""
    import animalpose.adapt.wscda.run as run
    from animalpose.adapt.wscda import WSCDAConfig

    built = []

    class Built(Exception):
        pass

    def spy(*args, **kwargs):
        built.append(real(*args, **kwargs))
        raise Built  # the augmenter is all this test needs; stop before any training

    real = run.build_augmenter
    monkeypatch.setattr(run, "build_augmenter", spy)
    raw = _raw(generated)
    raw["augment"] = {"preset": "simplebaseline", "scale": [0.9, 1.1], "rotation": 12.0, "flip_prob": 0.0}
    with pytest.raises(Built):
        run.run_wscda(parse_config(raw, WSCDAConfig), tmp_path, progress=False)
    (aug,) = built
    # scale [0.9, 1.1] -> factor 0.1; at most 12 degrees -> factor 6 (the preset clips at 2x its factor)
    c = aug.config
    assert (c.scale_factor, c.rotation_factor, c.flip_prob) == pytest.approx((0.1, 6.0, 0.0))


def test_init_checkpoint_copies_every_tensor_that_fits(tmp_path):
    """``wscda.init_checkpoint`` (the paper's human-pretrained start): every tensor whose name and shape
    match is copied, a head of another joint count is skipped, and a checkpoint with nothing that fits is
    refused naming the file."""
    import torch

    from animalpose.adapt.wscda.datasets import load_matching as _load_matching
    from animalpose.engine.checkpoint import save_checkpoint
    from animalpose.errors import DataError
    from animalpose.keypoints import load_schema
    from animalpose.models.factory import build_model

    def save(name, state, schema):
        return save_checkpoint(tmp_path / name, model=state, schema=load_schema(schema), config={}, epoch=0,
                               step=0, with_rng=False)

    torch.manual_seed(0)
    human = build_model("simplebaseline18", 20).state_dict()
    fresh = build_model("simplebaseline18", 20)
    assert _load_matching(fresh, save("human.ckpt", human, "animalpose")) == len(human)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in human.items())

    coco = build_model("simplebaseline18", 17).state_dict()
    fresh = build_model("simplebaseline18", 20)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    head = {k for k, v in before.items() if coco[k].shape != v.shape}
    assert head and _load_matching(fresh, save("coco.ckpt", coco, "coco")) == len(coco) - len(head)
    for k, v in fresh.state_dict().items():  # the 17-joint head is skipped, everything else copied
        assert torch.equal(v, before[k] if k in head else coco[k]), k

    bad = save("bad.ckpt", {"x": torch.zeros(3)}, "animalpose")
    with pytest.raises(DataError, match=r"bad\.ckpt"):
        _load_matching(build_model("simplebaseline18", 20), bad)


def test_temporary_files_of_a_killed_run_are_removed_on_start(generated, tmp_path, monkeypatch, capsys):
    """What a kill inside a write leaves (``.<stem>.<8 hex><suffix>``) goes when the run starts again; the rest
    stays."""
    import animalpose.adapt.wscda.run as run
    from animalpose.adapt.wscda import WSCDAConfig

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(run, "build_data", stop)  # the clean-up comes first; no data needed to see it
    (tmp_path / "pplo_0").mkdir()
    stale = [".wscda.train.0badc0de.ckpt", ".state.1234abcd.json", "pplo_0/.labels.deadbeef.json"]
    keep = ["state.json", ".hidden", "pplo_0/labels.json"]
    for name in stale + keep:
        (tmp_path / name).write_text("{")
    with pytest.raises(Stop):
        run.run_wscda(parse_config(_raw(generated), WSCDAConfig), tmp_path, progress=True)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == sorted(keep)
    assert "removed 3 temporary file(s) left by an interrupted write" in capsys.readouterr().err
