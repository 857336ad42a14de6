"""The ``ccssl-round`` task hands on the checkpoint of its own round, whatever the library has finished.

A flow re-run after a crash past the rounds (e.g. in the oracle's training) misses the round tasks'
cache (the output folder's file stamps changed), so each round task runs ``CCSSLRun.round`` on a
folder where every round is already done; the library's result then names its last round's checkpoint. The first
bench run of the quick preset evaluated round 3's checkpoint as rounds 1, 2 and 3 this way.
"""

from types import SimpleNamespace

import pytest

import animalpose.adapt.ccssl as lib
import flows.ccssl as flow


class _FinishedRun:
    """A :class:`~animalpose.adapt.ccssl.CCSSLRun` on a folder where three rounds have finished."""

    def __init__(self, cfg, out, **kwargs):
        self.rounds = [{"target/pck@0.05": 0.1 * (r + 1)} for r in range(3)]
        self.state = {"rounds": self.rounds, "source_only": {"pck@0.05": 0.05}}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def round(self, r):
        return self.rounds[r]


def _finished_three_rounds(tmp_path, monkeypatch):
    for r in range(3):
        (tmp_path / f"round_{r}.ckpt").write_bytes(b"weights of round %d" % r)
    monkeypatch.setattr(flow, "ccssl_config", lambda *a, **k: SimpleNamespace())
    monkeypatch.setattr(lib, "CCSSLRun", _FinishedRun)


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
