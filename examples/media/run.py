"""Runs the media example end to end, with its own service:

    python3 examples/media/run.py [--images N] [--concurrency N]

Starts images.py on a free port of 127.0.0.1, runs the pipeline through
`wfhost run` — list the images, then a chord: download, decode and resize
each in the guest and upload its thumbnail by HTTP PUT, side by side; then
the totals — prints the totals and the thumbnails the service received,
and stops it. The wfhost binary is $WFHOST, or `cargo run --release -p
wfhost --` from the repository; the media plugin is taken from
$WFHOST_PLUGIN_DIR, or where the README's build puts it.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from example_support import chain_document, start_service, wfhost_command  # noqa: E402


def chain_file(port, workdir):
    chain = chain_document(HERE, port)
    path = Path(workdir) / "chain.json"
    path.write_text(json.dumps(chain, indent=2))
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=2)
    arguments = parser.parse_args()
    service, port = start_service(HERE / "images.py", "--images", arguments.images)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            chain = chain_file(port, workdir)
            started = time.monotonic()
            run = subprocess.run(
                wfhost_command() + ["run", "--db", str(Path(workdir) / "state.redb"),
                                    "--concurrency", str(arguments.concurrency), str(chain)],
                capture_output=True, text=True,
            )
            seconds = time.monotonic() - started
        if run.returncode != 0:
            sys.exit(f"the pipeline failed: {run.stderr.strip()}")
        print(f"totals: {run.stdout.strip()}")
        print(f"seconds: {seconds:.3f}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/thumbs") as answer:
            print("thumbs:", json.dumps(json.load(answer)))
    finally:
        service.kill()
        service.wait()


if __name__ == "__main__":
    main()
