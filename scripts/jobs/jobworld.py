#!/usr/bin/env python3
"""Load driver and accountant for the testbed's job world (real RQ workers on a real Redis).

Run with a Python that has rq and redis (the testbed's job virtualenv, JOBS_PYTHON in testbed.sh):

  jobworld.py drive   --redis URL --run RUN [--rate N] [--queues short,default] [--seconds S]
                      [--long SECONDS] [--duration S]
      Enqueues `fdtb_jobs.jobs.work` jobs continuously, RATE per second on each queue (each takes
      S seconds), plus one job of --long SECONDS on `long` first; until --duration, SIGTERM/SIGINT,
      or the key fdtb:RUN:stop. Every job is recorded in fdtb:RUN:jobs.
  jobworld.py account --redis URL --run RUN [--wait S]
      Waits up to --wait seconds for every job of RUN to end, then prints one JSON report: each
      job finished exactly once, none failed, none left in RQ's started/failed/canceled registries
      (abandoned jobs land in failed), none interrupted (started, never ended), which release ran
      each job (at its start and at its end), per queue the longest time no job started while one
      waited, and the schedulers' tick intervals (two schedulers at once overlap).
"""
import argparse
import json
import signal
import sys
import time

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.registry import CanceledJobRegistry, FailedJobRegistry, StartedJobRegistry


def drive(args):
    connection = Redis.from_url(args.redis)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    # A parent may start us with signals blocked (Foundation's Process on Linux does).
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    queues = {name: Queue(name, connection=connection) for name in args.queues.split(",") + ["long"]}
    count = 0

    def enqueue(queue, seconds):
        nonlocal count
        count += 1
        job_id = f"{args.run}-{count:06d}"
        connection.hset(f"fdtb:{args.run}:jobs", job_id,
                        json.dumps({"queue": queue, "enqueued": time.time(), "seconds": seconds}))
        queues[queue].enqueue("fdtb_jobs.jobs.work", args.run, seconds, job_id=job_id,
                              job_timeout=int(seconds) + 600, result_ttl=86400, failure_ttl=86400)

    if args.long:
        enqueue("long", args.long)
    print(f"driving {args.run}", flush=True)
    start = time.time()
    interval = 1.0 / args.rate
    tick = 0
    while not stopping and time.time() - start < args.duration and not connection.exists(f"fdtb:{args.run}:stop"):
        for name in args.queues.split(","):
            enqueue(name, args.seconds)
        tick += 1
        # Paced from the start, so a slow enqueue does not slow the rate.
        time.sleep(max(0.0, start + tick * interval - time.time()))
    print(f"enqueued {count}", flush=True)


def account(args):
    connection = Redis.from_url(args.redis)
    jobs = {key.decode(): json.loads(value) for key, value in connection.hgetall(f"fdtb:{args.run}:jobs").items()}
    deadline = time.time() + args.wait
    while True:
        events = [json.loads(e) for e in connection.lrange(f"fdtb:{args.run}:events", 0, -1)]
        ended = {e["job"] for e in events if e["event"] == "end"}
        if set(jobs) <= ended or time.time() >= deadline:
            break
        time.sleep(0.5)
    starts, ends = {}, {}
    for event in events:
        (starts if event["event"] == "start" else ends).setdefault(event["job"], []).append(event)
    statuses = {}
    ids = sorted(jobs)
    for index in range(0, len(ids), 500):
        for job_id, job in zip(ids[index:index + 500], Job.fetch_many(ids[index:index + 500], connection=connection)):
            statuses[job_id] = job.get_status(refresh=False).value if job else "missing"
    registries = {"started": [], "failed": [], "canceled": []}
    for name in sorted({j["queue"] for j in jobs.values()}):
        for kind, registry in (("started", StartedJobRegistry), ("failed", FailedJobRegistry), ("canceled", CanceledJobRegistry)):
            registries[kind] += [i for i in registry(name, connection=connection).get_job_ids() if i.split(":")[0] in jobs]
    life = {k.decode(): float(v) for k, v in connection.hgetall(f"fdtb:{args.run}:life").items()}

    report = {"run": args.run, "jobs": len(jobs), "finished_once": 0, "never_started": [], "interrupted": [],
              "ran_twice": [], "failed": [], "registries": registries, "mixed_release": [], "releases": {},
              "queues": {}, "long_jobs": [], "detail": []}
    for job_id in ids:
        job, started, done = jobs[job_id], starts.get(job_id, []), ends.get(job_id, [])
        if not started:
            report["never_started"].append(job_id)
        elif len(started) > 1:
            report["ran_twice"].append(job_id)
        elif not done:
            report["interrupted"].append(job_id)
        elif len(done) == 1 and statuses.get(job_id) == "finished":
            report["finished_once"] += 1
        if statuses.get(job_id) == "failed":
            report["failed"].append(job_id)
        if started:
            release = started[0]["release"]
            report["releases"][release] = report["releases"].get(release, 0) + 1
            if done and done[0]["release"] != release:
                report["mixed_release"].append(job_id)
        detail = {"id": job_id, "queue": job["queue"], "enqueued": job["enqueued"], "seconds": job["seconds"],
                  "status": statuses.get(job_id), "start": started[0]["t"] if started else None,
                  "end": done[0]["t"] if done else None, "release": started[0]["release"] if started else None,
                  "end_release": done[0]["release"] if done else None,
                  "worker": started[0]["worker"] if started else None, "last_life": life.get(job_id)}
        report["detail"].append(detail)
        if job["queue"] == "long":
            report["long_jobs"].append(detail)
    # Per queue: the longest time no job started while one waited (FIFO: the job that starts is
    # the oldest waiting, so from the later of its enqueue and the previous start to its start).
    for name in sorted({j["queue"] for j in jobs.values()}):
        started = sorted((d["start"], d["enqueued"]) for d in report["detail"] if d["queue"] == name and d["start"])
        gap, at, previous = 0.0, None, None
        for start, enqueued in started:
            waited = start - max(enqueued, previous if previous is not None else enqueued)
            if waited > gap:
                gap, at = waited, start
            previous = start
        report["queues"][name] = {"jobs": sum(1 for j in jobs.values() if j["queue"] == name),
                                  "longest_gap": round(gap, 3), "gap_ends_at": at}
    ticks = [json.loads(t) for t in connection.lrange("fdtb:ticks", 0, -1)]
    schedulers = {}
    for t in ticks:
        s = schedulers.setdefault(t["scheduler"], {"scheduler": t["scheduler"], "release": t["release"],
                                                   "first": t["t"], "last": t["t"], "ticks": 0})
        s["first"], s["last"], s["ticks"] = min(s["first"], t["t"]), max(s["last"], t["t"]), s["ticks"] + 1
    ordered = sorted(schedulers.values(), key=lambda s: s["first"])
    overlap = 0.0
    for a_index, a in enumerate(ordered):
        for b in ordered[a_index + 1:]:
            overlap = max(overlap, min(a["last"], b["last"]) - b["first"])
    report["schedulers"] = ordered
    report["scheduler_overlap_seconds"] = round(max(0.0, overlap), 3)
    report["ok"] = (report["finished_once"] == len(jobs) and not report["failed"] and not report["mixed_release"]
                    and not any(registries.values()))
    print(json.dumps(report, indent=1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    d = commands.add_parser("drive")
    d.add_argument("--redis", required=True)
    d.add_argument("--run", required=True)
    d.add_argument("--rate", type=float, default=4.0, help="jobs per second on each queue")
    d.add_argument("--queues", default="short,default")
    d.add_argument("--seconds", type=float, default=0.1, help="how long each steady job runs")
    d.add_argument("--long", type=float, default=0.0, help="one job of this many seconds on `long`, enqueued first")
    d.add_argument("--duration", type=float, default=600.0)
    a = commands.add_parser("account")
    a.add_argument("--redis", required=True)
    a.add_argument("--run", required=True)
    a.add_argument("--wait", type=float, default=120.0)
    args = parser.parse_args()
    {"drive": drive, "account": account}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
