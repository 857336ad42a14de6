"""`evaluate --protocol reference`: no flip test, batches of 6, every instance kept (unlabelled ones too), the
reference's batch-averaged PCK; checked end to end against the same heatmaps scored here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from animalpose.cli import app, main
from animalpose.data.dataset import TopDownDataset
from animalpose.data.readers import read_dataset
from animalpose.engine.build import crop_padding, make_codec
from animalpose.engine.evaluate import evaluate, load_model
from animalpose.errors import ConfigError
from animalpose.evaluation_reference import pck_batch_averaged


@pytest.fixture(scope="module")
def partly_unlabelled(dots, tmp_path_factory):
    """The 8 validation dots with the 3rd instance's labels removed (num_keypoints 0)."""
    coco = json.loads(dots["val"].read_text())
    ann = coco["annotations"][2]
    ann["keypoints"] = [0] * len(ann["keypoints"])
    ann["num_keypoints"] = 0
    out = tmp_path_factory.mktemp("unlabelled") / "val.json"
    root = dots["val"].parent.parent
    # the copy lives elsewhere: name the images by absolute path (read with allow_outside_root)
    for img in coco["images"]:
        img["file_name"] = str(root / img["file_name"])
    out.write_text(json.dumps(coco))
    return out


def _reference_by_hand(checkpoint, data, batch):
    """Heatmaps of every instance, in dataset order, no flip; the reference PCK over batches of ``batch``."""
    model, schema, cfg, norm, _ = load_model(checkpoint)
    ds = read_dataset(data, "auto", schema.name)
    codec = make_codec(cfg)
    tds = TopDownDataset(ds.records, schema, codec, None, padding=crop_padding(ds, cfg), normalization=norm)
    samples = [tds[i] for i in range(len(tds))]
    with torch.no_grad():
        hm = torch.cat([model(torch.stack([s["image"] for s in samples[i:i + batch]]))[-1]
                        for i in range(0, len(samples), batch)])
    target = np.stack([s["target"].numpy() for s in samples])
    return pck_batch_averaged(hm.numpy(), target, batch), len(samples)


def test_reference_protocol_end_to_end(trained, partly_unlabelled):
    res = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(trained), "--data", str(partly_unlabelled),
                                   "--protocol", "reference", "--json", "--allow-outside-root"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert (out["protocol"], out["flip"], out["batch_size"]) == ("reference", False, 6)
    assert out["instances"] == 8  # the unlabelled instance is batched too
    want, n = _reference_by_hand(trained, partly_unlabelled, 6)
    assert n == 8
    assert out["metrics"]["pck_crop@0.05_ref_b6"] == want
    assert set(out["per_joint_tables"]["pck_crop@0.05_ref"]) == set(out["per_joint"])
    # dropping the unlabelled instance first (the default protocol's rule) changes the batches and the number
    dropped = evaluate(trained, partly_unlabelled, protocol="default", flip=False, batch_size=6, progress=False,
                       allow_outside_root=True)
    assert dropped["instances"] == 7
    # the pooled PCK does not depend on the unlabelled instance nor on batching
    assert dropped["metrics"]["pck_crop@0.05"] == pytest.approx(out["metrics"]["pck_crop@0.05"])
    other = evaluate(trained, partly_unlabelled, protocol="reference", batch_size=3, progress=False,
                     allow_outside_root=True)
    assert other["metrics"]["pck_crop@0.05_ref_b3"] == _reference_by_hand(trained, partly_unlabelled, 3)[0]


def test_default_protocol_flip_tests_and_reference_refuses_it(trained, dots, capsys):
    default = evaluate(trained, dots["val"], progress=False)
    plain = evaluate(trained, dots["val"], flip=False, progress=False)
    assert default["flip"] and not plain["flip"]
    assert default["metrics"]["pixel_error_mean"] != plain["metrics"]["pixel_error_mean"]
    with pytest.raises(ConfigError, match="flip"):
        evaluate(trained, dots["val"], protocol="reference", flip=True, progress=False)
    with pytest.raises(SystemExit):
        main(["evaluate", "--checkpoint", str(trained), "--data", str(dots["val"]), "--protocol", "papers"])
    assert "protocol" in capsys.readouterr().err


def test_import_reference_then_evaluate_with_the_reference_protocol(tmp_path, dots):
    """A checkpoint in the reference's layout -> `models import-reference` -> `evaluate --protocol reference`."""
    from animalpose.models.factory import build_model

    torch.manual_seed(5)
    source = build_model("hourglass1", 17).eval()
    src = tmp_path / "checkpoint.pth.tar"  # the reference's names: DataParallel, the shortcut in a Sequential
    torch.save({"epoch": 1, "arch": "hg", "state_dict": {"module." + k.replace(".downsample.", ".downsample.0."): v
                                                        for k, v in source.net.state_dict().items()}}, src)
    mean_file = tmp_path / "mean.pth.tar"
    torch.save({"mean": torch.tensor([0.4, 0.5, 0.6]), "std": torch.tensor([0.2, 0.2, 0.2])}, mean_file)
    out = tmp_path / "imported.ckpt"
    runner = CliRunner()
    res = runner.invoke(app, ["models", "import-reference", str(src), str(out), "--model", "hourglass1",
                              "--schema", "coco", "--mean-file", str(mean_file)])
    assert res.exit_code == 0, res.output
    model, schema, cfg, norm, _ = load_model(out)
    assert schema.name == "coco" and cfg.model.name == "hourglass1" and cfg.codec.sigma == 1.0
    assert norm.mean == pytest.approx((0.4, 0.5, 0.6)) and norm.std == (1.0, 1.0, 1.0)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x)[-1], source(x)[-1])
    res = runner.invoke(app, ["evaluate", "--checkpoint", str(out), "--data", str(dots["val"]), "--protocol",
                              "reference", "--json"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert result["instances"] == 8 and 0.0 <= result["metrics"]["pck_crop@0.05_ref_b6"] <= 1.0
    res = runner.invoke(app, ["models", "import-reference", str(src), str(out)])
    assert res.exit_code == 2 and "mean" in res.output
