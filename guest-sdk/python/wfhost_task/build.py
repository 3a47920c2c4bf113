"""Builds a Python tasks module into a wfhost plugin component.

    python -m wfhost_task build tasks.py -o tasks.wasm
    wfhost build-py tasks.py -o tasks.wasm        (the same, through wfhost)

The module is imported first by this Python, to find its tasks and its
mistakes quickly; then componentize-py compiles it, with CPython, into a
component of the ``wfhost:task`` world. Imports happen at build time: a
module imported only inside a task is not in the component, so such
imports are refused here.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: The world the SDK builds: a plugin that also describes its tasks' types.
WORLD = "described-plugin"


class BuildError(Exception):
    """A module that cannot become a component, and why."""


def wit_dir() -> Path:
    """The WIT of the ``wfhost:task`` world, shipped with this package."""
    return Path(__file__).resolve().parent / "wit"


def resolve(module: str) -> tuple[str, Path]:
    """The module's import name and the directory it is imported from:
    ``tasks.py`` or ``path/to/tasks.py`` (a file), else a module name found
    from the current directory (``tasks``, ``proj.tasks``)."""
    if module.endswith(".py") or os.sep in module:
        path = Path(module).resolve()
        if not path.is_file():
            raise BuildError(f"{module}: no such file")
        return path.stem, path.parent
    if not all(part.isidentifier() for part in module.split(".")):
        raise BuildError(f"{module!r} is neither a .py file nor a module name")
    return module, Path.cwd()


def load(name: str, search: Path):
    """Imports the tasks module as the component will, and lists its tasks."""
    from . import runner

    sys.path.insert(0, str(search))
    try:
        module = importlib.import_module(name)
    except Exception as err:  # noqa: BLE001 - any failure to import is the user's to see
        raise BuildError(f"importing {name} failed: {type(err).__name__}: {err}") from err
    try:
        tasks = runner.tasks_by_local_name()
    except RuntimeError as err:
        raise BuildError(str(err)) from err
    if not tasks:
        raise BuildError(f"{name} defines no tasks (decorate functions with @app.task)")
    return module, tasks


def lazy_imports(module) -> list[str]:
    """The imports inside functions of ``module`` whose module is not
    loaded once ``module`` is: they would fail at run time."""
    source_file = getattr(module, "__file__", None)
    if not source_file or not source_file.endswith(".py"):
        return []
    tree = ast.parse(Path(source_file).read_text(encoding="utf-8"), source_file)
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for imported in names:
                if imported not in sys.modules:
                    found.append(
                        f"{Path(source_file).name}:{node.lineno}: {function.name}() imports "
                        f"{imported!r}, which the module does not import when it loads"
                    )
    return found


def componentize(name: str, search: Path, output: Path, paths: list[Path]) -> None:
    """Runs componentize-py on an entry module that imports ``name`` and
    exports the SDK's ``Tasks`` and ``Schemas``."""
    sdk_parent = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="wfhost-build-py-") as temp:
        entry = "wfhost_task_entry"
        Path(temp, f"{entry}.py").write_text(
            f"import wfhost_task.component\nimport {name}\n"
            "from wfhost_task.component import Schemas, Tasks\n",
            encoding="utf-8",
        )
        command = [
            sys.executable, "-c",
            "import sys, componentize_py; sys.argv[0] = 'componentize-py'; "
            "sys.exit(componentize_py.script())",
            "-d", str(wit_dir()), "-w", WORLD, "componentize", entry,
            "-p", temp, "-p", str(search), "-p", str(sdk_parent),
        ]
        for path in paths:
            command += ["-p", str(path)]
        command += ["-o", str(output)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            message = result.stderr.strip() or result.stdout.strip()
            if "No module named 'componentize_py'" in message or "No module named componentize_py" in message:
                message = (
                    "componentize-py is not installed for this Python: "
                    "pip install componentize-py==0.25.1"
                )
            raise BuildError(f"componentize-py failed:\n{message}")


def build(module: str, output: Path | None, paths: list[Path]) -> Path:
    """Builds ``module`` into ``output`` (default: ``<name>.wasm`` here)."""
    name, search = resolve(module)
    loaded, tasks = load(name, search)
    lazy = lazy_imports(loaded)
    if lazy:
        raise BuildError(
            "a component holds only the modules imported when it is built, so these "
            "imports would fail when the task runs; move them to the top of the module:\n  "
            + "\n  ".join(lazy)
        )
    output = (output or Path(f"{name.rsplit('.', 1)[-1]}.wasm")).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    componentize(name, search, output, paths)
    print(f"built {output} with tasks: {', '.join(sorted(tasks))}", file=sys.stderr)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="wfhost-build-py",
        description="Build a Python tasks module into a wfhost plugin component.",
    )
    parser.add_argument("module", help="the tasks module: a .py file or a module name")
    parser.add_argument("-o", "--output", type=Path, help="the component to write [default: NAME.wasm]")
    parser.add_argument(
        "-p", "--python-path", type=Path, action="append", default=[],
        help="another directory of modules the tasks import (repeatable)",
    )
    options = parser.parse_args(argv)
    try:
        build(options.module, options.output, options.python_path)
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
