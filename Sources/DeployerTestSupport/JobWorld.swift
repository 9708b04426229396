import DeployerKit
import Foundation

/// The job world of the tests: real RQ workers, run from a release's own virtualenv against the
/// main side's real Redis, processing jobs that account for themselves (scripts/jobs/).
///
/// A fixture release made with `jobs: true` carries `env/` (a copy of the testbed's virtualenv:
/// Debian's python3 with RQ, made by `scripts/testbed.sh install`) and `apps/fdtb_jobs` (the app:
/// an RQ worker launcher with bench's queues, the jobs, a scheduler; `release.py` and `finish.py`
/// name the release). A testbed site made with `jobs` runs it for `short-worker`, `long-worker` and
/// `schedule`.
public enum JobWorld {
    /// The testbed's virtualenv that releases copy (FDTB_JOBS_CACHE, as testbed.sh has it).
    public static var environmentTemplate: String {
        (ProcessInfo.processInfo.environment["FDTB_JOBS_CACHE"] ?? "/var/cache/fdtb") + "/jobs-env"
    }

    /// A Python with RQ, for the driver and the accountant.
    public static var python: String { environmentTemplate + "/bin/python" }

    static var appSources: String { PackagePaths.root + "/scripts/jobs/app" }
    static var script: String { PackagePaths.root + "/scripts/jobs/jobworld.py" }

    /// Writes the job world into release directory `release` named `name`.
    /// `deafService` runs but never listens on the queue (it stays up and takes no job).
    static func install(release: String, name: String, site: String, brokenService: String?, deafService: String? = nil) throws {
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw FixtureError("the job world's virtualenv \(environmentTemplate) is missing: run scripts/testbed.sh install")
        }
        try run("/bin/cp", ["-a", environmentTemplate, release + "/env"])
        try? FileManager.default.removeItem(atPath: release + "/env/.fdtb-requirements")
        let app = release + "/apps/fdtb_jobs"
        try FileManager.default.createDirectory(atPath: app, withIntermediateDirectories: true)
        try run("/bin/cp", ["-R", appSources + "/launch.sh", appSources + "/fdtb_jobs", app + "/"])
        let version = name.filter(\.isNumber)
        try Data("RELEASE = \"\(name)\"\nVERSION = \"\(version)\"\nSITE = \"\(site)\"\n".utf8)
            .write(to: URL(fileURLWithPath: app + "/fdtb_jobs/release.py"))
        try Data("# Imported first at a job's end: names the release whose files the job read then.\nRELEASE = \"\(name)\"\n".utf8)
            .write(to: URL(fileURLWithPath: app + "/fdtb_jobs/finish.py"))
        if let brokenService { try Data(brokenService.utf8).write(to: URL(fileURLWithPath: app + "/broken")) }
        if let deafService { try Data(deafService.utf8).write(to: URL(fileURLWithPath: app + "/deaf")) }
        // Installed into the virtualenv the way bench installs apps: a path under the bench
        // directory the container sees (so an unpinned worker reads through frappe-bench).
        let lib = release + "/env/lib"
        guard let python = try FileManager.default.contentsOfDirectory(atPath: lib).first(where: { $0.hasPrefix("python3") }) else {
            throw FixtureError("\(lib) has no python3.* directory")
        }
        try Data("/workspace/frappe-bench/apps/fdtb_jobs\n".utf8)
            .write(to: URL(fileURLWithPath: "\(lib)/\(python)/site-packages/fdtb_jobs.pth"))
    }

    static func run(_ executable: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw FixtureError("\(executable) \(arguments.joined(separator: " ")) exited with \(process.terminationStatus)")
        }
    }

    /// Reads the accounting of run `run` from the queue's Redis at `redis`, after waiting up to
    /// `wait` for every job of the run to end.
    public static func account(redis: String, run: String, wait: Duration = .seconds(120)) async throws -> JobAccount {
        let output = try await SubprocessRunner().run(Command(python, [script, "account", "--redis", redis, "--run", run,
                                                                        "--wait", String(wait.components.seconds)]))
        guard output.succeeded else { throw FixtureError("jobworld.py account failed: \(output.standardErrorTail.joined(separator: " / "))") }
        return try JSONDecoder().decode(JobAccount.self, from: Data(output.standardOutput.utf8))
    }
}

/// Enqueues jobs continuously into the queue's Redis (scripts/jobs/jobworld.py drive) until stopped.
public final class LoadDriver: @unchecked Sendable {
    public let run: String
    public let redis: String
    let process = Process()

    /// Starts driving: `rate` jobs per second on short and default, each `seconds` long, and first
    /// one job of `long` seconds on the long queue (none when 0).
    public init(redis: String, run: String = "run\(Int.random(in: 100_000...999_999))", rate: Double = 4,
                seconds: Double = 0.1, long: Double = 0) throws {
        self.run = run
        self.redis = redis
        process.executableURL = URL(fileURLWithPath: JobWorld.python)
        process.arguments = [JobWorld.script, "drive", "--redis", redis, "--run", run, "--rate", String(rate),
                             "--seconds", String(seconds), "--long", String(long), "--duration", "900"]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
    }

    /// Stops enqueuing (SIGTERM; the driver finishes the job it is enqueuing) and waits for it,
    /// at most 10 s before it is killed. Polls: Foundation's waitUntilExit spins a core on Linux.
    public func stop() {
        guard process.isRunning else { return }
        process.terminate()
        for _ in 0..<200 where process.isRunning { usleep(50_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    /// Stops, then accounts for every job the run enqueued.
    public func finish(wait: Duration = .seconds(120)) async throws -> JobAccount {
        stop()
        return try await JobWorld.account(redis: redis, run: run, wait: wait)
    }

    deinit { stop() }
}

/// What became of every job of a run (`jobworld.py account`).
public struct JobAccount: Decodable, Sendable, CustomStringConvertible {
    public struct Job: Decodable, Sendable {
        public var id: String
        public var queue: String
        public var enqueued: Double
        public var seconds: Double
        public var status: String?
        public var start: Double?
        public var end: Double?
        /// The release of the worker that ran the job, and the release whose file it imported at its end.
        public var release: String?
        public var endRelease: String?
        public var worker: String?
        public var lastLife: Double?

        enum CodingKeys: String, CodingKey {
            case id, queue, enqueued, seconds, status, start, end, release, worker
            case endRelease = "end_release", lastLife = "last_life"
        }
    }

    public struct QueueFlow: Decodable, Sendable {
        public var jobs: Int
        /// The longest time no job of this queue started while one waited.
        public var longestGap: Double
        public var gapEndsAt: Double?

        enum CodingKeys: String, CodingKey {
            case jobs, longestGap = "longest_gap", gapEndsAt = "gap_ends_at"
        }
    }

    public struct Scheduler: Decodable, Sendable {
        public var scheduler: String
        public var release: String
        public var first: Double
        public var last: Double
        public var ticks: Int
    }

    public struct Registries: Decodable, Sendable {
        public var started: [String]
        public var failed: [String]
        public var canceled: [String]
    }

    public var run: String
    public var jobs: Int
    public var finishedOnce: Int
    public var neverStarted: [String]
    public var interrupted: [String]
    public var ranTwice: [String]
    public var failed: [String]
    public var registries: Registries
    public var mixedRelease: [String]
    public var releases: [String: Int]
    public var queues: [String: QueueFlow]
    public var longJobs: [Job]
    public var detail: [Job]
    public var schedulers: [Scheduler]
    public var schedulerOverlapSeconds: Double
    public var ok: Bool

    enum CodingKeys: String, CodingKey {
        case run, jobs, finishedOnce = "finished_once", neverStarted = "never_started", interrupted
        case ranTwice = "ran_twice", failed, registries, mixedRelease = "mixed_release", releases, queues
        case longJobs = "long_jobs", detail, schedulers, schedulerOverlapSeconds = "scheduler_overlap_seconds", ok
    }

    /// The longest time, on any queue with steady load (short, default), that no job started while one waited.
    public var longestGap: Double {
        queues.filter { $0.key != "long" }.values.map(\.longestGap).max() ?? 0
    }

    public var description: String {
        "run \(run): \(jobs) jobs, \(finishedOnce) finished once; never started \(neverStarted.count), interrupted \(interrupted.count), "
            + "ran twice \(ranTwice.count), failed \(failed.count), mixed release \(mixedRelease.count); registries started "
            + "\(registries.started.count) failed \(registries.failed.count) canceled \(registries.canceled.count); releases \(releases); "
            + "gaps " + queues.keys.sorted().map { "\($0) \(String(format: "%.2f", queues[$0]!.longestGap)) s" }.joined(separator: ", ")
            + "; schedulers \(schedulers.count), overlap \(schedulerOverlapSeconds) s"
    }
}
