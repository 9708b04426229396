import Foundation

/// How a phase of the worker script ended (its exit code, documented in the script's header).
public enum WorkerExit: Int32, Sendable, Equatable {
    case ok = 0
    case usage = 2
    /// The worker is not ready; nothing was changed.
    case notReady = 3
    case activationFailed = 4
    case servicesFailed = 5
    /// Another sync holds the lock.
    case locked = 6
    /// The switch failed and the previous release runs again.
    case rolledBack = 7
    /// The switch failed and could not be undone.
    case switchFailed = 8
}

/// The `key=value` lines a phase prints, read in one place; every answer below is decoded from them.
public struct WorkerFacts: Sendable, Equatable {
    private var values: [String: String]

    /// Reads `key=value` lines (the first `=` splits; later lines win).
    public init(_ output: String) {
        values = [:]
        for line in output.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
    }

    /// The value of `key`, nil when absent or empty.
    func text(_ key: String) -> String? {
        guard let value = values[key], !value.isEmpty else { return nil }
        return value
    }

    /// The space-separated words of `key` (service or release names), sorted.
    func words(_ key: String) -> [String] {
        (values[key] ?? "").split(separator: " ").map(String.init).sorted()
    }

    /// The words of `key` in the order given.
    func list(_ key: String) -> [String] {
        (values[key] ?? "").split(separator: " ").map(String.init)
    }

    func date(_ key: String) -> Date? { text(key).flatMap(TimeInterval.init).map(Date.init(timeIntervalSince1970:)) }
    func number(_ key: String) -> Double? { text(key).flatMap(Double.init) }
    func flag(_ key: String) -> Bool { values[key] == "yes" }

    /// The values of `KEY_1`, `KEY_2`, ... in order.
    func indexed(_ key: String) -> [String] {
        var found: [String] = []
        while let value = values["\(key)_\(found.count + 1)"] { found.append(value) }
        return found
    }

    /// Keys with `prefix`, without it, e.g. `last_` for the last-sync record.
    func withPrefix(_ prefix: String) -> [String: String] {
        var found: [String: String] = [:]
        for (key, value) in values where key.hasPrefix(prefix) { found[String(key.dropFirst(prefix.count))] = value }
        return found
    }
}

/// What the worker recorded when a copy of a release went live complete and checksummed.
public struct VerifiedCopy: Sendable, Equatable {
    public var release: String
    public var mainDigest: String
    public var copyDigest: String

    public init(release: String, mainDigest: String, copyDigest: String) {
        self.release = release
        self.mainDigest = mainDigest
        self.copyDigest = copyDigest
    }

    /// `MAIN_DIGEST:COPY_DIGEST`, as the switch records it again.
    public var record: String { "\(mainDigest):\(copyDigest)" }
}

/// The releases a worker holds (preflight and status report them alike).
public struct WorkerReleases: Sendable, Equatable {
    /// The release `frappe-bench` points at; nil on a worker never synced.
    public var live: String?
    /// The release live before the last switch.
    public var previous: String?
    /// Every release directory on the worker, sorted.
    public var all: [String]
    public var verified: VerifiedCopy?
    /// The live copy's digest now, when it is the verified one and the phase was asked for it.
    public var liveDigest: String?
    /// The fingerprint of the live release's own worker configs (the copies it went live with);
    /// nil when it has none.
    public var liveConfigs: String?
    /// Releases whose last switch on this worker failed its checks (rolled back automatically):
    /// syncing one again needs --force.
    public var bad: [String] = []

    init(_ facts: WorkerFacts) {
        bad = facts.words("bad_releases")
        live = facts.text("current_release")
        previous = facts.text("previous_release")
        all = facts.words("releases")
        if let release = facts.text("verified_release"), let main = facts.text("verified_main"), let copy = facts.text("verified_copy") {
            verified = VerifiedCopy(release: release, mainDigest: main, copyDigest: copy)
        }
        liveDigest = facts.text("live_digest")
        liveConfigs = facts.text("live_configs")
    }

    public init(live: String?, previous: String? = nil, all: [String], verified: VerifiedCopy? = nil, liveDigest: String? = nil,
                liveConfigs: String? = nil) {
        self.liveConfigs = liveConfigs
        self.live = live
        self.previous = previous
        self.all = all
        self.verified = verified
        self.liveDigest = liveDigest
    }
}

/// A generation told to stop: it finishes its running jobs on its own release, detached on the
/// worker, each service within its stop wait (`drain_N=` facts).
public struct DrainRecord: Sendable, Equatable, Encodable {
    /// Its Compose project.
    public var generation: String
    public var release: String
    public var since: Date?
    /// Still draining: told to stop, and services of it still run.
    public var draining: Bool
    /// Services still running (finishing their jobs).
    public var running: [String]
    /// Services whose stop wait ran out, so Docker killed them (and the jobs they ran).
    public var killed: [String]
    public var finished: Date?

    /// A generation the switch just told to stop, with the services still running then.
    init(told generation: String, release: String, running: [String]) {
        self.generation = generation
        self.release = release
        self.running = running.sorted()
        draining = !running.isEmpty
        killed = []
    }

    /// Reads `PROJECT RELEASE SINCE STATE RUNNING KILLED DONE` (lists comma-separated, - for none).
    init?(_ line: String) {
        let fields = line.split(separator: " ").map(String.init)
        guard fields.count == 7 else { return nil }
        func list(_ text: String) -> [String] { text == "-" ? [] : text.split(separator: ",").map(String.init).sorted() }
        generation = fields[0]
        release = fields[1]
        since = TimeInterval(fields[2]).map(Date.init(timeIntervalSince1970:))
        running = list(fields[4])
        draining = fields[3] == "draining" && !running.isEmpty
        killed = list(fields[5])
        finished = TimeInterval(fields[6]).map(Date.init(timeIntervalSince1970:))
    }

    public static func all(_ facts: WorkerFacts) -> [DrainRecord] {
        facts.indexed("drain").compactMap(DrainRecord.init)
    }
}

/// What preflight found on the worker.
public struct PreflightAnswer: Sendable, Equatable {
    /// The services of `docker-compose.workers.yml`, sorted.
    public var workerServices: [String]
    public var releases: WorkerReleases
    /// Services of the site's project running now, sorted.
    public var running: [String]
    /// The worker rsync's compression and checksum lists.
    public var rsyncCompress: [String]
    public var rsyncChecksums: [String]
    /// How the lock was taken, when it was asked for.
    public var lock: LockTaken?
    /// Generations told to stop by earlier handovers: still draining, or done (with what they killed).
    public var drains: [DrainRecord]

    public init(_ facts: WorkerFacts) {
        drains = DrainRecord.all(facts)
        workerServices = facts.words("worker_services")
        releases = WorkerReleases(facts)
        running = facts.words("running")
        rsyncCompress = facts.list("rsync_compress")
        rsyncChecksums = facts.list("rsync_checksum")
        if let previous = facts.text("took_over") {
            lock = .tookOver(from: previous)
        } else if let previous = facts.text("stale_lock") {
            lock = .recovered(from: previous)
        } else if facts.flag("locked") {
            lock = .taken
        }
    }
}

/// How the per-site lock was taken.
public enum LockTaken: Sendable, Equatable {
    case taken
    /// From a holder known dead by this host (its process is gone).
    case tookOver(from: String)
    /// From a holder whose ssh session on the worker is gone.
    case recovered(from: String)

    public var note: String {
        switch self {
        case .taken: "held"
        case .tookOver(let previous): "taken over from \(previous), which is no longer running"
        case .recovered(let previous): "recovered from \(previous), which did not finish"
        }
    }
}

/// Who holds the lock, when preflight was refused it (exit `locked`).
public struct LockHeld: Sendable, Equatable {
    public var holder: String
    public var since: Date?
    public var token: String?
    /// The holder's process identity, when it recorded one.
    public var origin: ProcessIdentity?
    /// A switch of the holder still runs on the worker: never taken over.
    public var switchRunning: Bool

    public init(_ facts: WorkerFacts) {
        holder = facts.text("held_by") ?? "an unknown sync"
        since = facts.date("held_since")
        token = facts.text("held_token")
        origin = facts.text("held_origin").flatMap(ProcessIdentity.init)
        switchRunning = facts.flag("switch_running")
    }
}

/// What stage-activate did with a staged release.
public struct StageActivateAnswer: Sendable, Equatable {
    /// The release is live: the switch swaps the staged copy in instead of a rename now.
    public var swap: Bool

    public init(_ facts: WorkerFacts) {
        swap = facts.flag("swap")
    }
}

/// How a switch ended, whatever its exit.
public struct SwitchAnswer: Sendable, Equatable {
    public var exit: WorkerExit?
    /// The generations told to stop, draining on their own release when the switch returned.
    public var draining: [DrainRecord]
    /// `frappe-bench` moves only when the old generation has drained (it read through the link).
    public var flipDeferred: Bool
    /// From the old scheduler's stop to the new one's start.
    public var schedulerGapSeconds: Double?
    /// The release live before the switch.
    public var previous: String?
    public var running: [String]
    /// Services down: from stopping them to all running again.
    public var downtimeSeconds: Double?
    /// Why the new release did not start (the first failed check), when it did not.
    public var reason: String?
    /// After a failure: the release started again, or nil when none could be.
    public var rolledBackTo: String?

    public init(_ facts: WorkerFacts, exitCode: Int32) {
        exit = WorkerExit(rawValue: exitCode)
        // draining_N=PROJECT RELEASE RUNNING (comma-separated, - for none)
        draining = facts.indexed("draining").compactMap { line in
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count == 3 else { return nil }
            return DrainRecord(told: fields[0], release: fields[1], running: fields[2] == "-" ? [] : fields[2].split(separator: ",").map(String.init))
        }
        flipDeferred = facts.text("flip") == "deferred"
        schedulerGapSeconds = facts.number("scheduler_gap_ms").map { $0 / 1000 }
        previous = facts.text("previous")
        running = facts.words("running")
        downtimeSeconds = facts.number("downtime_ms").map { $0 / 1000 }
        reason = facts.text("reason")
        rolledBackTo = facts.text("rolled_back").flatMap { $0 == "none" || $0 == "failed" ? nil : $0 }
    }
}

/// The services running after a start, and when they were up (the worker's clock, ms).
public struct StartAnswer: Sendable, Equatable {
    public var running: [String]
    public var upMilliseconds: Double?

    public init(_ facts: WorkerFacts) {
        running = facts.words("running")
        upMilliseconds = facts.number("up_ms")
    }
}

/// When a stop began (the worker's clock, ms).
public struct StopAnswer: Sendable, Equatable {
    public var stoppingMilliseconds: Double?
    public init(_ facts: WorkerFacts) { stoppingMilliseconds = facts.number("stopping_ms") }
}

/// The releases a prune removed.
public struct PruneAnswer: Sendable, Equatable {
    public var pruned: [String]
    /// Releases that could not be removed (out of the release list; the next staging finishes them).
    public var failed: [String]
    /// The first error of a removal that failed.
    public var error: String?
    public init(_ facts: WorkerFacts) {
        pruned = facts.list("pruned")
        failed = facts.list("prune_failed")
        error = facts.text("prune_error")
    }
}

/// What preparing a staging directory found: a live release brought back from its set-aside
/// copy, or missing altogether, and leftovers it could not remove.
public struct StagePrepareAnswer: Sendable, Equatable {
    public var repaired: String?
    public var liveMissing: String?
    public var leftovers: [String]
    public init(_ facts: WorkerFacts) {
        repaired = facts.text("repaired")
        liveMissing = facts.text("live_missing")
        leftovers = facts.list("leftovers")
    }
}

/// A release's digest on the worker.
public struct DigestAnswer: Sendable, Equatable {
    public var digest: String?
    public init(_ facts: WorkerFacts) { digest = facts.text("digest") }
}

/// What `status` reads on a worker.
public struct StatusAnswer: Sendable, Equatable {
    public struct LockRecord: Sendable, Equatable, Encodable {
        public var holder: String
        public var since: Date?
        public var alive: Bool
    }

    /// The last sync or rollback, recorded when it released the lock.
    public struct LastSyncRecord: Sendable, Equatable, Encodable {
        public var kind: String?
        public var release: String?
        public var by: String?
        public var at: Date?
        public var seconds: Double?
        public var downtimeSeconds: Double?
    }

    public var releases: WorkerReleases
    public var workerServices: [String]
    /// Each service of the site's project and its container state (running, exited, ...).
    public var services: [String: String]
    public var lock: LockRecord?
    public var lastSync: LastSyncRecord?
    public var drains: [DrainRecord]
    /// RQ's suspend flag in the queue's Redis (nil when no live worker could read it).
    public var queueSuspended: Bool?

    public init(_ facts: WorkerFacts) {
        drains = DrainRecord.all(facts)
        queueSuspended = facts.text("queue_suspended").map { $0 == "yes" }
        releases = WorkerReleases(facts)
        workerServices = facts.words("worker_services")
        var services: [String: String] = [:]
        for pair in facts.words("service_states") {
            let parts = pair.split(separator: ":", maxSplits: 1).map(String.init)
            if parts.count == 2 { services[parts[0]] = parts[1] }
        }
        self.services = services
        if let holder = facts.text("lock_holder") {
            lock = LockRecord(holder: holder, since: facts.date("lock_since"), alive: facts.flag("lock_alive"))
        }
        let last = facts.withPrefix("last_")
        if last["release"] != nil {
            let record = WorkerFacts(last.map { "\($0.key)=\($0.value)" }.joined(separator: "\n"))
            lastSync = LastSyncRecord(kind: record.text("kind"), release: record.text("release"), by: record.text("by"),
                                      at: record.date("at"), seconds: record.number("seconds"), downtimeSeconds: record.number("downtime"))
        }
    }
}
