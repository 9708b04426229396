#!/usr/bin/env python3
"""Side-by-side benchmark of a sync to one testbed worker (run by scripts/benchmark.sh, as root).

Contenders, each from the same worker state:
  spec   the spec's sequence: one ssh per remote step, sequential rsync -avz --delete --checksum
  tool   frappe-deployer remote-worker sync (staged)
  floor  one bare rsync -az --delete of the same trees (same excludes; the previous release as
         --link-dest base when there is one) over an already open connection, no service handling
Scenarios: first sync to an empty worker; no-change resync; new release (every mtime changed,
3% of the files' contents changed). Links: plain veth, and a ~50 ms round trip through a
user-space delay proxy in the worker's namespace. Figures: wall time, worker downtime, bytes sent,
SSH handshakes (accepted logins in the worker's sshd log), the tool's peak memory (VmHWM).
"""
import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTBED = os.path.join(ROOT, "scripts", "testbed.sh")
SITE = "bench.example.test"
WORKER, INDEX = "bench", 240
EXCLUDES = [".git/", "node_modules/", "__pycache__/", ".cache/", "*.pyc", "*.log", "*.log.[0-9]*",
            "/sites/*/public/files/", "/sites/*/private/", "/config/pids/*",
            "/sites/common_site_config.json", f"/sites/{SITE}/site_config.json"]


def sh(args, **kw):
    return subprocess.run(args, check=True, text=True, capture_output=True, **kw).stdout


def testbed(*args, env=None):
    return sh(["bash", TESTBED, *args], env=env)


def worker_env():
    facts = {}
    for line in testbed("env", WORKER).splitlines():
        key, _, value = line.partition("=")
        facts[key] = value
    return facts


class Bench:
    def __init__(self, args):
        self.args = args
        self.base = "/var/tmp/fd-bench"
        self.benches = f"{self.base}/benches"
        self.ws = f"{self.benches}/{SITE}/workspace"
        self.tool = args.tool
        self.fixture = args.fixture

    # -- setup ----------------------------------------------------------------------------------
    def make_fixture(self):
        shutil.rmtree(self.base, ignore_errors=True)
        sh([self.fixture, "create", self.benches, SITE, "--release", "release_1", "--profile", self.args.profile,
            "--main-address", f"10.213.{INDEX}.1"])
        # release_2: a rebuild of release_1 with every mtime new and 3% of the files changed.
        sh(["cp", "-a", f"{self.ws}/release_1", f"{self.ws}/release_2"])
        files = []
        for directory, _, names in os.walk(f"{self.ws}/release_2"):
            for name in names:
                path = os.path.join(directory, name)
                if not os.path.islink(path):
                    files.append(path)
        now = time.time() + 3600
        for path in files:
            os.utime(path, (now, now))
        rng = random.Random(3)
        for path in rng.sample(files, int(len(files) * 0.03)):
            with open(path, "r+b") as handle:
                handle.write(rng.randbytes(min(64, max(1, os.path.getsize(path)))))
        self.file_count = len(files)

    def set_current(self, release):
        link = f"{self.ws}/frappe-bench"
        os.remove(link)
        os.symlink(release, link)

    def up(self):
        testbed("down", WORKER)
        testbed("up", WORKER, str(INDEX))
        testbed("site", WORKER, SITE)
        self.env = worker_env()
        self.address = self.env["FDTB_ADDRESS"]
        self.remote_ws = f"/home/frappe/frappe/sites/{SITE}/workspace"
        self.remote_ws_host = self.env["FDTB_HOME"] + self.remote_ws[len("/home"):]
        self.sshd_log = self.env["FDTB_DIR"] + "/sshd.log"
        self.proxy = None

    def start_link(self, link):
        self.port = 22
        if link == "wan":
            ns = f"fdtb-{WORKER}"
            self.proxy = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, os.path.join(ROOT, "scripts/bench/delay_proxy.py"),
                                           f"{self.address}:2222", f"{self.address}:22", str(self.args.one_way_ms)])
            time.sleep(0.5)
            self.port = 2222
        # The worker's known_hosts entry names port 22; the proxied port is the same host key.
        with open(self.env["FDTB_KNOWN_HOSTS"]) as handle:
            key = handle.read().split(" ", 1)[1].strip()
        with open(self.env["FDTB_KNOWN_HOSTS"], "w") as handle:
            handle.write(f"{self.address} {key}\n[{self.address}]:2222 {key}\n")

    def stop_link(self):
        if self.proxy:
            self.proxy.terminate()
            self.proxy.wait()
            self.proxy = None

    def reset_worker(self):
        """An empty worker: services down, workspace and tool state removed."""
        self.ssh(f"cd /home/frappe/frappe/sites/{SITE} && docker compose -f docker-compose.yml -f docker-compose.workers.yml down 2>/dev/null; "
                 f"rm -rf {self.remote_ws} /home/frappe/frappe/sites/{SITE}/.frappe-deployer; mkdir -p {self.remote_ws}")

    def ssh(self, command):
        return sh(["ssh", "-F", self.env["FDTB_SSH_CONFIG"], "-p", str(self.port), "-o", "BatchMode=yes", f"frappe@{self.address}", command])

    def handshakes(self):
        with open(self.sshd_log, errors="replace") as handle:
            return sum(1 for line in handle if "Accepted publickey" in line)

    # -- contenders ------------------------------------------------------------------------------
    def run_tool(self, release):
        args = [self.tool, "remote-worker", "sync", SITE, "--server", self.address, "--ssh-port", str(self.port),
                "--ssh-config", self.env["FDTB_SSH_CONFIG"], "--benches-path", self.benches]
        start = time.monotonic()
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = 0
        while process.poll() is None:
            try:
                with open(f"/proc/{process.pid}/status") as handle:
                    for line in handle:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.02)
        out, err = process.communicate()
        wall = time.monotonic() - start
        if process.returncode != 0:
            raise RuntimeError(f"tool failed: {err[-2000:]}")
        downtime = float(re.search(r"downtime: ([0-9.]+) s", out).group(1))
        sent = sum(self.parse_size(m) for m in re.findall(r"([0-9.]+ [KMG]?i?B) sent, [0-9.]+ [KMG]?i?B received", out))
        return {"wall": wall, "downtime": downtime, "sent": sent, "memory_kib": peak}

    def run_spec(self, release):
        start = time.monotonic()
        out = sh(["bash", os.path.join(ROOT, "scripts/bench/spec_sequence.sh"), self.env["FDTB_SSH_CONFIG"], str(self.port),
                  f"frappe@{self.address}", self.ws, self.remote_ws, SITE, release])
        wall = time.monotonic() - start
        sent = sum(int(m.replace(",", "")) for m in re.findall(r"Total bytes sent: ([0-9,]+)", out))
        downtime = int(re.search(r"downtime_ms=(\d+)", out).group(1)) / 1000
        return {"wall": wall, "downtime": downtime, "sent": sent, "memory_kib": None}

    def run_floor(self, release, base):
        control = f"/tmp/fd-bench-{os.getpid()}"
        ssh = f"ssh -F {self.env['FDTB_SSH_CONFIG']} -p {self.port} -o BatchMode=yes -o ControlPath={control}"
        sh(["ssh", "-F", self.env["FDTB_SSH_CONFIG"], "-p", str(self.port), "-o", "BatchMode=yes", "-o", f"ControlPath={control}",
            "-o", "ControlMaster=yes", "-o", "ControlPersist=30", "-f", "-N", f"frappe@{self.address}"])
        excludes = [f"--exclude={p}" for p in EXCLUDES]
        link = [f"--link-dest={self.remote_ws}/{base}"] if base else []
        start = time.monotonic()
        out_release = sh(["rsync", "-az", "--delete", "--stats", "-e", ssh, *link, *excludes,
                          f"{self.ws}/{release}/", f"frappe@{self.address}:{self.remote_ws}/{release}/"])
        out_data = sh(["rsync", "-az", "--delete", "--stats", "-e", ssh, *excludes,
                       f"{self.ws}/deployment-data/", f"frappe@{self.address}:{self.remote_ws}/deployment-data/"])
        wall = time.monotonic() - start
        subprocess.run(["ssh", "-o", f"ControlPath={control}", "-O", "exit", f"frappe@{self.address}"], capture_output=True)
        sent = sum(int(m.replace(",", "")) for m in re.findall(r"Total bytes sent: ([0-9,]+)", out_release + out_data))
        return {"wall": wall, "downtime": None, "sent": sent, "memory_kib": None}

    @staticmethod
    def parse_size(text):
        number, unit = text.split()
        return float(number) * {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}[unit]

    # -- scenarios -------------------------------------------------------------------------------
    def measure(self, contender, scenario):
        self.reset_worker()
        release, base = "release_1", None
        if scenario in ("nochange", "newrelease"):
            self.set_current("release_1")
            self.run_tool("release_1")  # untimed setup: release_1 live on the worker
            base = "release_1"
        if scenario == "newrelease":
            release = "release_2"
        if scenario == "nochange" and contender == "floor":
            base = None  # syncing release_1 onto itself
        self.set_current(release)
        # Flush what earlier runs left in the page cache to disk, so no run pays for another's
        # write-back (on this machine that alone moved a 575 MiB copy from 3 s to 16 s).
        os.sync()
        self.ssh("sync")
        before = self.handshakes()
        if contender == "tool":
            result = self.run_tool(release)
        elif contender == "spec":
            result = self.run_spec(release)
        else:
            result = self.run_floor(release, base)
        time.sleep(0.2)
        result["handshakes"] = self.handshakes() - before
        return result


def median_run(runs):
    """The run with the median wall time (its other figures come with it)."""
    return sorted(runs, key=lambda r: r["wall"])[len(runs) // 2]


def fmt_size(value):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", required=True)
    parser.add_argument("--fixture", required=True)
    parser.add_argument("--profile", default="real")
    parser.add_argument("--one-way-ms", type=float, default=25)
    parser.add_argument("--links", default="plain,wan")
    parser.add_argument("--scenarios", default="first,nochange,newrelease")
    parser.add_argument("--output", default=None)
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender; the median is reported")
    args = parser.parse_args()

    bench = Bench(args)
    bench.make_fixture()
    bench.up()
    rows = []
    try:
        for link in args.links.split(","):
            bench.start_link(link)
            try:
                for scenario in args.scenarios.split(","):
                    runs = {c: [] for c in ("spec", "tool", "floor")}
                    order = ["spec", "tool", "floor"]
                    for _ in range(args.repeat):
                        for contender in order:
                            runs[contender].append(bench.measure(contender, scenario))
                        order = order[1:] + order[:1]  # each contender takes each position in turn
                    results = {c: median_run(r) for c, r in runs.items()}
                    rows.append((link, scenario, results))
                    print(f"{link:5} {scenario:10} " + "  ".join(
                        f"{c}: {r['wall']:.1f}s {fmt_size(r['sent'])} {r['handshakes']}hs" for c, r in results.items()), file=sys.stderr)
            finally:
                bench.stop_link()
    finally:
        testbed("down", WORKER)
        shutil.rmtree(bench.base, ignore_errors=True)

    lines = [f"Fixture: {args.profile} ({bench.file_count} files in the release); wan = {2 * args.one_way_ms:.0f} ms round trip through a delay proxy; "
             f"median of {args.repeat} runs per contender, order rotated, page cache flushed before each run.",
             "",
             "| link | scenario | spec s | tool s | floor s | tool/spec | tool/floor | downtime spec / tool | sent spec / tool / floor | ssh handshakes spec / tool | tool peak memory |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for link, scenario, r in rows:
        s, t, f = r["spec"], r["tool"], r["floor"]
        lines.append(f"| {link} | {scenario} | {s['wall']:.1f} | {t['wall']:.1f} | {f['wall']:.1f} | {t['wall'] / s['wall']:.2f}x | "
                     f"{t['wall'] / f['wall']:.2f}x | {s['downtime']:.1f} / {t['downtime']:.1f} s | "
                     f"{fmt_size(s['sent'])} / {fmt_size(t['sent'])} / {fmt_size(f['sent'])} | {s['handshakes']} / {t['handshakes']} | "
                     f"{t['memory_kib'] / 1024:.1f} MiB |")
    table = "\n".join(lines)
    print(table)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(table + "\n")


if __name__ == "__main__":
    main()
