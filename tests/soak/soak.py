"""A soak of one state database under many wfhost processes, killed at
random: `run`s, a `serve` with clients, `resume --all`, `status`/`list`/
`events --follow` watchers, `cancel`s and `purge`s, for a given time, with
kill -9 of any of them every few seconds. Then every process is stopped,
`resume --all` finishes what was cut off, and:

- `wfhost check` finds the file clean;
- every result a client was told (`run`'s output, `serve`'s answer) is on
  record, succeeded, and exactly what it was told (and what the chain
  computes);
- every effect (a POST to a local counting service, made by an effectful
  step) happened at least once for each workflow that succeeded, and more
  than once only where the step's record shows a second attempt (a step
  killed while it ran runs again: at-least-once, never silently twice);
- no command reported the file damaged, and none panicked.

Usage: python3 tests/soak/soak.py WFHOST PLUGINS_DIR [--minutes M] [--seed S]
                                   [--durability MODE]

MODE is given to every process that runs workflows (`WFHOST_DURABILITY`):
`grouped` (the default), `strict`, `batched[:MS]`, or `mixed` — each
process one of the three at random, so that processes of every mode share
the file.

PLUGINS_DIR holds `math.wasm` and `testkit.wasm`. Not part of CI; its
first hour-long run is in SOAK.md. Exit 0 when nothing was found.
"""
import hashlib
import http.server
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

ARGS = sys.argv[1:]
WFHOST, PLUGINS = ARGS[0], ARGS[1]
OPTIONS = dict(zip(ARGS[2::2], ARGS[3::2]))
MINUTES = float(OPTIONS.get("--minutes", 60))
SEED = int(OPTIONS.get("--seed", 1))
DURABILITY = OPTIONS.get("--durability", "grouped")
MODES = ["grouped", "strict", "batched:20"] if DURABILITY == "mixed" else [DURABILITY]
MODE_RNG = random.Random(SEED)
KEY = "soak-key"
ADMIN = "soak-admin"

lock = threading.Lock()
findings = []
told = {}  # (tenant, id) -> result a client was told
started = Counter()  # kind -> processes started
kills = Counter()  # kind -> processes killed
live = {}  # pid -> (kind, Popen)
effects = Counter()  # effect key -> POSTs counted
stop = threading.Event()


def find(problem):
    with lock:
        findings.append(problem)
    print("FINDING:", problem, flush=True)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Counting(http.server.BaseHTTPRequestHandler):
    """Counts each POST by its body's `effect`."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            key = json.loads(body)["effect"]
        except (ValueError, KeyError, TypeError):
            key = "?"
        with lock:
            effects[key] += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_):
        pass


def sha256(path):
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


def spawn(kind, args, **kw):
    env = dict(os.environ, WFHOST_DURABILITY=MODE_RNG.choice(MODES))
    child = subprocess.Popen(
        [WFHOST, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw
    )
    with lock:
        started[kind] += 1
        live[child.pid] = (kind, child)
    return child


def finish(child, timeout=None):
    """Waits for `child`; its exit status and output. A command that says
    the file is damaged, or panics, is a finding."""
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
    with lock:
        live.pop(child.pid, None)
    if child.returncode not in (-9,) and ("damaged" in err or "panicked" in err):
        find(f"{' '.join(child.args[1:3])}: {err.strip()[-400:]}")
    return child.returncode, out, err


class Soak:
    def __init__(self, folder):
        self.folder = folder
        self.db = os.path.join(folder, "state.redb")
        self.rng = random.Random(SEED)
        self.math = os.path.join(PLUGINS, "math.wasm")
        self.testkit = os.path.join(PLUGINS, "testkit.wasm")
        self.counter = free_port()
        self.url = f"http://127.0.0.1:{self.counter}"
        self.serve_port = free_port()
        self.ids = []  # (tenant, id) of every workflow begun
        self.next = 0
        self.policy = os.path.join(folder, "tenants.toml")
        with open(self.policy, "w") as out:
            out.write(
                f'[admin]\nkey_sha256 = "{hashlib.sha256(ADMIN.encode()).hexdigest()}"\n'
                f'[tenants.served]\nkey_sha256 = "{hashlib.sha256(KEY.encode()).hexdigest()}"\n'
                "max_workflows = 1000\n[tenants.served.plugins]\n"
                f'math = {{ path = "{self.math}", sha256 = "{sha256(self.math)}" }}\n'
                f'testkit = {{ path = "{self.testkit}", sha256 = "{sha256(self.testkit)}", '
                f'grants = {{ http = ["{self.url}"] }} }}\n'
            )

    def new_id(self, prefix):
        with lock:
            self.next += 1
            return f"{prefix}-{self.next}"

    def workflow(self, wid):
        """A chain, and the result it computes: an effect, sums, sometimes a
        group and a sleep."""
        rng = self.rng
        a, b = rng.randrange(10**6), rng.randrange(10**6)
        steps = [
            {"task": "testkit.http_post", "args": [self.url, {"effect": wid}], "immutable": True},
            {"task": "math.add", "args": [a, b], "immutable": True},
        ]
        length = rng.choice([1, 5, 20, 100])
        steps += [{"task": "math.add", "args": [1]}] * length
        total = a + b + length
        if rng.random() < 0.2:
            steps.append({"sleep": "1s"})
        if rng.random() < 0.3:
            steps.append({"group": [{"task": "math.add", "args": [i]} for i in range(3)]})
            return steps, [total + i for i in range(3)]
        return steps, total

    def chain_file(self, steps, wid):
        path = os.path.join(self.folder, f"{wid}.json")
        plugins = {
            "math": self.math,
            "testkit": {"path": self.testkit, "grants": {"http": [self.url]}},
        }
        with open(path, "w") as out:
            json.dump({"plugins": plugins, "workflow": steps}, out)
        return path

    # The actors: each loops until the soak stops.

    def runner(self):
        while not stop.is_set():
            scratch = self.rng.random() < 0.2
            tenant = "scratch" if scratch else "cli"
            wid = self.new_id(tenant)
            steps, expected = self.workflow(wid)
            path = self.chain_file(steps, wid)
            with lock:
                self.ids.append((tenant, wid, expected))
            child = spawn("run", ["run", path, "--id", wid, "--tenant", tenant, "--db", self.db])
            code, out, _ = finish(child)
            os.remove(path)
            if code == 0 and not scratch:
                self.tell(tenant, wid, json.loads(out), expected, "run")

    def tell(self, tenant, wid, result, expected, who):
        if result != expected:
            find(f"{who} told {tenant}/{wid} {result}, the chain computes {expected}")
        with lock:
            told[(tenant, wid)] = result

    def server(self):
        while not stop.is_set():
            child = spawn(
                "serve",
                ["serve", "--tenants", self.policy, "--listen", f"127.0.0.1:{self.serve_port}",
                 "--db", self.db],
            )
            finish(child)
            time.sleep(0.2)

    def client(self):
        while not stop.is_set():
            wid = self.new_id("served")
            steps, expected = self.workflow(wid)
            body = json.dumps({"id": wid, "workflow": steps}).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.serve_port}/v1/workflows?wait=30s",
                data=body,
                headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
            )
            with lock:
                self.ids.append(("served", wid, expected))
            try:
                with urllib.request.urlopen(request, timeout=40) as answer:
                    report = json.loads(answer.read())
                if answer.status == 200 and report.get("status") == "succeeded":
                    self.tell("served", wid, report["result"], expected, "serve")
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                time.sleep(0.3)  # the service was killed, or is starting

    def resumer(self):
        while not stop.is_set():
            finish(spawn("resume", ["resume", "--all", "--db", self.db]))
            stop.wait(2)

    def watcher(self):
        while not stop.is_set():
            with lock:
                known = list(self.ids)
            if not known or not os.path.exists(self.db):
                stop.wait(0.5)
                continue
            tenant, wid, _ = self.rng.choice(known)
            stop.wait(0.1)
            what = self.rng.choice(["status", "list", "events"])
            if what == "status":
                finish(spawn("status", ["status", wid, "--tenant", tenant, "--json", "--db", self.db]))
            elif what == "list":
                finish(spawn("list", ["list", "--json", "--db", self.db]))
            else:
                finish(spawn("events", ["events", wid, "--tenant", tenant, "--follow", "--db", self.db]),
                       timeout=5)

    def canceller(self):
        while not stop.is_set():
            stop.wait(self.rng.uniform(2, 6))
            with lock:
                recent = [entry for entry in self.ids[-20:] if entry[0] != "served"]
            if recent:
                tenant, wid, _ = self.rng.choice(recent)
                finish(spawn("cancel", ["cancel", wid, "--tenant", tenant, "--db", self.db]))

    def purger(self):
        while not stop.is_set():
            stop.wait(self.rng.uniform(5, 15))
            finish(spawn("purge", ["purge", "--tenant", "scratch", "--older-than", "5s",
                                   "--db", self.db]))

    def killer(self):
        while not stop.is_set():
            stop.wait(self.rng.uniform(0.5, 3))
            with lock:
                victims = [(kind, child) for kind, child in live.values()
                           if kind in ("run", "serve", "resume", "cancel", "purge")]
            if victims:
                kind, child = self.rng.choice(victims)
                try:
                    os.kill(child.pid, signal.SIGKILL)
                    with lock:
                        kills[kind] += 1
                except ProcessLookupError:
                    pass

    def soak(self):
        threading.Thread(
            target=http.server.ThreadingHTTPServer(("127.0.0.1", self.counter), Counting).serve_forever,
            daemon=True,
        ).start()
        actors = [self.runner, self.runner, self.runner, self.server, self.client, self.client,
                  self.resumer, self.watcher, self.watcher, self.canceller, self.purger, self.killer]
        threads = [threading.Thread(target=actor, daemon=True) for actor in actors]
        began = time.time()
        for thread in threads:
            thread.start()
        while time.time() - began < MINUTES * 60:
            time.sleep(10)
            with lock:
                print(f"{(time.time() - began) / 60:5.1f} min: {sum(started.values())} processes, "
                      f"{sum(kills.values())} kills, {len(self.ids)} workflows, {len(told)} told, "
                      f"{len(findings)} findings", flush=True)
        stop.set()
        with lock:
            children = [child for _, child in live.values()]
        for child in children:
            try:
                child.kill()
            except ProcessLookupError:
                pass
        for thread in threads:
            thread.join(timeout=60)
        return time.time() - began

    def verify(self):
        for _ in range(20):
            code, _, err = finish(spawn("resume", ["resume", "--all", "--db", self.db]))
            listed = subprocess.run([WFHOST, "list", "--status", "cut_off", "--json", "--db", self.db],
                                    capture_output=True, text=True)
            if code in (0, 1) and json.loads(listed.stdout or "[]") == []:
                break
        check = subprocess.run([WFHOST, "check", "--db", self.db], capture_output=True, text=True)
        if check.returncode != 0:
            find(f"wfhost check exit {check.returncode}: {check.stdout[-2000:]}{check.stderr[-500:]}")
        print(check.stdout, end="")
        listed = subprocess.run([WFHOST, "list", "--json", "--db", self.db],
                                capture_output=True, text=True)
        rows = {(row["tenant"], row["id"]): row for row in json.loads(listed.stdout)}
        for (tenant, wid), result in sorted(told.items()):
            row = rows.get((tenant, wid))
            if row is None:
                find(f"{tenant}/{wid}, told {result}, is not on record")
            elif row["status"] != "succeeded" or row.get("result") != result:
                find(f"{tenant}/{wid} was told {result}; on record: {row['status']} "
                     f"{row.get('result')}")
        verified = 0
        by_id = {}
        for tenant, wid, expected in self.ids:
            row = rows.get((tenant, wid))
            if tenant == "scratch" or row is None or row["status"] != "succeeded":
                continue
            by_id[wid] = tenant
            verified += 1
            if row.get("result") != expected:
                find(f"{tenant}/{wid} succeeded with {row.get('result')}; it computes {expected}")
            if effects[wid] < 1:
                find(f"{tenant}/{wid} succeeded, and its effect never happened")
        for wid, count in effects.items():
            if count < 2 or wid not in by_id:
                continue
            shown = subprocess.run(
                [WFHOST, "status", wid, "--tenant", by_id[wid], "--json", "--all", "--db", self.db],
                capture_output=True, text=True,
            )
            attempts = next((step.get("attempts", 0)
                             for step in json.loads(shown.stdout).get("steps", [])
                             if step.get("task") == "testkit.http_post"), 0)
            if count > attempts:
                find(f"{by_id[wid]}/{wid}'s effect happened {count} times in {attempts} attempts")
        usage = subprocess.run([WFHOST, "usage", "--json", "--db", self.db],
                               capture_output=True, text=True)
        steps = sum(tenant["steps"] for tenant in json.loads(usage.stdout or "[]"))
        twice = {key: count for key, count in effects.items() if count > 1}
        return verified, steps, twice


def main():
    with tempfile.TemporaryDirectory(dir=os.environ.get("SOAK_DIR")) as folder:
        soak = Soak(folder)
        took = soak.soak()
        verified, steps, twice = soak.verify()
        size = os.path.getsize(soak.db) if os.path.exists(soak.db) else 0
        print(
            f"soak of {took / 60:.1f} min, seed {SEED}, durability {DURABILITY}: {sum(started.values())} processes started "
            f"({dict(started)}), {sum(kills.values())} killed ({dict(kills)}); "
            f"{len(soak.ids)} workflows begun, {len(told)} results told, {verified} succeeded and "
            f"verified exact, effects included "
            f"({steps} steps ran); {sum(effects.values())} effects, {len(twice)} of them twice "
            f"(each after a killed attempt); file {size / 1e6:.1f} MB; {len(findings)} findings"
        )
        for problem in findings:
            print("  -", problem)
        sys.exit(1 if findings else 0)


main()
