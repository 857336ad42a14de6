"""Where the project keeps its data: generated datasets, runs, checkpoints, the MLflow database.

``ANIMALPOSE_HOME`` wins; otherwise ``data/`` at the root of the checkout (beside pyproject.toml)
when running from one, else ``~/.animalpose``. Always absolute, so a SQLite URI built from it is
valid wherever the process runs.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_home() -> Path:
    env = os.environ.get("ANIMALPOSE_HOME")
    if env:
        return Path(env).expanduser().resolve()
    if (REPO_ROOT / "pyproject.toml").is_file():
        return REPO_ROOT / "data"
    return Path.home() / ".animalpose"


def default_tracking_uri() -> str:
    """SQLite MLflow store under the data home (MLflow 3's default store; the file store is deprecated)."""
    return f"sqlite:///{data_home() / 'mlflow.db'}"
