"""PPLO's ``consistency`` filter (issue 29 item 2): PPLO keeps exactly the joints CC-SSL's selection keeps,
by hand on a made-up pseudo-label set and through the consistency views of a small network on rendered
horses."""

import numpy as np
import pytest
import torch

from animalpose.adapt.ccssl import CCSSLSection, generate_pseudo_labels, select
from animalpose.adapt.pseudolabel import PseudoLabelSet
from animalpose.adapt.selection import RoundSchedule
from animalpose.adapt.wscda.pplo import make_pseudo_labels

synthetic = pytest.importorskip("synthetic")

IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def _labels(confidence: np.ndarray) -> PseudoLabelSet:
    n, k = confidence.shape
    xy = np.arange(n * k * 2, dtype=np.float32).reshape(n, k, 2)
    return PseudoLabelSet([None] * n, xy, confidence.astype(np.float32), {}, np.stack([IDENTITY] * n), (32, 32),
                          np.full((n, k), np.nan), np.zeros((n, k), bool), np.zeros((n, k), np.float32))


def test_pplo_keeps_the_joints_cc_ssl_keeps_by_hand():
    labels = _labels(np.array([[0.9, 0.1, 0.5], [0.3, 0.8, 0.2]]))
    schedule = RoundSchedule((1 / 3, 0.5))
    # round 0 keeps a third: the threshold is the 2/3-quantile of the six confidences, 0.5 + (1/3)(0.8 - 0.5)
    # = 0.6, so joint 0 of instance 0 (0.9) and joint 1 of instance 1 (0.8)
    expected = np.array([[True, False, False], [False, True, False]])
    ccssl = select(labels, schedule.percentile(0))
    pplo = make_pseudo_labels(labels.crop_xy, labels.confidence, 0, schedule)
    assert ccssl.threshold == pytest.approx(0.6) == pplo.selection.threshold
    np.testing.assert_array_equal(ccssl.weights > 0, expected)
    np.testing.assert_array_equal(pplo.selection.kept, expected)
    # the kept pseudo-labels are CC-SSL's points, in the crop frame (identity crops here)
    np.testing.assert_array_equal(pplo.keypoints[expected][:, :2], labels.xy[expected])
    assert (pplo.keypoints[~expected] == 0).all()
    # round 1 keeps half: the 0.5-quantile is 0.4, so 0.9, 0.5 and 0.8
    expected[0, 2] = True
    np.testing.assert_array_equal(select(labels, schedule.percentile(1)).weights > 0, expected)
    np.testing.assert_array_equal(make_pseudo_labels(labels.crop_xy, labels.confidence, 1, schedule).selection.kept,
                                  expected)


@pytest.fixture(scope="module")
def horses(tmp_path_factory):
    from animalpose.data.readers import read_dataset

    root = synthetic.generate_dataset(tmp_path_factory.mktemp("horses") / "h", "horse", "photo", 6, 64, 5)
    return read_dataset(root, "auto", "animalpose").records


def test_the_consistency_filter_keeps_what_cc_ssl_keeps_with_a_network(horses, one_thread):
    """The PPLO prediction pass of ``wscda.pplo_filter: consistency`` against CC-SSL's own pseudo-labelling and
    selection on the same network, crops and view seed: the same points, the same kept joints."""
    from animalpose.adapt.wscda.datasets import consistency_predict_crops
    from animalpose.codecs import build_codec
    from animalpose.data.dataset import Normalization
    from animalpose.models.factory import build_model

    torch.manual_seed(0)
    net = build_model("hourglass1", 20, num_feats=8, stem_channels=8).eval()
    codec = build_codec("gaussian", 64, 16, sigma=1.5)
    consistency = CCSSLSection().consistency("cpu")  # CC-SSL's defaults: 4 geometric + 2 photometric views
    common = dict(batch_size=4, padding=1.25, seed=7)
    coords, conf, mats, idx = consistency_predict_crops(net, horses, _schema(), codec, Normalization(), consistency,
                                                        "cpu", **common)
    labels = generate_pseudo_labels(net, horses, _schema(), codec, Normalization(), consistency, None,
                                    torch.device("cpu"), **common)
    np.testing.assert_array_equal(idx, np.arange(len(horses)))
    np.testing.assert_array_equal(mats, labels.matrices)
    np.testing.assert_allclose(coords, labels.crop_xy, atol=1e-3)
    np.testing.assert_array_equal(conf, labels.confidence)
    schedule = RoundSchedule((0.2, 0.4))
    for r in range(2):
        kept = make_pseudo_labels(coords, conf, r, schedule).selection.kept
        np.testing.assert_array_equal(kept, select(labels, schedule.percentile(r)).weights > 0)
        assert 0 < kept.sum() < kept.size


def _schema():
    from animalpose.keypoints import load_schema

    return load_schema("animalpose")
