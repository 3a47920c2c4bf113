"""Celery's own worker on the benches' canvases, for the benches that put
wfhost beside it in one run.

    python3 celery_chain.py --shape chain --steps 1000 --rounds 3

Shapes: `chain` (`add.s(0, 1) | add.s(1) | …`, N steps), `chains` (N/10
ten-step chains at once) and `chord` (N-1 `add` members and `xsum`).

Uses the peer benchmark's app (../shared/peers/celery/tasks.py, Celery 5.7
defaults): starts a private redis-server on a free port of 127.0.0.1 and a
prefork worker of 2 processes, times the canvas end to end once per
round, prints one JSON line
{"celery": VERSION, "seconds": [...]} and stops both by PID.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEER = Path(__file__).resolve().parents[4] / "shared" / "peers" / "celery"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(process, grace=10):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=["chain", "chains", "chord"], default="chain")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    port = free_port()
    os.environ["CELERY_BENCH_REDIS_PORT"] = str(port)
    sys.path.insert(0, str(PEER))
    import celery
    from celery import chain, chord

    import tasks

    scratch = tempfile.mkdtemp(prefix="wfhost-celery-peer-")
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", scratch, "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, start_new_session=True,
    )
    worker = None
    try:
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.time() > deadline:
                    sys.exit("redis-server did not start")
                time.sleep(0.05)
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--concurrency=2",
             "--pool=prefork", "-l", "warning", "--without-mingle", "--without-gossip",
             "--without-heartbeat"],
            cwd=PEER, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        tasks.noop.delay(0).get(timeout=60)  # the worker is up and warm
        seconds = []
        n = options.steps

        def run_chain():
            return chain(tasks.add.s(0, 1), *[tasks.add.s(1)] * (n - 1)).apply_async().get(timeout=600), n

        def run_chains():
            sent = [chain(tasks.add.s(0, 1), *[tasks.add.s(1)] * 9).apply_async() for _ in range(n // 10)]
            return [r.get(timeout=600) for r in sent], [10] * (n // 10)

        def run_chord():
            header = [tasks.add.s(i, 1) for i in range(n - 1)]
            return chord(header)(tasks.xsum.s()).get(timeout=600), sum(i + 1 for i in range(n - 1))

        shape = {"chain": run_chain, "chains": run_chains, "chord": run_chord}[options.shape]
        for _ in range(options.rounds):
            started = time.perf_counter()
            result, expected = shape()
            seconds.append(time.perf_counter() - started)
            if result != expected:
                sys.exit(f"Celery's {options.shape} gave {result!r}, not {expected!r}")
        print(json.dumps({"celery": celery.__version__, "seconds": seconds}))
    finally:
        if worker is not None:
            stop(worker)
        stop(redis)


if __name__ == "__main__":
    main()
