"""The scheduler: enqueues a tick job on `default` every FDTB_TICK seconds (default 1) and records
each tick, so two schedulers running at once show as overlapping tick intervals."""
import json
import os
import signal
import sys
import time
import uuid

from redis import Redis
from rq import Queue

from fdtb_jobs import config, release

stopping = False


def stop(*_):
    global stopping
    stopping = True


def main():
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    connection = Redis.from_url(config.redis_queue())
    queue = Queue("default", connection=connection)
    scheduler = f"{release.RELEASE}.{uuid.uuid4().hex[:8]}"
    interval = float(os.environ.get("FDTB_TICK", "1"))
    while not stopping:
        connection.rpush("fdtb:ticks", json.dumps({"scheduler": scheduler, "release": release.RELEASE, "t": time.time()}))
        queue.enqueue("fdtb_jobs.jobs.tick", scheduler, result_ttl=60, ttl=60)
        deadline = time.time() + interval
        while not stopping and time.time() < deadline:
            time.sleep(0.1)
    sys.exit(0)


if __name__ == "__main__":
    main()
