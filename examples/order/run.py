"""Runs the order example end to end, with its own services:

    python3 examples/order/run.py

Starts services.py on a free port of 127.0.0.1, runs two orders through
`wfhost run` — one that is fulfilled, one whose item is out of stock, so
its charge is refunded by the `on_error` compensation — prints what the
services recorded, and stops them. The wfhost binary is $WFHOST, or
`cargo run --release -p wfhost --` from the repository; the shop plugin
is taken from $WFHOST_PLUGIN_DIR, or where the README's build puts it.
"""

import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from example_support import chain_document, start_service, wfhost_command  # noqa: E402


def chain_for(order, port, workdir):
    """The example's chain file for `order`, with the services' port."""
    chain = chain_document(HERE, port)
    chain["id"] = f"order-{order['id']}"
    chain["workflow"][0]["args"] = [order]
    path = Path(workdir) / f"order-{order['id']}.json"
    path.write_text(json.dumps(chain, indent=2))
    return path


def main():
    services, port = start_service(HERE / "services.py")
    try:
        orders = [
            {"id": "1001", "customer": "ada@example.com", "cents": 4200,
             "items": [{"sku": "widget", "quantity": 2}, {"sku": "gadget", "quantity": 1}]},
            {"id": "1002", "customer": "bob@example.com", "cents": 999,
             "items": [{"sku": "gizmo", "quantity": 1}]},
        ]
        with tempfile.TemporaryDirectory() as workdir:
            db = Path(workdir) / "state.redb"
            for order in orders:
                chain = chain_for(order, port, workdir)
                run = subprocess.run(
                    wfhost_command() + ["run", "--db", str(db), str(chain)],
                    capture_output=True, text=True,
                )
                outcome = "fulfilled" if run.returncode == 0 else "failed"
                print(f"order {order['id']}: {outcome}: {run.stdout.strip() or run.stderr.strip().splitlines()[-1]}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/state") as answer:
            state = json.load(answer)
        print("charges:", json.dumps(state["charges"]))
        print("reservations:", json.dumps(state["reservations"]))
        print("notifications:", json.dumps(state["notifications"]))
    finally:
        services.kill()
        services.wait()


if __name__ == "__main__":
    main()
