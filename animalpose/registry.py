"""Champion / challenger gate over the MLflow model registry.

Scheduled retraining produces a challenger model version. It replaces the current champion (the
version holding the registry alias ``champion``) only if it scores better on a fixed evaluation set;
otherwise the alias stays where it is and the challenger remains registered for inspection. Both are
scored in the same call by the same function, so the comparison never mixes evaluation sets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

CHAMPION = "champion"


@dataclass(frozen=True)
class GateDecision:
    """The outcome of one champion/challenger comparison."""

    model_name: str
    metric: str
    winner: str  # "challenger" or "champion"
    challenger_version: str
    challenger_score: float
    champion_version: str | None
    champion_score: float | None
    delta: float | None  # challenger - champion (in the metric's better direction), None without a champion

    @property
    def promoted(self) -> bool:
        return self.winner == "challenger"

    def to_dict(self) -> dict:
        return {**asdict(self), "promoted": self.promoted}

    def markdown(self) -> str:
        """A short table for a Prefect artifact."""
        champ = "—" if self.champion_version is None else f"v{self.champion_version}: {self.champion_score:.4f}"
        verdict = (
            f"**challenger v{self.challenger_version} promoted**"
            if self.promoted
            else f"**champion v{self.champion_version} kept**"
        )
        by = "" if self.delta is None else f" (by {abs(self.delta):.4f} {self.metric})"
        return (
            f"| model | {self.metric} |\n|---|---|\n| challenger v{self.challenger_version} | "
            f"{self.challenger_score:.4f} |\n| champion | {champ} |\n\n{verdict}{by}\n"
        )


def current_champion(client, model_name: str) -> str | None:
    """The version holding the ``champion`` alias, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model_name, CHAMPION).version)
    except MlflowException:
        return None


def promote_if_better(
    client,
    model_name: str,
    challenger_version: str | int,
    score: Callable[[str], float],
    *,
    metric: str = "pck@0.05",
    higher_is_better: bool = True,
    min_delta: float = 0.0,
) -> GateDecision:
    """Score challenger and champion with ``score(model_uri)``; move the alias only on a win.

    Args:
        client: an ``mlflow.MlflowClient``.
        score: evaluates ``models:/<name>/<version>`` on the fixed evaluation set.
        min_delta: the challenger must beat the champion by more than this (ties keep the champion).
    """
    challenger_version = str(challenger_version)
    champion_version = current_champion(client, model_name)
    challenger_score = float(score(f"models:/{model_name}/{challenger_version}"))
    if champion_version is None or champion_version == challenger_version:
        client.set_registered_model_alias(model_name, CHAMPION, challenger_version)
        return GateDecision(model_name, metric, "challenger", challenger_version, challenger_score, None, None, None)
    champion_score = float(score(f"models:/{model_name}/{champion_version}"))
    sign = 1.0 if higher_is_better else -1.0
    delta = sign * (challenger_score - champion_score)
    winner = "challenger" if delta > min_delta else "champion"
    if winner == "challenger":
        client.set_registered_model_alias(model_name, CHAMPION, challenger_version)
    return GateDecision(
        model_name, metric, winner, challenger_version, challenger_score, champion_version, champion_score, delta
    )
