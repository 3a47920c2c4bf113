"""Whole-process `wfhost run` of builds side by side: a one-step chain and
a 1,000-step chain of `math.add`, each run on a fresh database, rounds
interleaved, medians and quartiles printed, each build against the first.

Usage: python3 host/benches/before_after.py [--rounds N] BEFORE AFTER...

Each folder holds a release `wfhost` and `plugins/math.wasm` built from a
commit to compare (BENCHMARKS.md says how they were made for each figure).
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ARGS = sys.argv[1:]
ROUNDS = 10
if ARGS[:1] == ["--rounds"]:
    ROUNDS, ARGS = int(ARGS[1]), ARGS[2:]
BUILDS = {os.path.basename(os.path.normpath(folder)): folder for folder in ARGS}
RUNS = 20
LENGTHS = (1, 1000)


def chain_file(folder, math, steps):
    workflow = [{"task": "math.add", "args": [0, 1]}]
    workflow += [{"task": "math.add", "args": [1]}] * (steps - 1)
    path = os.path.join(folder, f"chain{steps}.json")
    with open(path, "w") as file:
        json.dump({"plugins": {"math": math}, "workflow": workflow}, file)
    return path


def main():
    times = {(build, steps): [] for build in BUILDS for steps in LENGTHS}
    with tempfile.TemporaryDirectory() as scratch:
        files = {}
        for build, folder in BUILDS.items():
            own = os.path.join(scratch, build)
            os.makedirs(own)
            math = os.path.join(folder, "plugins", "math.wasm")
            for steps in LENGTHS:
                files[build, steps] = chain_file(own, math, steps)
            # The first run compiles the plugin into the build's own cache.
            env = {**os.environ, "WFHOST_CACHE_DIR": os.path.join(own, "cache"),
                   "WFHOST_DB": os.path.join(own, "warm.redb")}
            subprocess.run([os.path.join(folder, "wfhost"), "run", files[build, 1]],
                           env=env, check=True, capture_output=True)
        run = 0
        for _ in range(ROUNDS):
            for build, folder in BUILDS.items():
                for steps in LENGTHS:
                    for _ in range(RUNS if steps == 1 else RUNS // 2):
                        run += 1
                        db = os.path.join(scratch, build, f"run{run}.redb")
                        env = {**os.environ, "WFHOST_DB": db,
                               "WFHOST_CACHE_DIR": os.path.join(scratch, build, "cache")}
                        started = time.perf_counter()
                        out = subprocess.run([os.path.join(folder, "wfhost"), "run",
                                              files[build, steps]], env=env, capture_output=True)
                        times[build, steps].append(time.perf_counter() - started)
                        assert out.returncode == 0 and out.stdout.strip() == str(steps).encode(), out
                        os.remove(db)
    first = next(iter(BUILDS))
    for steps in LENGTHS:
        print(f"{steps}-step chain, whole process, fresh database (ms: median [quartiles]):")
        base = statistics.median(times[first, steps])
        for build in BUILDS:
            median = statistics.median(times[build, steps])
            quartiles = [round(q * 1000, 2) for q in statistics.quantiles(times[build, steps], n=4)]
            print(f"  {build:<20} {median * 1000:7.2f} {quartiles}  {median / base:.3f}x {first}")

if __name__ == "__main__":
    main()
