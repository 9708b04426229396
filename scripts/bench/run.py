#!/usr/bin/env python3
"""Side-by-side benchmark of a sync to one testbed worker (run by scripts/benchmark.sh, as root).

Contenders, each from the same worker state:
  spec   the spec's sequence: one ssh per remote step, sequential rsync -avz --delete --checksum
  tool   frappe-deployer remote-worker sync (staged)
  floor  one bare rsync -az --delete of the same trees (same excludes; the previous release as
         --link-dest base when there is one) over an already open connection, no service handling
Scenarios: first sync to an empty worker; no-change resync; new release (every mtime changed,
3% of the files' contents changed); four: first sync to 4 workers at once (the spec's tool syncs
one worker per run, so its sequence runs 4 times in a row; the floor runs 4 bare rsyncs in
parallel). A second fixture (100k files) measures the tool's peak memory. Links: plain veth, and a ~50 ms round trip through a
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
import threading
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


def stop_process(process):
    """Ends a proxy this benchmark started; None to forget it."""
    if process:
        process.terminate()
        process.wait()
    return None


def testbed(*args, env=None):
    return sh(["bash", TESTBED, *args], env=env)


class CPU:
    """CPU seconds spent during a run: on the main server's side (this process's finished
    children and theirs: the tool, its rsync, ssh and zstd, or the spec's and the floor's), and on
    the whole machine (/proc/stat), whose rest is the workers' side (sshd, rsync, Docker) plus a
    proxy: on this one machine, every worker shares the same cores with the main server."""

    def __init__(self):
        self.main, self.all = self.read()

    @staticmethod
    def read():
        times = os.times()
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
        busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
        return times.children_user + times.children_system, busy / os.sysconf("SC_CLK_TCK")

    def record(self, result):
        main, total = self.read()
        result["cpu_main"], result["cpu_all"] = main - self.main, total - self.all
        return result


class Host:
    """One testbed worker and the link to it."""

    def __init__(self, name, index):
        self.name, self.index = name, index
        self.proxy = None
        self.port = 22

    def up(self):
        testbed("down", self.name)
        testbed("up", self.name, str(self.index))
        testbed("site", self.name, SITE)
        self.env = {}
        for line in testbed("env", self.name).splitlines():
            key, _, value = line.partition("=")
            self.env[key] = value
        self.address = self.connect = self.env["FDTB_ADDRESS"]
        self.site_dir = f"{self.env['FDTB_DIR']}/home/frappe/frappe/sites/{SITE}"
        self.remote_ws = f"/home/frappe/frappe/sites/{SITE}/workspace"
        self.sshd_log = self.env["FDTB_DIR"] + "/sshd.log"

    def down(self):
        self.stop_link()
        testbed("down", self.name)

    def start_link(self, link, one_way_ms):
        self.port, self.connect = 22, self.address
        if link == "wan":
            self.proxy = subprocess.Popen(["ip", "netns", "exec", f"fdtb-{self.name}", sys.executable,
                                           os.path.join(ROOT, "scripts/bench/delay_proxy.py"), str(one_way_ms),
                                           f"{self.address}:2222={self.address}:22"])
            time.sleep(0.5)
            self.port = 2222
        self.trust_proxy()

    def uplink_route(self, slot):
        """This worker behind the main server's shared uplink proxy: a loopback address of its own."""
        self.port, self.connect = 2222, f"127.0.0.{10 + slot}"
        self.trust_proxy()
        return f"{self.connect}:2222={self.address}:22"

    def trust_proxy(self):
        """The worker's known_hosts entry names port 22; the proxied ports carry the same host key."""
        with open(self.env["FDTB_KNOWN_HOSTS"]) as handle:
            key = handle.read().split(" ", 1)[1].strip().split("\n")[0]
        with open(self.env["FDTB_KNOWN_HOSTS"], "w") as handle:
            handle.write("".join(f"{name} {key}\n" for name in (self.address, f"[{self.address}]:2222", f"[{self.connect}]:2222")))

    def stop_link(self):
        self.proxy = stop_process(self.proxy)

    def ssh(self, command):
        return sh(["ssh", "-F", self.env["FDTB_SSH_CONFIG"], "-o", "BatchMode=yes", f"frappe@{self.address}", command])

    def open_master(self):
        """An ssh master connection to the worker through its link, opened before the timed part:
        the argv of ssh over it, for rsync -e and the stream."""
        self.control = f"/tmp/fd-bench-{os.getpid()}-{self.index}"
        over = ["ssh", "-F", self.env["FDTB_SSH_CONFIG"], "-p", str(self.port), "-o", "BatchMode=yes", "-o", f"ControlPath={self.control}"]
        sh(over + ["-o", "ControlMaster=yes", "-o", "ControlPersist=30", "-f", "-N", f"frappe@{self.connect}"])
        return over

    def close_master(self):
        subprocess.run(["ssh", "-o", f"ControlPath={self.control}", "-O", "exit", f"frappe@{self.connect}"], capture_output=True)

    def tree_signature(self, release):
        """What a copy is, byte for byte: every entry's path, type, mode, size, mtime and link
        target, and every file's content hash, for the release and deployment-data."""
        return self.ssh(f"cd {self.remote_ws} && for tree in {release} deployment-data; do (cd $tree && "
                        "find . -mindepth 1 -printf '%P\\t%y\\t%m\\t%s\\t%T@\\t%l\\n' | LC_ALL=C sort && "
                        "find . -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum); done | md5sum").split()[0]

    def reset(self):
        """An empty worker: every container gone (the tool's earlier generations are Compose
        projects of their own, which a `compose down` of the site's files leaves running), workspace
        and tool state removed."""
        self.ssh(f"docker ps -aq | xargs -r docker rm -f >/dev/null; "
                 f"rm -rf {self.remote_ws} /home/frappe/frappe/sites/{SITE}/.frappe-deployer; mkdir -p {self.remote_ws}")

    def write_own_files(self):
        """What a real worker's services write into deployment-data between syncs: a job's file
        lock, a log, a pid file, and a file of its own the main server does not have."""
        data = f"{self.remote_ws}/deployment-data"
        self.ssh(f"mkdir -p {data}/sites/{SITE}/locks {data}/logs {data}/config/pids && "
                 f"date > {data}/sites/{SITE}/locks/job.lock && date >> {data}/logs/worker.log && "
                 f"echo 4242 > {data}/config/pids/worker.pid && date > {data}/sites/{SITE}/worker-state.json")

    def handshakes(self):
        with open(self.sshd_log, errors="replace") as handle:
            return sum(1 for line in handle if "Accepted publickey" in line)


class Bench:
    def __init__(self, args, hosts):
        self.args = args
        self.base = "/var/tmp/fd-bench"
        self.benches = f"{self.base}/benches"
        self.ws = f"{self.benches}/{SITE}/workspace"
        self.tool = args.tool
        self.fixture = args.fixture
        self.hosts = hosts
        self.ssh_config = f"{self.base}/ssh_config"

    # -- setup ----------------------------------------------------------------------------------
    def make_fixture(self, profile, rebuild=True):
        shutil.rmtree(self.base, ignore_errors=True)
        sh([self.fixture, "create", self.benches, SITE, "--release", "release_1", "--profile", profile,
            "--main-address", f"10.213.{INDEX}.1"])
        files = []
        for directory, _, names in os.walk(f"{self.ws}/release_1"):
            files += [os.path.join(directory, n) for n in names if not os.path.islink(os.path.join(directory, n))]
        self.file_count = len(files)
        if not rebuild:
            return
        # release_2: a rebuild of release_1 with every mtime new and 3% of the files changed.
        sh(["cp", "-a", f"{self.ws}/release_1", f"{self.ws}/release_2"])
        files = [f.replace("/release_1/", "/release_2/", 1) for f in files]
        now = time.time() + 3600
        for path in files:
            os.utime(path, (now, now))
        rng = random.Random(3)
        for path in rng.sample(files, int(len(files) * 0.03)):
            with open(path, "r+b") as handle:
                handle.write(rng.randbytes(min(64, max(1, os.path.getsize(path)))))

    def write_ssh_config(self):
        """One ssh_config that reaches every worker (each has its own client key and host key)."""
        blocks = []
        for host in self.hosts:
            blocks.append(f"Host {host.address} {host.connect}\n    IdentityFile {host.env['FDTB_DIR']}/client_key\n"
                          f"    UserKnownHostsFile {host.env['FDTB_KNOWN_HOSTS']}\n")
        blocks.append("Host *\n    IdentitiesOnly yes\n    GlobalKnownHostsFile /dev/null\n    ConnectTimeout 5\n")
        os.makedirs(self.base, exist_ok=True)
        with open(self.ssh_config, "w") as handle:
            handle.write("\n".join(blocks))

    def set_current(self, release):
        link = f"{self.ws}/frappe-bench"
        os.remove(link)
        os.symlink(release, link)

    # -- contenders ------------------------------------------------------------------------------
    def run_tool(self, release, hosts, extra=(), direct=False):
        """A sync through each worker's link (direct: straight to its sshd, for untimed set-up)."""
        args = [self.tool, "remote-worker", "sync", SITE, "--ssh-port", "22" if direct else str(hosts[0].port),
                "--ssh-config", self.ssh_config, "--benches-path", self.benches, *extra]
        for host in hosts:
            args += ["--server", host.address if direct else host.connect]
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
        if os.environ.get("BENCH_SHOW"):
            print(out, file=sys.stderr)
        # No downtime line: the verified release and its running services were kept.
        downtime = max([float(d) for d in re.findall(r"downtime: ([0-9.]+) s", out)] or [0.0])
        sent = sum(self.parse_size(m) for m in re.findall(r"([0-9.]+ [KMG]?i?B) sent, [0-9.]+ [KMG]?i?B received", out))
        return {"wall": wall, "downtime": downtime, "sent": sent, "memory_kib": peak}

    def run_spec(self, release, hosts):
        """The spec's tool syncs one worker per run: several workers are synced one after another."""
        start = time.monotonic()
        sent, downtime = 0, 0.0
        for host in hosts:
            out = sh(["bash", os.path.join(ROOT, "scripts/bench/spec_sequence.sh"), host.env["FDTB_SSH_CONFIG"], str(host.port),
                      f"frappe@{host.connect}", self.ws, host.remote_ws, SITE, release])
            sent += sum(int(m.replace(",", "")) for m in re.findall(r"Total bytes sent: ([0-9,]+)", out))
            downtime = max(downtime, int(re.search(r"downtime_ms=(\d+)", out).group(1)) / 1000)
        return {"wall": time.monotonic() - start, "downtime": downtime, "sent": sent, "memory_kib": None}

    def run_floor(self, release, base, hosts):
        """Bare rsyncs of the same trees over already open connections, workers in parallel."""
        excludes = [f"--exclude={p}" for p in EXCLUDES]
        link = [f"--link-dest={hosts[0].remote_ws}/{base}"] if base else []
        commands = []
        for host in hosts:
            ssh = " ".join(host.open_master())
            commands.append([
                ["rsync", "-az", "--delete", "--stats", "-e", ssh, *link, *excludes,
                 f"{self.ws}/{release}/", f"frappe@{host.connect}:{host.remote_ws}/{release}/"],
                ["rsync", "-az", "--delete", "--stats", "-e", ssh, *excludes,
                 f"{self.ws}/deployment-data/", f"frappe@{host.connect}:{host.remote_ws}/deployment-data/"]])
        start = time.monotonic()
        outputs = []

        def one(cmds):
            outputs.append("".join(sh(c) for c in cmds))
        threads = [threading.Thread(target=one, args=(cmds,)) for cmds in commands]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - start
        for host in hosts:
            host.close_master()
        sent = sum(int(m.replace(",", "")) for out in outputs for m in re.findall(r"Total bytes sent: ([0-9,]+)", out))
        return {"wall": wall, "downtime": None, "sent": sent, "memory_kib": None}

    def run_stream(self, release, hosts):
        """The first copy as one streamed archive over an already open connection: the entries
        rsync's filter engine picks (same excludes), tar (posix format: sub-second mtimes) through
        zstd, unpacked on the worker. No service handling, like the floor."""
        host = hosts[0]
        over = host.open_master()
        empty = f"{self.base}/empty"
        os.makedirs(empty, exist_ok=True)
        start = time.monotonic()
        names = []
        for tree in (release, "deployment-data"):
            listed = sh(["rsync", "-a", "-8", "--dry-run", "--out-format=%n", *[f"--exclude={p}" for p in EXCLUDES], f"{self.ws}/{tree}/", f"{empty}/"])
            names += [tree] + [f"{tree}/{name}".rstrip("/") for name in listed.splitlines() if name and name != "./"]
        tar = subprocess.Popen(["tar", "-C", self.ws, "--format=posix", "--pax-option=delete=atime,delete=ctime", "--no-recursion", "--null",
                                "-T", "-", "-cf", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        zstd = subprocess.Popen(["zstd", "-3", "-T0", "-q", "-c"], stdin=tar.stdout, stdout=subprocess.PIPE)
        tar.stdout.close()
        unpack = subprocess.Popen([*over, f"frappe@{host.connect}", f"mkdir -p {host.remote_ws} && zstd -dcq | tar -xpf - -C {host.remote_ws}"],
                                  stdin=subprocess.PIPE)
        feeder = threading.Thread(target=lambda: (tar.stdin.write("".join(n + "\0" for n in names).encode()), tar.stdin.close()))
        feeder.start()
        sent = 0
        while chunk := zstd.stdout.read(1 << 16):
            sent += len(chunk)
            unpack.stdin.write(chunk)
        unpack.stdin.close()
        feeder.join()
        codes = [tar.wait(), zstd.wait(), unpack.wait()]
        wall = time.monotonic() - start
        host.close_master()
        if any(codes):
            raise RuntimeError(f"stream failed: {codes}")
        return {"wall": wall, "downtime": None, "sent": sent, "memory_kib": None}

    @staticmethod
    def parse_size(text):
        number, unit = text.split()
        return float(number) * {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}[unit]

    # -- scenarios -------------------------------------------------------------------------------
    def measure(self, contender, scenario):
        hosts = self.hosts[:4] if scenario == "four" else self.hosts[:1]
        for host in hosts:
            host.reset()
        release, base = "release_1", None
        if scenario in ("nochange", "newrelease"):
            self.set_current("release_1")
            self.run_tool("release_1", hosts)  # untimed setup: release_1 live on the worker
            base = "release_1"
            # Its services have written files of their own since, as real workers do.
            for host in hosts:
                host.write_own_files()
        if scenario == "newrelease":
            release = "release_2"
        if scenario == "nochange" and contender == "floor":
            base = None  # syncing release_1 onto itself
        self.set_current(release)
        # Flush what earlier runs left in the page cache to disk, so no run pays for another's
        # write-back (on this machine that alone moved a 575 MiB copy from 3 s to 16 s).
        os.sync()
        for host in hosts:
            host.ssh("sync")
        before = sum(h.handshakes() for h in hosts)
        cpu = CPU()
        if contender == "tool":
            result = self.run_tool(release, hosts)
        elif contender == "spec":
            result = self.run_spec(release, hosts)
        elif contender == "stream":
            result = self.run_stream(release, hosts)
        else:
            result = self.run_floor(release, base, hosts)
        cpu.record(result)
        if scenario == "first" and contender in ("stream", "floor"):
            result["tree"] = hosts[0].tree_signature(release)
        time.sleep(0.2)
        result["handshakes"] = sum(h.handshakes() for h in hosts) - before
        return result


class Fleet:
    """N workers on the same base release receive a new release through the main server's one
    uplink, limited and shared (one proxy in the main server's namespace, a route per worker)."""

    def __init__(self, bench, hosts, mbit):
        self.bench, self.hosts, self.mbit = bench, hosts, mbit
        self.snapshot = f"{bench.base}/snapshot"
        self.proxy = None

    def start(self):
        routes = [host.uplink_route(slot) for slot, host in enumerate(self.hosts)]
        self.proxy = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts/bench/delay_proxy.py"), "0",
                                       "--uplink-mbit", str(self.mbit), *routes])
        time.sleep(0.5)
        self.bench.write_ssh_config()

    def stop(self):
        self.proxy = stop_process(self.proxy)

    def prepare(self, hosts):
        """release_1 live on each worker, as the tool leaves it, without paying a first copy per
        worker: one first sync, kept as a snapshot, copied into the others' site directories (each
        worker's /home is a directory on this machine), then a sync of the same release starts
        their services."""
        bench = self.bench
        bench.set_current("release_1")
        if not os.path.isdir(self.snapshot):
            self.hosts[0].reset()
            bench.run_tool("release_1", self.hosts[:1], direct=True)
            os.makedirs(self.snapshot)
            sh(["cp", "-a", f"{self.hosts[0].site_dir}/workspace", f"{self.hosts[0].site_dir}/.frappe-deployer", self.snapshot])
        for host in hosts:
            host.reset()  # leaves an empty workspace, into which cp -a copies the snapshot's
            sh(["cp", "-a", f"{self.snapshot}/workspace", f"{self.snapshot}/.frappe-deployer", host.site_dir])
        bench.run_tool("release_1", hosts, direct=True)
        for host in hosts:
            host.write_own_files()
        bench.set_current("release_2")
        os.sync()

    def measure(self, contender, count):
        hosts = self.hosts[:count]
        self.prepare(hosts)
        cpu = CPU()
        if contender == "tool":
            return cpu.record(self.bench.run_tool("release_2", hosts))
        return cpu.record(self.bench.run_floor("release_2", "release_1", hosts))


def median_run(runs):
    """The run with the median wall time (its other figures come with it)."""
    return sorted(runs, key=lambda r: r["wall"])[len(runs) // 2]


def fmt_size(value):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024


def cell(result, key, fmt):
    return fmt(result[key]) if result and result.get(key) is not None else "-"


def ratio(a, b):
    return f"{a['wall'] / b['wall']:.2f}x" if a and b else "-"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", required=True)
    parser.add_argument("--fixture", required=True)
    parser.add_argument("--profile", default="real")
    parser.add_argument("--one-way-ms", type=float, default=25)
    parser.add_argument("--links", default="plain,wan")
    parser.add_argument("--scenarios", default="first,nochange,newrelease,four")
    parser.add_argument("--fleet", default="1,4,8", help="fleet sizes for a new release through a limited uplink; empty to skip")
    parser.add_argument("--uplink-mbit", type=float, default=20, help="the main server's uplink for the fleet rows")
    parser.add_argument("--output", default=None)
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender; the median is reported")
    parser.add_argument("--compress-ab", action="store_true", help="also time a first copy with each compression")
    parser.add_argument("--memory-profile", default="100000:400", help="a second fixture for the tool's peak memory; empty to skip")
    args = parser.parse_args()

    scenarios = [name for name in args.scenarios.split(",") if name]
    fleet_sizes = [int(n) for n in args.fleet.split(",") if n]
    count = max([4 if "four" in scenarios else 1] + fleet_sizes)
    hosts = [Host(WORKER, INDEX)] + [Host(f"{WORKER}{i}", INDEX + i) for i in range(1, count)]
    bench = Bench(args, hosts)
    bench.make_fixture(args.profile)
    rows = []
    compress_rows = []
    memory = None
    try:
        for host in hosts:
            host.up()
        for link in args.links.split(","):
            for host in hosts:
                host.start_link(link, args.one_way_ms)
            bench.write_ssh_config()
            try:
                for scenario in scenarios:
                    order = ["spec", "tool", "floor"] + (["stream"] if scenario == "first" else [])
                    runs = {c: [] for c in order}
                    for _ in range(args.repeat):
                        for contender in order:
                            runs[contender].append(bench.measure(contender, scenario))
                        order = order[1:] + order[:1]  # each contender takes each position in turn
                    results = {c: median_run(r) for c, r in runs.items()}
                    if "stream" in results:
                        # Every stream copy and every rsync copy must be the same tree.
                        trees = {r["tree"] for c in ("stream", "floor") for r in runs[c]}
                        results["stream"]["identical"] = len(trees) == 1
                    rows.append((link, scenario, results))
                    print(f"{link:5} {scenario:10} " + "  ".join(
                        f"{c}: {r['wall']:.1f}s {fmt_size(r['sent'])} {r['handshakes']}hs" for c, r in results.items()), file=sys.stderr)
            finally:
                for host in hosts:
                    host.stop_link()
        if fleet_sizes:
            fleet = Fleet(bench, hosts, args.uplink_mbit)
            fleet.start()
            try:
                for size in fleet_sizes:
                    runs = {"tool": [], "floor": []}
                    for _ in range(args.repeat):
                        for contender in runs:
                            runs[contender].append(fleet.measure(contender, size))
                    results = {c: median_run(r) for c, r in runs.items()}
                    rows.append((f"uplink {args.uplink_mbit:g} Mbit/s", f"fleet {size}", results))
                    print(f"fleet {size}: " + "  ".join(f"{c}: {r['wall']:.1f}s {fmt_size(r['sent'])} cpu {r['cpu_main']:.1f}/{r['cpu_all']:.1f}s" for c, r in results.items()), file=sys.stderr)
            finally:
                fleet.stop()
        if args.compress_ab:
            # The first copy of the real release with each compression, one after another, per link.
            for link in args.links.split(","):
                hosts[0].start_link(link, args.one_way_ms)
                bench.write_ssh_config()
                bench.set_current("release_1")
                for choice in ("zstd", "lz4", "off"):
                    runs = []
                    for _ in range(args.repeat):
                        hosts[0].reset()
                        os.sync()
                        hosts[0].ssh("sync")
                        runs.append(bench.run_tool("release_1", hosts[:1], ["--compress", choice]))
                    result = median_run(runs)
                    compress_rows.append((link, choice, result))
                    print(f"compress {link} {choice}: {result['wall']:.1f}s {fmt_size(result['sent'])}", file=sys.stderr)
                hosts[0].stop_link()
        if args.memory_profile:
            # The tool's peak memory on a release with many more files: first sync and no-change resync.
            main_count = bench.file_count
            bench.make_fixture(args.memory_profile, rebuild=False)
            for host in hosts[:1]:
                host.start_link("plain", args.one_way_ms)
            bench.write_ssh_config()
            hosts[0].reset()
            first = bench.run_tool("release_1", hosts[:1])
            again = bench.run_tool("release_1", hosts[:1])
            memory = (bench.file_count, first, again)
            bench.file_count = main_count
            print(f"memory {memory[0]} files: first {first['memory_kib'] / 1024:.1f} MiB, resync {again['memory_kib'] / 1024:.1f} MiB", file=sys.stderr)
    finally:
        for host in hosts:
            host.down()
        shutil.rmtree(bench.base, ignore_errors=True)

    one_worker = next((r["tool"] for _, scenario, r in rows if scenario == "fleet 1"), None)
    lines = [f"Fixture: {args.profile} ({bench.file_count} files in the release); wan = {2 * args.one_way_ms:.0f} ms round trip through a delay proxy; "
             f"median of {args.repeat} runs per contender, order rotated, dirty pages written out (sync) before each run; before a no-change or new-release run "
             f"the worker's services write files of their own into deployment-data. stream = the first copy as one tar | zstd stream over an open "
             f"connection (same entries as rsync picks), no service handling. fleet N = a new release (3% of files changed) to N workers at once "
             f"through the main server's shared, limited uplink; the spec's tool syncs one worker per run (N times its one-worker time). CPU s: "
             f"the main server's side (the tool and its rsync, ssh, zstd) / the whole {os.cpu_count()}-core machine, which the workers share here.",
             "",
             "| link | scenario | spec s | tool s | floor s | stream s | tool/spec | tool/floor | downtime spec / tool | sent spec / tool / floor | ssh handshakes spec / tool | tool peak memory | tool CPU s main / all | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    seconds = lambda v: f"{v:.1f}"
    for link, scenario, r in rows:
        s, t, f, st = r.get("spec"), r["tool"], r["floor"], r.get("stream")
        note = ""
        if st:
            note = f"stream/floor {ratio(st, f)}, sent {fmt_size(st['sent'])}, tree {'identical' if st['identical'] else 'DIFFERS'} to rsync's"
        elif scenario.startswith("fleet") and one_worker:
            note = f"tool {ratio(t, one_worker)} of one worker"
        lines.append(f"| {link} | {scenario} | {cell(s, 'wall', seconds)} | {t['wall']:.1f} | {f['wall']:.1f} | {cell(st, 'wall', seconds)} | "
                     f"{ratio(t, s)} | {ratio(t, f)} | {cell(s, 'downtime', seconds)} / {t['downtime']:.1f} s | "
                     f"{cell(s, 'sent', fmt_size)} / {fmt_size(t['sent'])} / {fmt_size(f['sent'])} | {cell(s, 'handshakes', str)} / {t['handshakes'] if 'handshakes' in t else '-'} | "
                     f"{t['memory_kib'] / 1024:.1f} MiB | {t['cpu_main']:.1f} / {t['cpu_all']:.1f} | {note} |")
    if compress_rows:
        lines += ["", "First copy of the release by compression (tool, median of the same runs):", "",
                  "| link | compression | wall s | sent |", "|---|---|---|---|"]
        lines += [f"| {link} | {choice} | {r['wall']:.1f} | {fmt_size(r['sent'])} |" for link, choice, r in compress_rows]
    if memory:
        count, first, again = memory
        lines += ["", f"Tool peak memory with a {count}-file release (plain link): first sync {first['memory_kib'] / 1024:.1f} MiB "
                      f"({first['wall']:.1f} s), no-change resync {again['memory_kib'] / 1024:.1f} MiB ({again['wall']:.1f} s)."]
    table = "\n".join(lines)
    print(table)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(table + "\n")


if __name__ == "__main__":
    main()
