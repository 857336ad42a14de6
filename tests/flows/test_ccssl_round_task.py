"""The ``ccssl-round`` task hands on the checkpoint of its own round, whatever the library has finished.

A flow re-run after a crash past the rounds (e.g. in the oracle's training) misses the round tasks'
cache (the output folder's file stamps changed), so each round task calls ``run_ccssl`` on a folder
where every round is already done; the library then reports its last round's checkpoint. The first
bench run of the quick preset evaluated round 3's checkpoint as rounds 1, 2 and 3 this way.
"""

from pathlib import Path
from types import SimpleNamespace

import pytest

import animalpose.adapt.ccssl as lib
import flows.ccssl as flow


class _Cfg(SimpleNamespace):
    def model_copy(self, update):
        return _Cfg(**{**vars(self), **update})


def _finished_three_rounds(tmp_path, monkeypatch):
    for r in range(3):
        (tmp_path / f"round_{r}.ckpt").write_bytes(b"weights of round %d" % r)
    train = SimpleNamespace(model_copy=lambda update: SimpleNamespace(**update))
    monkeypatch.setattr(flow, "ccssl_config", lambda *a, **k: _Cfg(train=train))
    rounds = [{"target/pck@0.05": 0.1 * (r + 1)} for r in range(3)]
    monkeypatch.setattr(lib, "run_ccssl", lambda cfg, out, **k: lib.CCSSLResult(
        Path(out), rounds, {"pck@0.05": 0.05}, None, Path(out) / "round_2.ckpt"))


@pytest.mark.parametrize("r", [0, 1, 2])
def test_each_round_returns_its_own_checkpoint_and_metrics(tmp_path, monkeypatch, r):
    _finished_three_rounds(tmp_path, monkeypatch)
    res = flow.ccssl_round.fn({}, "preset.yaml", tmp_path / "src.ckpt", [], tmp_path / "test", tmp_path, r, 2, 3)
    assert res["checkpoint"] == str(tmp_path / f"round_{r}.ckpt")
    assert res["metrics"] == {"target/pck@0.05": pytest.approx(0.1 * (r + 1))}


def test_a_missing_round_checkpoint_is_an_error(tmp_path, monkeypatch):
    _finished_three_rounds(tmp_path, monkeypatch)
    (tmp_path / "round_1.ckpt").unlink()
    with pytest.raises(RuntimeError, match=r"round_1\.ckpt"):
        flow.ccssl_round.fn({}, "preset.yaml", tmp_path / "src.ckpt", [], tmp_path / "test", tmp_path, 1, 2, 3)
