"""The Celery peer's scenarios, sent by Celery's own client to whatever
worker serves the `celery` queue of a Redis: Celery's worker, or wfhost
workers (whose plugin `tasks` serves `tasks.add` and `tasks.xsum`).

    python3 celery_fleet.py --broker URL --backend URL --scenario chain --rounds 3

Scenarios (../shared/peers/celery/bench.py): `chain` (`add.s(0, 1) | add.s(1)
| …`, 1000 steps), `chains` (100 ten-step chains at once), `chord` (1000
`add` members and `xsum`), `latency` (one `add.delay(1, 1).get()`, the
median of 50 per round). Prints one JSON line {"seconds": [...]}, a figure
per round, each checked against the right answer, and {"send": [...]}, how
long the client took only to send (the floor under any worker's figure).
"""

import argparse
import json
import statistics
import sys
import time

from celery import Celery, chain, chord, signature


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--scenario", choices=["chain", "chains", "chord", "latency"], required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000)
    options = parser.parse_args()
    app = Celery("bench", broker=options.broker, backend=options.backend)
    app.conf.broker_connection_retry_on_startup = True

    def add(*args):
        return signature("tasks.add", args=args, app=app)

    xsum = signature("tasks.xsum", app=app)
    n = options.steps

    send = []

    def sent(started):
        send.append(time.perf_counter() - started)

    def run_chain(started):
        result = chain(add(0, 1), *[add(1) for _ in range(n - 1)]).apply_async()
        sent(started)
        return result.get(timeout=600), n

    def run_chains(started):
        results = [chain(add(0, 1), *[add(1) for _ in range(9)]).apply_async() for _ in range(n // 10)]
        sent(started)
        return [r.get(timeout=600) for r in results], [10] * (n // 10)

    def run_chord(started):
        result = chord([add(i, 1) for i in range(n)])(xsum)
        sent(started)
        return result.get(timeout=600), sum(i + 1 for i in range(n))

    def run_latency():
        samples, sends = [], []
        for _ in range(50):
            started = time.perf_counter()
            result = add(1, 1).apply_async()
            sends.append(time.perf_counter() - started)
            value = result.get(timeout=60)
            samples.append(time.perf_counter() - started)
            if value != 2:
                sys.exit(f"add(1, 1) gave {value!r}")
        send.append(statistics.median(sends))
        return statistics.median(samples)

    add(0, 0).apply_async().get(timeout=60)  # the workers are up and warm
    seconds = []
    for _ in range(options.rounds):
        if options.scenario == "latency":
            seconds.append(run_latency())
            continue
        shape = {"chain": run_chain, "chains": run_chains, "chord": run_chord}[options.scenario]
        started = time.perf_counter()
        result, expected = shape(started)
        seconds.append(time.perf_counter() - started)
        if result != expected:
            sys.exit(f"{options.scenario} gave {str(result)[:200]}, not {str(expected)[:200]}")
    print(json.dumps({"seconds": seconds, "send": send}))


if __name__ == "__main__":
    main()
