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


@pytest.fixture
def one_thread():
    """torch on one thread during the test (figures that do not depend on the machine's thread count, and no
    oversubscription of a 2-core machine); files request it with an autouse ``_one_thread(one_thread)``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
