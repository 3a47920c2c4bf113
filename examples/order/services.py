"""The order example's local services, one small HTTP server on 127.0.0.1:
payments, inventory and notifications, kept in memory.

    python3 services.py [--port N] [--charge-delay-ms MS]

Prints `listening on PORT` once it accepts connections (port 0, the default,
picks a free one).

  POST /payments/charge   {order_id, customer, cents}   needs an Idempotency-Key;
                          the same key gets the same charge back, never a new one
  POST /payments/refund   {order_id}    refunds the order's charges (once)
  POST /inventory/reserve {order_id, items: [{sku, quantity}]}
                          409 {"error": "out of stock: SKU"} when one is short
  POST /notify/send       {to, message}
  GET  /state             everything above, as JSON
"""

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {
    "charges": [],        # {charge_id, key, order_id, cents, refunded}
    "charge_requests": 0,  # every charge request, replays included
    "reservations": {},   # order_id -> items
    "stock": {"widget": 100, "gadget": 100, "gizmo": 0},
    "notifications": [],
}
OPTIONS = argparse.Namespace(charge_delay_ms=0)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, document):
        data = json.dumps(document).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The caller went away (a host killed mid-request); what it
            # asked for is done, and a retry with its key gets the same.
            pass

    def do_GET(self):
        if self.path == "/state":
            with LOCK:
                self.reply(200, STATE)
        else:
            self.reply(404, {"error": f"no route {self.path}"})

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self.reply(400, {"error": "the body is not JSON"})
        key = self.headers.get("idempotency-key")
        routes = {
            "/payments/charge": self.charge,
            "/payments/refund": self.refund,
            "/inventory/reserve": self.reserve,
            "/notify/send": self.notify,
        }
        route = routes.get(self.path)
        if route is None:
            return self.reply(404, {"error": f"no route {self.path}"})
        status, document = route(body, key)
        self.reply(status, document)

    def charge(self, body, key):
        if not key:
            return 400, {"error": "a charge needs an Idempotency-Key"}
        with LOCK:
            STATE["charge_requests"] += 1
            for charge in STATE["charges"]:
                if charge["key"] == key:
                    return 200, dict(charge, replayed=True)
            charge = {
                "charge_id": f"ch_{len(STATE['charges']) + 1}",
                "key": key,
                "order_id": body["order_id"],
                "cents": body["cents"],
                "refunded": False,
            }
            STATE["charges"].append(charge)
        # The card network is slow: the charge is taken before the answer.
        time.sleep(OPTIONS.charge_delay_ms / 1000)
        return 200, charge

    def refund(self, body, key):
        with LOCK:
            refunded = []
            for charge in STATE["charges"]:
                if charge["order_id"] == body["order_id"] and not charge["refunded"]:
                    charge["refunded"] = True
                    refunded.append(charge["charge_id"])
        return 200, {"refunded": refunded}

    def reserve(self, body, key):
        order_id = body["order_id"]
        with LOCK:
            if order_id in STATE["reservations"]:
                return 200, {"reserved": STATE["reservations"][order_id]}
            stock = STATE["stock"]
            for item in body["items"]:
                if stock.get(item["sku"], 0) < item["quantity"]:
                    return 409, {"error": f"out of stock: {item['sku']}"}
            for item in body["items"]:
                stock[item["sku"]] -= item["quantity"]
            STATE["reservations"][order_id] = body["items"]
        return 200, {"reserved": body["items"]}

    def notify(self, body, key):
        with LOCK:
            STATE["notifications"].append({"key": key, "to": body["to"], "message": body["message"]})
        return 200, {"sent": True}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--charge-delay-ms", type=int, default=0)
    arguments = parser.parse_args()
    OPTIONS.charge_delay_ms = arguments.charge_delay_ms
    server = ThreadingHTTPServer(("127.0.0.1", arguments.port), Handler)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
