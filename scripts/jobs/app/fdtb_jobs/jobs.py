"""Jobs that account for themselves in the queue's Redis: a start (with the release of the worker
process), signs of life while running, and an end naming the release whose code the job imported
at its end (finish.py, first imported there: a job whose worker's files changed under it shows it)."""
import importlib
import json
import os
import time

from rq import get_current_job

from fdtb_jobs import release


def record(connection, run, event, **fields):
    job = get_current_job()
    entry = {"job": job.id, "event": event, "t": time.time(), "queue": job.origin,
             "worker": os.environ.get("FDTB_WORKER", "?"), **fields}
    connection.rpush(f"fdtb:{run}:events", json.dumps(entry))


def work(run, seconds=0.1):
    connection = get_current_job().connection
    record(connection, run, "start", release=release.RELEASE, version=release.VERSION)
    deadline = time.time() + seconds
    while (left := deadline - time.time()) > 0:
        time.sleep(min(0.5, left))
        connection.hset(f"fdtb:{run}:life", get_current_job().id, time.time())
    finish = importlib.import_module("fdtb_jobs.finish")
    record(connection, run, "end", release=finish.RELEASE)
    return finish.RELEASE


def tick(scheduler):
    """What the scheduler enqueues: a quick job."""
    return scheduler
