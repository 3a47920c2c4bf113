"""What every example's run.py needs: its service on a free port, its chain
file pointed at that port and at the built plugin, and the wfhost command.

The wfhost binary is $WFHOST, or `cargo run --release -p wfhost --` from
the repository; plugins are taken from $WFHOST_PLUGIN_DIR, or from where
the README's build puts them (the path in the chain file).
"""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The port the examples' chain files name; replaced by the service's own.
PLACEHOLDER = "127.0.0.1:8000"


def wfhost_command():
    if os.environ.get("WFHOST"):
        return shlex.split(os.environ["WFHOST"])
    manifest = str(ROOT / "Cargo.toml")
    return ["cargo", "run", "--quiet", "--release", "--manifest-path", manifest, "-p", "wfhost", "--"]


def start_service(script, *args):
    """Starts `python3 script args…` and returns it with the port it prints."""
    service = subprocess.Popen([sys.executable, str(script), *map(str, args)], stdout=subprocess.PIPE, text=True)
    line = service.stdout.readline()
    if not line.startswith("listening on "):
        service.kill()
        sys.exit(f"{script} did not start: {line!r}")
    return service, int(line.split()[-1])


def chain_document(example_dir, port):
    """The example's chain.json, with the service's port and the plugins'
    paths made absolute."""
    text = (Path(example_dir) / "chain.json").read_text().replace(PLACEHOLDER, f"127.0.0.1:{port}")
    chain = json.loads(text)
    for name, plugin in chain["plugins"].items():
        if os.environ.get("WFHOST_PLUGIN_DIR"):
            file = Path(plugin["path"]).name
            plugin["path"] = str(Path(os.environ["WFHOST_PLUGIN_DIR"]) / file)
        else:
            plugin["path"] = str((Path(example_dir) / plugin["path"]).resolve())
    return chain
