"""An RQ worker as `bench worker --queue QUEUES` runs one: SIGTERM asks for a warm shutdown (the
running job finishes, no new one is taken). Also writes the testbed's heartbeat file."""
import os
import sys
import threading
import time
import uuid

from redis import Redis
from rq import Queue, Worker

from fdtb_jobs import config, release

LOGS = os.environ.get("FDTB_LOGS", "/workspace/deployment-data/logs")


def heartbeat(service, queue_url, db_host):
    os.makedirs(LOGS, exist_ok=True)
    final = os.path.join(LOGS, f"heartbeat-{service}.log")
    temporary = os.path.join(LOGS, f".hb-{service}.{os.getpid()}.log")
    while True:
        with open(temporary, "w") as handle:
            handle.write(f"release={release.RELEASE} service={service} redis_queue={queue_url} "
                         f"db_host={db_host} time={int(time.time())}\n")
        os.replace(temporary, final)
        time.sleep(1)


def main():
    service, queues = sys.argv[1], sys.argv[2].split(",")
    url = config.redis_queue()
    connection = Redis.from_url(url)
    name = f"{service}.{release.RELEASE}.{uuid.uuid4().hex[:8]}"
    # The work horses inherit it: each job records the worker that ran it.
    os.environ["FDTB_WORKER"] = name
    threading.Thread(target=heartbeat, args=(service, url, config.db_host()), daemon=True).start()
    worker = Worker([Queue(queue, connection=connection) for queue in queues], connection=connection, name=name)
    worker.work(logging_level="WARNING")


if __name__ == "__main__":
    main()
