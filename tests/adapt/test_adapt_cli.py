"""`animalpose adapt ccssl`: configs load with the paper/quick settings; bad keys fail naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from animalpose.adapt.ccssl import CCSSLConfig, keep_percentile, num_rounds
from animalpose.cli import main
from animalpose.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "adapt"


def test_paper_config_is_the_reference_setting():
    cfg = load_config(CONFIGS / "ccssl_paper.yaml", CCSSLConfig)
    assert cfg.model.name == "hourglass4" and tuple(cfg.data.input_size) == (256, 256)
    assert tuple(cfg.data.heatmap_size) == (64, 64)
    assert cfg.train.epochs == 60 and cfg.ccssl.regenerate_every == 10 and num_rounds(cfg) == 6
    assert cfg.ccssl.lambda_target == 10.0 and cfg.train.select_on == "source-val"
    assert [round(1 - keep_percentile(cfg, r), 6) for r in range(6)] == [0.2, 0.4, 0.6, 0.8, 0.8, 0.8]
    c = cfg.ccssl.consistency("cuda")
    assert (c.num_geometric, c.scale_sigma, c.rotation_sigma, c.flip) == (4, 0.25, 30.0, False)
    # views x images per forward pass: all 7 views of a batch on a GPU, 8 on a CPU, or ccssl.view_batch
    assert cfg.ccssl.views == 1 + 4 + 2
    assert (c.max_batch, cfg.ccssl.consistency("cpu").max_batch) == (7 * cfg.ccssl.pseudo_batch_size, 8)
    fixed = cfg.ccssl.model_copy(update={"view_batch": 5})
    assert (fixed.consistency("cuda").max_batch, fixed.consistency("cpu").max_batch) == (5, 5)
    f = cfg.ccssl.flow()
    assert (f.win_size, f.max_level, f.max_iter, f.eps, f.max_jump, f.ratio) == (15, 2, 10, 0.03, 15.0, 0.9)


def test_quick_config_loads():
    cfg = load_config(CONFIGS / "ccssl_quick.yaml", CCSSLConfig)
    assert cfg.model.name == "hourglass1" and cfg.model.channels == 64 and cfg.train.device == "cpu"
    assert tuple(cfg.data.input_size) == (128, 128) and tuple(cfg.data.heatmap_size) == (32, 32)
    assert cfg.codec.sigma == 2.0 and cfg.ccssl.lambda_target == 1.0 and cfg.ccssl.lr == 2e-3
    assert num_rounds(cfg) == 3 and cfg.ccssl.source_epochs > 0


def test_cli_rejects_unknown_key_naming_it(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["adapt", "ccssl", "--config", str(CONFIGS / "ccssl_quick.yaml"), "ccssl.lambda_taret=1"])
    assert exc.value.code == 2
    assert "ccssl.lambda_taret" in capsys.readouterr().err


def test_cli_target_val_selection_without_target_labels_fails(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["adapt", "ccssl", "--config", str(CONFIGS / "ccssl_quick.yaml"), "--select-on", "target-val",
              "--out", str(tmp_path), "tracking.enabled=false"])
    assert exc.value.code == 2
    assert "target_val" in capsys.readouterr().err
