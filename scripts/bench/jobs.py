#!/usr/bin/env python3
"""Jobs through a sync, side by side (run by scripts/benchmark.sh, as root).

On one testbed worker running the job world (real RQ workers from the release's own virtualenv
against the main side's real Redis; scripts/jobs/), under steady load (RATE jobs per second on
`short` and on `default`), a new release is synced by each contender:

  spec   the spec's sequence as the original tool runs it (scripts/bench/spec_sequence.sh):
         `docker compose down` (Docker's 10 s stop timeout, then SIGKILL), transfer, start
  tool   frappe-deployer remote-worker sync (staged, handover)

each from its own steady state (release_1 synced and running the way that contender runs it),
without and with a long job (LONG seconds on `long`) running when the sync begins. Figures per
run: wall time; jobs lost (never started), killed (started, never ended), run twice; per queue the
longest time no job started while one waited; and which release's code the long job ended on.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as common  # noqa: E402 (the testbed host and helpers of the main benchmark)

SITE = common.SITE
JOBWORLD = os.path.join(common.ROOT, "scripts", "jobs", "jobworld.py")
PYTHON = os.path.join(os.environ.get("FDTB_JOBS_CACHE", "/var/cache/fdtb"), "jobs-env", "bin", "python")
WORKER, INDEX = "benchjobs", 241


class JobsBench:
    def __init__(self, args, host):
        self.args = args
        self.host = host
        self.base = "/var/tmp/fd-bench-jobs"
        self.benches = f"{self.base}/benches"
        self.ws = f"{self.benches}/{SITE}/workspace"
        self.redis = f"redis://10.213.{INDEX}.1:11000"

    def make_fixture(self):
        shutil.rmtree(self.base, ignore_errors=True)
        common.sh([self.args.fixture, "create", self.benches, SITE, "--release", "release_1", "--profile", self.args.profile,
                   "--main-address", f"10.213.{INDEX}.1", "--jobs"])
        common.sh([self.args.fixture, "release", self.benches, SITE, "release_2", "--profile", self.args.profile,
                   "--main-address", f"10.213.{INDEX}.1", "--seed", "2", "--jobs"])

    def set_current(self, release):
        link = f"{self.ws}/frappe-bench"
        os.remove(link)
        os.symlink(release, link)

    def reset(self):
        """No service, no workspace, no tool state, an empty queue Redis."""
        self.host.ssh("docker ps -aq | xargs -r docker rm -f >/dev/null; "
                      f"rm -rf {self.host.remote_ws} /home/frappe/frappe/sites/{SITE}/.frappe-deployer; mkdir -p {self.host.remote_ws}")
        common.sh(["redis-cli", "-h", f"10.213.{INDEX}.1", "-p", "11000", "FLUSHALL"])

    def sync(self, contender, release):
        self.set_current(release)
        start = time.monotonic()
        if contender == "tool":
            common.sh([self.args.tool, "remote-worker", "sync", SITE, "--server", self.host.address, "--ssh-config",
                       self.host.env["FDTB_SSH_CONFIG"], "--benches-path", self.benches])
        else:
            common.sh(["bash", os.path.join(common.ROOT, "scripts/bench/spec_sequence.sh"), self.host.env["FDTB_SSH_CONFIG"], "22",
                       f"frappe@{self.host.address}", self.ws, self.host.remote_ws, SITE, release])
        return time.monotonic() - start

    def account(self, run, wait):
        return json.loads(common.sh([PYTHON, JOBWORLD, "account", "--redis", self.redis, "--run", run, "--wait", str(wait)]))

    def measure(self, contender, long_seconds):
        self.reset()
        self.sync(contender, "release_1")  # untimed: release_1 runs the way this contender runs it
        time.sleep(3)
        run = f"{contender}{long_seconds}x{int(time.time())}"
        driver = subprocess.Popen([PYTHON, JOBWORLD, "drive", "--redis", self.redis, "--run", run, "--rate", str(self.args.rate),
                                   "--seconds", "0.1", "--long", str(long_seconds)], stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                started = [d for d in self.account(run, 0)["detail"] if d["start"]]
                if (not long_seconds and len(started) >= 8) or any(d["queue"] == "long" for d in started):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("the job world took no job within 30 s")
                time.sleep(0.3)
            wall = self.sync(contender, "release_2")
            time.sleep(5)
        finally:
            driver.terminate()
            driver.wait()
        account = self.account(run, long_seconds + 90)
        long = account["long_jobs"][0] if account["long_jobs"] else None
        return {
            "wall": wall, "jobs": account["jobs"], "lost": len(account["never_started"]), "killed": len(account["interrupted"]),
            "twice": len(account["ran_twice"]), "failed": len(account["failed"]),
            "gaps": {q: account["queues"][q]["longest_gap"] for q in ("short", "default") if q in account["queues"]},
            "long": None if not long else (long["release"], long["end_release"]),
        }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", required=True)
    parser.add_argument("--fixture", required=True)
    parser.add_argument("--profile", default="small")
    parser.add_argument("--rate", type=float, default=4)
    parser.add_argument("--long", type=float, default=20, help="seconds of the long job (above the spec's 10 s stop timeout)")
    parser.add_argument("--output", default=None, help="a file to append the table to")
    args = parser.parse_args()
    host = common.Host(WORKER, INDEX)
    bench = JobsBench(args, host)
    bench.make_fixture()
    rows = []
    try:
        host.up()
        common.testbed("site", WORKER, SITE, "jobs")
        for long_seconds in (0, args.long):
            for contender in ("spec", "tool"):
                result = bench.measure(contender, long_seconds)
                rows.append((long_seconds, contender, result))
                print(f"jobs long={long_seconds:g} {contender}: {result}", file=sys.stderr)
    finally:
        host.down()
        shutil.rmtree(bench.base, ignore_errors=True)

    def ran(result):
        if not result["long"]:
            return "-"
        start, end = result["long"]
        return "killed" if end is None else ("its own release to the end" if start == end else f"{start} then {end}")

    lines = ["", f"Jobs through a sync of a new release (job world: real RQ workers, {args.rate:g} jobs/s on short and on default, "
                 f"jobs of 0.1 s; one run each, same machine, one after another):", "",
             "| long job running | contender | wall s | jobs | lost | killed | run twice | longest gap short / default | long job ran |",
             "|---|---|---|---|---|---|---|---|---|"]
    for long_seconds, contender, r in rows:
        gaps = " / ".join(f"{r['gaps'].get(q, 0):.1f} s" for q in ("short", "default"))
        lines.append(f"| {'none' if not long_seconds else f'{long_seconds:g} s on long'} | {contender} | {r['wall']:.1f} | {r['jobs']} | "
                     f"{r['lost']} | {r['killed']} | {r['twice']} | {gaps} | {ran(r)} |")
    table = "\n".join(lines)
    print(table)
    if args.output:
        with open(args.output, "a") as handle:
            handle.write(table + "\n")


if __name__ == "__main__":
    main()
