"""Session-wide safety net: tests write only under a temporary data home, with telemetry off.

Without this a test that forgets to pass an output folder would write into the checkout's
``data/`` (or, for caches keyed next to data, into the shared fixtures).
"""

import atexit
import os
import shutil
import tempfile

import pytest

os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ["ANIMALPOSE_HOME"] = tempfile.mkdtemp(prefix="animalpose-test-home-")
# removed when the session ends (every session used to leave one behind in the temporary folder)
atexit.register(shutil.rmtree, os.environ["ANIMALPOSE_HOME"], ignore_errors=True)


def _fix_thread_plan() -> None:
    """One torch thread and no loader workers for the whole session, whatever the load: results never depend
    on how busy the machine is, and no busy-machine warning lands in a command's output (tests/test_threads.py
    tests the policy itself on fake machines)."""
    import io

    from animalpose.threads import configure_threads

    configure_threads(1, 0, stream=io.StringIO())


_fix_thread_plan()


@pytest.fixture(autouse=True)
def one_thread():
    """Every test runs torch on one thread (figures that do not depend on the machine's thread count, and no
    oversubscription of a 2-core machine), whatever an earlier test set; the count is restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


MIRROR_MOUSE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data",
                            "real", "mirror-mouse")


def make_dlc_project(root, sessions: int = 3, frames: int = 90, scorer: str = "rick"):
    """A DeepLabCut project folder made from the real mirror-mouse labels, laid out as DLC writes one:
    ``config.yaml`` (Task, bodyparts, video_sets), ``labeled-data/<video>/CollectedData_<scorer>.csv`` and
    ``videos/``. The labelled frames img01..img<frames> are dealt in order into ``sessions`` label folders
    (``session0``, ...; the images are copies of the originals), as if taken from that many videos; the one
    real video is ``videos/test_vid.mp4``. Skips the test when the real data is absent."""
    import csv
    from pathlib import Path

    import yaml

    src = Path(MIRROR_MOUSE).resolve()
    if not src.is_dir():
        pytest.skip(f"real data not found at {src}")
    root = Path(root)
    rows = list(csv.reader((src / "CollectedData.csv").open()))
    header, body = rows[:3], [r for r in rows[3:] if r and int(Path(r[0]).stem[3:]) in range(1, frames + 1)]
    per = -(-len(body) // sessions)
    for s in range(sessions):
        folder = root / "labeled-data" / f"session{s}"
        folder.mkdir(parents=True)
        out = []
        for r in body[s * per:(s + 1) * per]:
            name = Path(r[0]).name
            shutil.copyfile(src / r[0], folder / name)  # a project's own frames (a link out is refused)
            out.append([f"labeled-data/session{s}/{name}", *r[1:]])
        with (folder / f"CollectedData_{scorer}.csv").open("w", newline="") as fh:
            csv.writer(fh).writerows([*header, *out])
    (root / "videos").mkdir()
    (root / "videos" / "test_vid.mp4").symlink_to(src / "videos" / "test_vid.mp4")
    bodyparts = list(dict.fromkeys(header[1][1:]))
    config = {"Task": "mirror", "scorer": scorer, "date": "Dec5", "multianimalproject": False,
              "project_path": "/home/lab/mirror-rick-2026-12-05", "bodyparts": bodyparts,
              "video_sets": {"/home/lab/raw/test_vid.mp4": {"crop": "0, 396, 0, 406"}},
              "skeleton": [["nose_top", "tailBase_top"]], "numframes2pick": 30}
    (root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


@pytest.fixture(scope="session")
def dlc_project():
    """:func:`make_dlc_project`, for tests in any folder (``dlc_project(tmp_path / "p", sessions=3)``)."""
    return make_dlc_project
