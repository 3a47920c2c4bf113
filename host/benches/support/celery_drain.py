"""The drain benchmark's client side (host/benches/drain.rs): Celery's own
client queues a scenario while no worker consumes it, and the span of the
results' own `date_done` stamps says how fast the workers drained it.

    python3 celery_drain.py queue --broker URL --backend URL --scenario tasks --ids FILE
    python3 celery_drain.py warm  --broker URL --backend URL
    python3 celery_drain.py wait  --broker URL --backend URL --ids FILE [--release]

`queue` sends to the queue `staging`, which no worker consumes; `wait
--release` renames that list to `celery` once the workers are up and warm
and this client is itself, so that they start on the whole backlog at once
and no start of Python competes with them for the machine. Scenarios: `tasks` (2,000
independent `tasks.add`), `chain` (one 1,000-step chain of `tasks.add`),
`chord` (1,000 `tasks.add` members and `tasks.xsum`). The ids written are
those whose results end the scenario, with the answer each must hold.

`warm` runs one `tasks.add(0, 0)` on the workers (so that they are up, and
what they load is loaded) and removes its result. `wait` waits for the ids'
results, checks them, and prints one JSON line: the span from the first
`date_done` to the last among every result stored, and how many there are.
"""

import argparse
import datetime
import json
import sys
import time

import redis
from celery import Celery, chain, chord, signature


def app_for(options, default_queue="celery"):
    app = Celery("drain", broker=options.broker, backend=options.backend)
    app.conf.broker_connection_retry_on_startup = True
    app.conf.task_default_queue = default_queue
    return app


def queue(options):
    app = app_for(options, default_queue="staging")

    def add(*args):
        return signature("tasks.add", args=args, app=app)

    n = options.n
    if options.scenario == "tasks":
        ends = [(add(i, i).apply_async().id, 2 * i) for i in range(2 * n)]
    elif options.scenario == "chain":
        result = chain(add(0, 1), *[add(1) for _ in range(n - 1)]).apply_async()
        ends = [(result.id, n)]
    else:
        result = chord([add(i, 1) for i in range(n)])(signature("tasks.xsum", app=app))
        ends = [(result.id, sum(i + 1 for i in range(n)))]
    with open(options.ids, "w") as out:
        json.dump(ends, out)


def warm(options):
    app = app_for(options)
    result = signature("tasks.add", args=(0, 0), app=app).apply_async()
    if result.get(timeout=120) != 0:
        sys.exit("tasks.add(0, 0) is not 0")
    result.forget()


def stamp(text):
    return datetime.datetime.fromisoformat(text).timestamp()


def wait(options):
    results = redis.Redis.from_url(options.backend)
    with open(options.ids) as given:
        ends = json.load(given)
    keys = [f"celery-task-meta-{task_id}" for task_id, _ in ends]
    if options.release:
        # The backlog is handed to the workers only now that this client
        # is up: its start (Python, Celery's imports) would otherwise take
        # a core from the workers while they drain.
        redis.Redis.from_url(options.broker).rename("staging", "celery")
    deadline = time.time() + 600
    while results.exists(*keys) < len(keys):
        if time.time() > deadline:
            sys.exit("the workers did not drain the backlog in 600 s")
        time.sleep(0.005)
    for (task_id, expected), meta in zip(ends, results.mget(keys)):
        meta = json.loads(meta)
        if meta["status"] != "SUCCESS" or meta["result"] != expected:
            sys.exit(f"{task_id}: {meta['status']} {str(meta['result'])[:100]}, not {expected}")
    stored = [key for key in results.scan_iter("celery-task-meta-*", count=1000)]
    stamps = [stamp(json.loads(meta)["date_done"]) for meta in results.mget(stored)]
    print(json.dumps({"span": max(stamps) - min(stamps), "results": len(stamps)}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["queue", "warm", "wait"])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--scenario", choices=["tasks", "chain", "chord"])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--ids")
    parser.add_argument("--release", action="store_true")
    options = parser.parse_args()
    {"queue": queue, "warm": warm, "wait": wait}[options.phase](options)


if __name__ == "__main__":
    main()
