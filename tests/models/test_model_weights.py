"""Local ImageNet weights: load a state dict saved here, report unused keys, name the file on errors."""

from __future__ import annotations

import pytest
import torch
import torchvision

from animalpose.errors import ConfigError, DataError
from animalpose.models.factory import build_model
from animalpose.models.hrnet import HRNet, HRNetConfig
from animalpose.models.weights import load_backbone_weights


@pytest.fixture
def resnet18_file(tmp_path):
    """A torchvision ResNet-18 classifier state dict (random weights), as an ImageNet file would be."""
    torch.manual_seed(1)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(state, path)
    return path, state


def test_loads_backbone_and_reports_classifier_as_unexpected(resnet18_file):
    path, state = resnet18_file
    model = build_model("simplebaseline18", 4, deconv_channels=8)
    head_before = model.net.final_layer.weight.clone()
    report = load_backbone_weights(model, path)
    assert torch.equal(model.net.backbone.conv1.weight, state["conv1.weight"])
    assert torch.equal(model.net.backbone.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])
    assert sorted(report.unexpected) == ["fc.bias", "fc.weight"]
    assert report.missing == [] and len(report.loaded) == len(model.net.backbone.state_dict())
    assert torch.equal(model.net.final_layer.weight, head_before)
    assert "fc.weight" in report.summary()


def test_wrapped_and_dataparallel_files_load(tmp_path, resnet18_file):
    _, state = resnet18_file
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    model = build_model("simplebaseline18", 4, deconv_channels=8)
    load_backbone_weights(model, path)
    assert torch.equal(model.net.backbone.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])


def test_pretrained_through_config(resnet18_file):
    path, state = resnet18_file
    model = build_model("simplebaseline18", 4, deconv_channels=8, pretrained=str(path))
    assert torch.equal(model.net.backbone.conv1.weight, state["conv1.weight"])


def test_missing_backbone_keys_name_the_file(tmp_path, resnet18_file):
    _, state = resnet18_file
    path = tmp_path / "partial.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("layer4")}, path)
    with pytest.raises(DataError, match="missing backbone keys: layer4") as err:
        load_backbone_weights(build_model("simplebaseline18", 4, deconv_channels=8), path)
    assert err.value.file == str(path) and err.value.field == "pretrained"


def test_wrong_depth_and_wrong_shapes_name_the_file(tmp_path, resnet18_file):
    path, state = resnet18_file
    with pytest.raises(DataError, match=r"missing backbone keys: layer1\.2\.") as err:
        load_backbone_weights(build_model("simplebaseline34", 4, deconv_channels=8), path)
    assert err.value.file == str(path)
    bad = tmp_path / "bad-shape.pth"
    torch.save({**state, "conv1.weight": torch.zeros(64, 3, 3, 3)}, bad)
    with pytest.raises(DataError, match=r"shape mismatch.*conv1\.weight \(64, 3, 3, 3\) vs \(64, 3, 7, 7\)") as err:
        load_backbone_weights(build_model("simplebaseline18", 4, deconv_channels=8), bad)
    assert err.value.file == str(bad)


def test_missing_and_garbage_files(tmp_path):
    model = build_model("simplebaseline18", 4, deconv_channels=8)
    with pytest.raises(DataError, match="no such file"):
        load_backbone_weights(model, tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="cannot read") as err:
        load_backbone_weights(model, junk)
    assert err.value.file == str(junk)
    lst = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], lst)
    with pytest.raises(DataError, match="state dict"):
        load_backbone_weights(model, lst)


def test_hrnet_loads_everything_but_the_pose_head(tmp_path):
    cfg = HRNetConfig(width=4, num_modules=(1, 1, 1), num_blocks=1, stem_blocks=1)
    source = HRNet(5, cfg)
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("final_layer")}
    state["classifier.weight"] = torch.zeros(10, 4)
    path = tmp_path / "hrnet.pth"
    torch.save(state, path)
    target = HRNet(17, cfg)
    report = load_backbone_weights(target, path)
    assert torch.equal(target.stage4[0].fuse_layers[0][1][0].weight, source.stage4[0].fuse_layers[0][1][0].weight)
    assert report.unexpected == ["classifier.weight"]
    assert sorted(report.missing) == ["final_layer.bias", "final_layer.weight"]


def test_hourglass_has_no_imagenet_backbone(resnet18_file):
    path, _ = resnet18_file
    with pytest.raises(ConfigError, match="no ImageNet backbone"):
        load_backbone_weights(build_model("hourglass_quick"), path)
