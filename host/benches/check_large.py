"""`wfhost check` on a large state file: one workflow of STEPS steps of
`testkit.echo`, each passing on a 10,000-character string (every step's
record holds it twice, as argument and result), so that the file grows to
about 1 GB; then `wfhost check` in rounds, the median and the spread
printed, with the file's size and the check's peak RSS.

Usage: python3 host/benches/check_large.py WFHOST TESTKIT_WASM [--steps N] [--rounds N]

WFHOST is a release build; TESTKIT_WASM the `testkit` plugin (both as
`.ci/run` builds them: BENCHMARKS.md, "wfhost check on a large file").
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

ARGS = sys.argv[1:]
WFHOST, TESTKIT = ARGS[0], ARGS[1]
OPTIONS = dict(zip(ARGS[2::2], ARGS[3::2]))
STEPS = int(OPTIONS.get("--steps", 27500))
ROUNDS = int(OPTIONS.get("--rounds", 5))


def main():
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as folder:
        chain = os.path.join(folder, "chain.json")
        db = os.path.join(folder, "state.redb")
        workflow = [{"task": "t.echo", "args": ["x" * 10000]}]
        workflow += [{"task": "t.echo"}] * (STEPS - 1)
        with open(chain, "w") as out:
            json.dump({"plugins": {"t": TESTKIT}, "workflow": workflow}, out)
        subprocess.run(
            [WFHOST, "run", chain, "--db", db, "--id", "large"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        size = os.path.getsize(db)
        seconds, peaks = [], []
        for _ in range(ROUNDS):
            timed = subprocess.run(
                ["/usr/bin/time", "-f", "%e %M", WFHOST, "check", "--db", db],
                capture_output=True,
                text=True,
            )
            assert timed.returncode == 0, timed.stdout + timed.stderr
            wall, peak = timed.stderr.strip().splitlines()[-1].split()
            seconds.append(float(wall))
            peaks.append(int(peak))
            entries = re.search(r"(\d+) journal entries", timed.stdout).group(1)
        print(
            f"{size / 1e9:.2f} GB, {STEPS} steps, {entries} journal entries: "
            f"check {statistics.median(seconds):.2f} s median "
            f"({min(seconds):.2f}-{max(seconds):.2f} over {ROUNDS} rounds), "
            f"peak RSS {statistics.median(peaks) / 1024:.0f} MB"
        )


main()
