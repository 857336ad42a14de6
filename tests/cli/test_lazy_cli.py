"""The fast CLI: help, version, schemas, config show and argument errors never import torch, MLflow or Prefect."""

import inspect
import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from animalpose.paths import REPO_ROOT

HEAVY = ("torch", "mlflow", "prefect")

PROBE = """
import json, sys
from animalpose.cli import main
seen = {"import animalpose.cli": [m for m in HEAVY if m in sys.modules]}
for argv in ARGVS:
    try:
        main(argv)
    except SystemExit:
        pass
    seen[" ".join(argv)] = [m for m in HEAVY if m in sys.modules]
print("SEEN" + json.dumps(seen), file=sys.stderr)
"""


def _probe(argvs: list[list[str]], heavy: tuple[str, ...] = HEAVY) -> dict:
    code = f"HEAVY = {heavy!r}\nARGVS = {argvs!r}\n" + PROBE
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    line = next(x for x in done.stderr.splitlines() if x.startswith("SEEN"))
    return json.loads(line[4:])


def test_light_commands_import_no_torch_mlflow_or_prefect():
    argvs = [["--help"], ["--version"], ["bench", "--help"], ["schemas", "list"], ["schemas", "show", "tigdog"],
             ["config", "show", "configs/presets/quick.yaml"], ["train"], ["train", "--help"],
             ["demo", "--threads", "0"], ["adapt", "ccssl", "--help"], ["data", "--help"]]
    seen = _probe(argvs)
    assert len(seen) == len(argvs) + 1
    # cumulative: the first entry that lists a module is the one that imported it
    assert all(mods == [] for mods in seen.values()), seen


def test_the_probe_sees_what_a_command_imports():
    # or it proves nothing: `schemas list` reads YAML (and `data --help` does not touch OpenCV)
    seen = _probe([["data", "--help"], ["schemas", "list"]], heavy=("yaml", "cv2"))
    assert seen["data --help"] == [] and seen["schemas list"] == ["yaml"]


def test_version():
    from animalpose import __version__
    from animalpose.cli import app

    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"animalpose {__version__}"


def test_bench_lists_every_command_with_its_own_docstring():
    import importlib

    from animalpose.cli import app
    from flows.benchmarks.cli import COMMANDS

    res = CliRunner().invoke(app, ["bench", "--help"], env={"COLUMNS": "300"})
    assert res.exit_code == 0
    for name, (module, function, short_help) in COMMANDS.items():
        assert name in res.output
        fn = getattr(importlib.import_module(f"flows.benchmarks.{module}"), function)
        assert inspect.getdoc(fn).splitlines()[0] == short_help, name


def test_a_lazy_bench_command_parses_its_own_options():
    from animalpose.cli import app

    res = CliRunner().invoke(app, ["bench", "cli", "--repeats", "0"])
    assert res.exit_code == 2 and "--repeats" in res.output
    res = CliRunner().invoke(app, ["bench", "cli", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "--checkout" in res.output


def test_bench_cli_times_against_python(tmp_path):
    from flows.benchmarks.clitime import cli_times

    r = cli_times(("--version",), repeats=1)
    v = r["commands"]["--version"]
    assert r["python_s"] > 0 and len(v["times"]) == 1
    # both sides rounded (ratio to 0.1, times to 0.1 ms / 1 ms): a relative tolerance
    assert v["ratio"] == pytest.approx(v["median_s"] / r["python_s"], rel=0.03, abs=0.06)
    with pytest.raises(RuntimeError, match="no-such-option"):
        cli_times(("--no-such-option",), repeats=1)
