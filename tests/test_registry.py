import pytest

mlflow = pytest.importorskip("mlflow")

from animalpose.registry import current_champion, promote_if_better  # noqa: E402


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    # One SQLite store per module: creating the schema costs seconds, a registered model per test does not.
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture
def client(store, request):
    name = request.node.name
    store.create_registered_model(name)
    return _Named(store, name)


class _Named:
    """The client with this test's model name bound, so tests read as if there were one model "pose"."""

    def __init__(self, client, name):
        self._c, self.name = client, name

    def __getattr__(self, attr):
        fn = getattr(self._c, attr)
        return lambda model, *a, **k: fn(self.name if model == "pose" else model, *a, **k)


def _version(client, tmp_path, tag):
    src = tmp_path / f"model_{tag}"
    src.mkdir()
    return client.create_model_version("pose", source=str(src)).version


def test_first_challenger_becomes_champion(client, tmp_path):
    v1 = _version(client, tmp_path, "a")
    d = promote_if_better(client, "pose", v1, lambda uri: 0.5)
    assert d.promoted and d.champion_version is None and d.delta is None
    assert current_champion(client, "pose") == str(v1)


def test_worse_challenger_keeps_champion(client, tmp_path):
    v1, v2 = _version(client, tmp_path, "a"), _version(client, tmp_path, "b")
    promote_if_better(client, "pose", v1, lambda uri: 0.7)
    scores = {f"models:/pose/{v1}": 0.7, f"models:/pose/{v2}": 0.6}
    d = promote_if_better(client, "pose", v2, scores.__getitem__)
    assert d.winner == "champion" and not d.promoted
    assert d.delta == pytest.approx(-0.1)
    assert current_champion(client, "pose") == str(v1)
    assert f"champion v{v1} kept" in d.markdown() and "0.1000" in d.markdown()


def test_better_challenger_is_promoted_and_ties_are_not(client, tmp_path):
    v1, v2, v3 = (_version(client, tmp_path, t) for t in "abc")
    promote_if_better(client, "pose", v1, lambda uri: 0.6)
    scores = {f"models:/pose/{v1}": 0.6, f"models:/pose/{v2}": 0.65, f"models:/pose/{v3}": 0.65}
    d = promote_if_better(client, "pose", v2, scores.__getitem__)
    assert d.promoted and d.delta == pytest.approx(0.05)
    assert current_champion(client, "pose") == str(v2)
    d = promote_if_better(client, "pose", v3, scores.__getitem__)
    assert not d.promoted, "a tie keeps the champion"
    assert current_champion(client, "pose") == str(v2)


def test_lower_is_better_metric(client, tmp_path):
    v1, v2 = _version(client, tmp_path, "a"), _version(client, tmp_path, "b")
    promote_if_better(client, "pose", v1, lambda uri: 5.0, metric="px_error", higher_is_better=False)
    scores = {f"models:/pose/{v1}": 5.0, f"models:/pose/{v2}": 4.0}
    d = promote_if_better(client, "pose", v2, scores.__getitem__, metric="px_error", higher_is_better=False)
    assert d.promoted and d.delta == pytest.approx(1.0)
