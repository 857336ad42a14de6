"""CC-SSL reference checkpoints into our hourglass: a file in the reference's layout (``{'state_dict': ...}``,
DataParallel ``module.`` names, ``downsample.0.*``) is built here by renaming our state dict, saved, loaded,
and must give bitwise the same outputs; names that do not map are errors naming the key."""

from __future__ import annotations

import pytest
import torch

from animalpose.errors import ConfigError, DataError
from animalpose.models.factory import build_model
from animalpose.models.reference_weights import load_reference_hourglass, reference_to_ours


def as_reference(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our HourglassNet names -> the reference's: the shortcut conv inside a Sequential, under DataParallel."""
    out = {}
    for k, v in state.items():
        parts = k.split(".")
        if "downsample" in parts:
            i = parts.index("downsample")
            parts = [*parts[:i + 1], "0", *parts[i + 1:]]
        out["module." + ".".join(parts)] = v
    return out


def _randomised(name: str, seed: int):
    """A model with random weights and non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = build_model(name, 18)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
                m.num_batches_tracked.fill_(1234)
    return model.eval()


def _save_reference(path, model) -> dict[str, torch.Tensor]:
    ref = as_reference(model.net.state_dict())
    torch.save({"epoch": 100, "arch": "hg", "state_dict": ref, "best_acc": torch.tensor(0.7, dtype=torch.float32),
                "optimizer": {"state": {}, "param_groups": [{"lr": 2.5e-5, "params": list(range(len(ref)))}]}},
               path)
    return ref


@pytest.mark.parametrize("name", ["hourglass1", "hourglass4"])
def test_reference_layout_checkpoint_loads_and_predicts_bitwise_the_same(tmp_path, name):
    source = _randomised(name, 0)
    path = tmp_path / "checkpoint.pth.tar"
    ref = _save_reference(path, source)
    assert any(".downsample.0." in k for k in ref) and all(k.startswith("module.") for k in ref)
    loaded = build_model(name, 18, pretrained=str(path)).eval()  # model.pretrained=PATH
    for k, v in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want, got = source(x), loaded(x)
    assert len(got) == len(want) == int(name[-1])
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def test_name_mapping():
    assert reference_to_ours("layer1.0.downsample.0.weight") == "layer1.0.downsample.weight"
    assert reference_to_ours("hg.0.hg.3.0.0.conv1.bias") == "hg.0.hg.3.0.0.conv1.bias"
    assert reference_to_ours("fc.1.0.weight") == "fc.1.0.weight"  # a Sequential index that is not a shortcut


def test_a_key_that_does_not_map_is_named(tmp_path):
    source = _randomised("hourglass1", 1)
    ref = as_reference(source.net.state_dict())
    multitask = {**ref, "module.score_seg.0.weight": torch.zeros(10, 256, 1, 1)}  # the reference's hg_multitask
    path = tmp_path / "multitask.pth.tar"
    torch.save({"state_dict": multitask}, path)
    with pytest.raises(DataError, match=r"state_dict\.score_seg\.0\.weight: does not map") as err:
        load_reference_hourglass(build_model("hourglass1", 18), path)
    assert err.value.file == str(path)
    # four stacks into one: the first stack-1 tensor is named
    four = tmp_path / "four.pth.tar"
    _save_reference(four, _randomised("hourglass4", 2))
    with pytest.raises(DataError, match=r"state_dict\.hg\.1\.hg\.0\.0\.0\.bn1\.weight"):
        load_reference_hourglass(build_model("hourglass1", 18), four)
    # one stack into four: the first tensor the file lacks is named
    one = tmp_path / "one.pth.tar"
    _save_reference(one, source)
    with pytest.raises(DataError, match=r"lacks .* the first 'hg\.1\.hg\.0\.0\.0\.bn1\.weight'"):
        load_reference_hourglass(build_model("hourglass4", 18), one)
    # 16 MPII joints into 18
    mpii = tmp_path / "mpii.pth.tar"
    torch.save({"state_dict": as_reference(build_model("hourglass1", 16).net.state_dict())}, mpii)
    with pytest.raises(DataError, match=r"state_dict\.score\.0\.weight: shape \(16, 256, 1, 1\)"):
        load_reference_hourglass(build_model("hourglass1", 18), mpii)


def test_loads_are_weights_only_and_only_into_an_hourglass(tmp_path):
    path = tmp_path / "pickled.pth.tar"
    torch.save({"state_dict": {"module.conv1.weight": torch.zeros(1)}, "args": ConfigError}, path)
    with pytest.raises(DataError, match="weights-only"):
        load_reference_hourglass(build_model("hourglass1", 18), path)
    good = tmp_path / "good.pth.tar"
    _save_reference(good, _randomised("hourglass1", 4))
    with pytest.raises(ConfigError, match="stacked hourglass"):
        load_reference_hourglass(build_model("simplebaseline18", 18, deconv_channels=8), good)
