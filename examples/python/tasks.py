"""A survey of sensors: a Celery tasks module, run by wfhost.

Its only change from Celery is the import line: with
``from celery import Celery, chord, group`` it runs on a Celery worker as it
is. Its canvas mixes in a Rust task (``math.xsum``) by name, as a Celery
canvas names tasks of other workers.
"""

import logging
import statistics

from wfhost_task import Celery, chord, group, signature

app = Celery("tasks", broker="redis://127.0.0.1:6379/0")
logger = logging.getLogger(__name__)


class GatewayBusy(Exception):
    """The sensor gateway asks to be called again later."""


@app.task(bind=True, autoretry_for=(GatewayBusy,), retry_kwargs={"countdown": 0.05}, max_retries=3)
def read(self, sensor: str, samples: int = 6) -> list:
    """Reads a sensor's samples; the gateway is busy on the first try.

    Autoretried, as Celery does, when the gateway is busy.
    """
    if self.request.retries == 0:
        raise GatewayBusy(f"gateway busy for {sensor}")
    base = sum(map(ord, sensor)) % 17
    readings = [base + (i * 7) % 5 for i in range(samples)]
    logger.info("%s: %d samples on attempt %d", sensor, len(readings), self.request.retries + 1)
    return readings


@app.task(bind=True)
def survey(self, sensors: list) -> None:
    """Reads every sensor side by side and summarizes their totals.

    Replaces itself with a chord: for each sensor, its readings summed by
    the Rust task ``math.xsum``; then ``summarize`` over the totals.
    """
    if not sensors:
        raise ValueError("no sensors to survey")
    per_sensor = [read.si(sensor) | signature("math.xsum") for sensor in sensors]
    return self.replace(chord(group(per_sensor), summarize.s(sensors)))


@app.task
def summarize(totals: list, sensors: list) -> dict:
    """The mean, spread and busiest sensor of the totals."""
    busiest = max(range(len(totals)), key=totals.__getitem__)
    return {
        "sensors": len(totals),
        "mean": round(statistics.mean(totals), 2),
        "stdev": round(statistics.pstdev(totals), 2),
        "busiest": sensors[busiest],
        "totals": dict(zip(sensors, totals)),
    }


@app.task
def report(summary: dict) -> str:
    """One line about a survey."""
    return (
        f"{summary['sensors']} sensors, mean total {summary['mean']} "
        f"(stdev {summary['stdev']}), busiest {summary['busiest']}"
    )
