"""Layering: the library never imports the layers above it.

The rule (DESIGN, "Data moves one way"): no module of the ``animalpose`` package imports ``flows`` (the
Prefect flows and the benchmarks, ``flows.benchmarks``) or ``animalpose.cli``, except the application
entry points themselves: ``animalpose.cli`` (the ``animalpose`` command, which runs flows for ``demo``,
``serve`` and ``bench``) and ``animalpose.__main__`` (``python -m animalpose``, which calls the CLI).

The flows (``flows/``, benchmarks included) sit between the two: they compose the library and never
import the CLI, which is the top layer.

Imports are read statically with :mod:`ast` from every ``.py`` file under ``animalpose/``, at any depth
(inside functions, ``if TYPE_CHECKING`` blocks, try/except), so a lazy import inside a function is caught
as well as a top-level one. Relative imports are resolved against the importing module's package.
"""

from __future__ import annotations

import ast
from pathlib import Path

from animalpose.paths import REPO_ROOT

LIBRARY = REPO_ROOT / "animalpose"
#: the application entry points, allowed to import the layers above the library
ENTRY_POINTS = ("animalpose.cli", "animalpose.__main__")
#: what the library must not import
ABOVE = ("flows", "animalpose.cli")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, relative ones resolved.

    ``from a import b`` yields both ``a`` and ``a.b`` (``b`` may be a submodule).
    """
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*"]
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def upward_imports(root: Path, above: tuple[str, ...] = ABOVE, entry_points: tuple[str, ...] = ENTRY_POINTS,
                   ) -> list[str]:
    """``file:line imports name`` for every import of a module in ``above`` by a module of the package at
    ``root`` that is not one of the ``entry_points``."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        if any(_within(module, entry) for entry in entry_points):
            continue
        for line, name in imported_modules(path.read_text(), module, path.name == "__init__.py"):
            if any(_within(name, layer) for layer in above):
                bad.append(f"{path.relative_to(root.parent)}:{line} imports {name}")
    return bad


def test_library_imports_neither_flows_nor_the_cli():
    files = list(LIBRARY.rglob("*.py"))
    assert len(files) > 50  # the walk really covers the library
    assert upward_imports(LIBRARY) == []


def test_flows_and_benchmarks_do_not_import_the_cli():
    assert list((REPO_ROOT / "flows" / "benchmarks").glob("*.py"))  # the benchmarks are walked too
    assert upward_imports(REPO_ROOT / "flows", above=("animalpose.cli",), entry_points=()) == []


def test_the_check_catches_lazy_relative_and_from_imports(tmp_path):
    """The checker on a toy package: each way of importing upward is reported, the entry points are not."""
    pkg = tmp_path / "animalpose"
    (pkg / "cli").mkdir(parents=True)
    (pkg / "engine").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "engine" / "__init__.py").write_text("")
    (pkg / "engine" / "ok.py").write_text("import numpy\nfrom animalpose.engine import train\nfrom . import ok\n")
    (pkg / "engine" / "lazy.py").write_text("def f():\n    import flows.ccssl\n")
    (pkg / "engine" / "rel.py").write_text("from ..cli import demo_cmd\n")
    (pkg / "engine" / "frm.py").write_text("from flows import presets\nfrom animalpose import cli\n")
    (pkg / "cli" / "__init__.py").write_text("from flows.benchmarks.cli import app\n")  # an entry point
    (pkg / "__main__.py").write_text("from animalpose.cli import main\n")
    assert upward_imports(pkg) == [
        "animalpose/engine/frm.py:1 imports flows",
        "animalpose/engine/frm.py:1 imports flows.presets",
        "animalpose/engine/frm.py:2 imports animalpose.cli",
        "animalpose/engine/lazy.py:2 imports flows.ccssl",
        "animalpose/engine/rel.py:1 imports animalpose.cli",
        "animalpose/engine/rel.py:1 imports animalpose.cli.demo_cmd",
    ]
