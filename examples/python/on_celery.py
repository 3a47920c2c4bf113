"""Runs this example's workflow on Celery itself, to compare:

    python3 examples/python/on_celery.py

Loads tasks.py with its one wfhost line put back to Celery's
(`from celery import …`), runs chain.json's workflow with Celery's own
canvas in eager mode (in this process, no broker), and prints the result as
one JSON line — what `wfhost run examples/python/chain.json` prints. The
Rust task the canvas names, `math.xsum`, is stood in for by a Python task
that does the same (sums a list). Needs `pip install celery==5.7.0`.
"""

import json
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
SDK_IMPORT = "from wfhost_task import "


def load_with_celery(path):
    source = path.read_text()
    if source.count(SDK_IMPORT) != 1:
        sys.exit(f"{path}: expected one `{SDK_IMPORT}…` line")
    module = types.ModuleType(path.stem)
    module.__file__ = str(path)
    sys.modules[path.stem] = module
    exec(compile(source.replace(SDK_IMPORT, "from celery import "), str(path), "exec"), module.__dict__)
    return module


def main():
    from celery import chain

    tasks = load_with_celery(HERE / "tasks.py")
    app = tasks.app
    app.conf.task_always_eager = True

    @app.task(name="math.xsum")
    def xsum(numbers):
        return sum(numbers)

    workflow = json.loads((HERE / "chain.json").read_text())["workflow"]
    steps = [app.signature(step["task"], args=step.get("args", [])) for step in workflow]
    result = chain(*steps).apply()
    print(json.dumps(result.get()))


if __name__ == "__main__":
    main()
