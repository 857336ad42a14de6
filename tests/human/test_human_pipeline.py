"""A real learning test of the human pipeline: the quick SimpleBaseline (configs/experiments/quick_human.yaml:
ResNet-18 from scratch, 64×96 input, 16×24 DARK heatmaps with σ = 2, Adam 1e-3, flip test) trained by
the engine on generated humans (``cad`` style, COCO's 17 joints) finds them on held-out generated
humans by OKS AP (pycocotools, COCO sigmas), where the same network at initialisation scores nothing.
Augmentation is off so a few dozen steps show the learning.

Data: training humans from seed 0, 60 held-out humans from seed 1, 96-px images. Seeded and
deterministic on the CPU. Stated numbers (measured on the 2-core development machine; both numbers
come from `evaluate` on the held-out file, flip test):

=================  ======================  =====================  ======================================
test               training                untrained AP / AP50    trained AP / AP50 (measured, asserted)
=================  ======================  =====================  ======================================
fast (default)     96 × 2 ep., batch 4     0.000 / 0.000 (< .01)  0.135 / 0.690  (≥ 0.06 / ≥ 0.35)
slow               200 × 5 ep., batch 8    0.000 / 0.000 (< .01)  0.198 / 0.843  (≥ 0.12 / ≥ 0.60)
=================  ======================  =====================  ======================================

The fast test also runs the pycocotools evaluation of the trained model on the real COCO fixture
(../shared/data/real/mmpose-tests/coco: 12 labelled people; a smoke run, not a benchmark: a model
that has seen only a hundred rendered humans scores about zero there, so only the range is checked).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from animalpose.config import load_config
from animalpose.engine.build import build_data, make_model, pick_device
from animalpose.engine.evaluate import evaluate
from animalpose.engine.trainer import Trainer, seed_everything

ROOT = Path(__file__).resolve().parents[2]
QUICK_HUMAN = ROOT / "configs" / "experiments" / "quick_human.yaml"
COCO_FIXTURE = ROOT / ".." / "shared" / "data" / "real" / "mmpose-tests" / "coco" / "test_coco.json"


@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> Path:
    from synthetic.writers import generate_dataset

    out = generate_dataset(tmp_path_factory.mktemp("humans") / "val", "human", "cad", 60, 96, 1)
    return out / "annotations" / "coco.json"


def train_quick_human(tmp: Path, val_json: Path, n_train: int, epochs: int, overrides: tuple[str, ...] = (),
                      ) -> tuple[dict, dict, Path]:
    """Train quick_human.yaml (augmentation off) on ``n_train`` generated humans for ``epochs``.

    Returns (metrics of the untrained network, metrics of the trained one, the trained checkpoint),
    both through :func:`animalpose.engine.evaluate.evaluate` on ``val_json`` (flip test).
    """
    from synthetic.writers import generate_dataset

    train_json = generate_dataset(tmp / "train", "human", "cad", n_train, 96, 0) / "annotations" / "coco.json"
    # no per-epoch validation (data.val empty): the held-out file is scored once, by `evaluate`
    cfg = load_config(QUICK_HUMAN, overrides=[
        f"data.train=[{train_json}]", "data.val=[]", "data.workers=0", "augment.preset=none",
        f"train.epochs={epochs}", "train.milestones=[]", "train.deterministic=true", "tracking.enabled=false",
        *overrides,
    ])
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    data = build_data(cfg)
    trainer = Trainer(cfg, make_model(cfg, data.schema), data.schema, data.train, data.val, tmp / "run",
                      device=pick_device("cpu"), progress=False)
    untrained = trainer.save(tmp / "run" / "untrained.ckpt")
    before = evaluate(untrained, val_json, device="cpu", progress=False)["metrics"]
    result = trainer.fit()
    after = evaluate(result.last_checkpoint, val_json, device="cpu", progress=False)["metrics"]
    return before, after, result.last_checkpoint


def test_quick_human_config_loads_and_needs_data():
    cfg = load_config(QUICK_HUMAN)
    assert cfg.model.name == "simplebaseline18" and cfg.codec.kind == "dark" and cfg.codec.sigma == 2.0
    assert tuple(cfg.data.input_size) == (64, 96) and tuple(cfg.data.heatmap_size) == (16, 24)
    assert cfg.augment.preset == "simplebaseline" and cfg.train.flip_test and cfg.train.device == "cpu"
    from animalpose.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data\.train"):
        build_data(cfg)


def test_quick_human_model_learns_generated_humans_oks_ap(tmp_path, held_out):
    before, after, ckpt = train_quick_human(tmp_path, held_out, n_train=96, epochs=2,
                                            overrides=("train.batch_size=4",))
    assert before["AP"] < 0.01 and before["AP50"] < 0.01
    assert after["AP"] >= 0.06 and after["AP50"] >= 0.35
    # pycocotools on the real COCO fixture runs end to end on this model (tiny: not a benchmark)
    real = evaluate(ckpt, COCO_FIXTURE, device="cpu", progress=False)
    assert real["instances"] == 12  # 14 annotations, 2 without labelled joints
    assert 0.0 <= real["metrics"]["AP"] <= 1.0 and 0.0 <= real["metrics"]["AR"] <= 1.0


@pytest.mark.slow
def test_quick_human_model_reaches_the_stated_oks_ap_on_held_out_generated_humans(tmp_path, held_out):
    before, after, _ = train_quick_human(tmp_path, held_out, n_train=200, epochs=5)
    assert before["AP"] < 0.01 and before["AP50"] < 0.01
    assert after["AP"] >= 0.12 and after["AP50"] >= 0.60
