"""The tasks of the `@NAME@` plugin, written as for Celery with the
wfhost_task SDK: `wfhost build-py @NAME@.py` makes @NAME@.wasm, which
chain.json names."""

from wfhost_task import Celery

app = Celery("@NAME@")


@app.task
def greet(name: str) -> str:
    """Says hello to `name`."""
    return f"Hello, {name}!"


@app.task
def measure(text: str) -> dict:
    """Measures a text; an empty one fails the step."""
    if not text:
        raise ValueError("nothing to measure")
    return {"text": text, "chars": len(text)}
