"""Generated data for the WS-CDA run tests (test_wscda_run.py, test_wscda_steps.py)."""

import pytest


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """COCO folders of generated animals at 32 px: 8 humans (source), 6 horses (the few labelled animals),
    8 dogs (unlabelled target), 6 dogs (test); made once per test module."""
    synthetic = pytest.importorskip("synthetic")
    root = tmp_path_factory.mktemp("wscda_data")
    specs = {"human": ("human", 8, 1), "few": ("horse", 6, 2), "target": ("dog", 8, 3), "test": ("dog", 6, 4)}
    return {name: synthetic.generate_dataset(root / name, sp, "photo", n, 32, seed) for name, (sp, n, seed)
            in specs.items()}
