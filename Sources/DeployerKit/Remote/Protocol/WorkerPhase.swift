/// One phase of the worker script (`Remote/Scripts/worker/*.sh`) with its arguments: the only way
/// the tool asks a worker for anything. `arguments(workspace:)` is the script's command line
/// (`PHASE WORKSPACE --NAME=VALUE... -- LIST...`); the script's header documents each phase.
public enum WorkerPhase: Sendable, Equatable {
    /// Checks the worker; with `lock`, then takes the per-site lock. With `liveDigest`, also
    /// reports the digest of the live copy when it is that release and the verified one.
    case preflight(site: String, lock: LockRequest?, liveDigest: LiveDigestRequest?)
    /// Releases the lock held by `token`, first appending `history` to the site's history and
    /// recording `record` as the last sync (status reads it).
    case unlock(token: String, history: HistoryEntry?, record: [String])
    /// The last `limit` entries of the site's history and the releases marked bad (read-only).
    case history(limit: Int)
    /// Installs a least-privilege key for the site: the worker script staged beside the state
    /// (its checksum `script`), the dispatcher, and the authorized_keys entry for `key`
    /// (`TYPE:BASE64`).
    case authorize(site: String, script: String, key: String)
    /// The live generation's RQ workers as the site's queue Redis knows them (read-only).
    case jobs(site: String)
    /// Read-only facts for `remote-worker status` (the live copy's digest with these excludes).
    case status(site: String, digestExcludes: [String])
    /// The digest of a release's files and links on the worker.
    case digest(release: String, excludes: [String])
    /// Removes what unfinished syncs left and creates the staging directory.
    case stagePrepare(stage: String)
    /// Links the worker configs in the staged release and puts it in place (or marks it for a swap).
    case stageActivate(site: String, release: String, stage: String, excludes: [String])
    /// Removes a staged release that will not go live.
    case unstage(stage: String)
    /// The switch, run by the worker as one detached job (see `SwitchRequest`).
    case switchRelease(SwitchRequest)
    /// Keeps the `keep` newest releases, never the live or the previous one.
    case prune(keep: Int)
    /// In place: stops every service of the site's compose project.
    case stop(StopRules)
    /// In place: links the worker configs and points `frappe-bench` at `release`.
    case activate(site: String, release: String)
    /// In place: starts the services and checks them.
    case start(StartRequest)
    /// The generations told to stop and how far their drains are (read-only).
    case drains

    /// The phase's name as the script takes it.
    public var name: String {
        switch self {
        case .preflight: "preflight"
        case .unlock: "unlock"
        case .history: "history"
        case .authorize: "authorize"
        case .jobs: "jobs"
        case .status: "status"
        case .digest: "digest"
        case .stagePrepare: "stage-prepare"
        case .stageActivate: "stage-activate"
        case .unstage: "unstage"
        case .switchRelease: "switch"
        case .prune: "prune"
        case .stop: "stop"
        case .activate: "activate"
        case .start: "start"
        case .drains: "drains"
        }
    }

    /// The script's arguments for this phase on the worker's `workspace`.
    public func arguments(workspace: String) -> [String] {
        var options: [(String, String?)] = []
        var list: [String] = []
        switch self {
        case .preflight(let site, let lock, let digest):
            options = [("site", site), ("token", lock?.token), ("holder", lock?.holder), ("kind", lock?.kind), ("origin", lock?.origin),
                       ("takeover", lock?.takeover), ("digest", digest?.release)]
            list = digest?.excludes ?? []
        case .unlock(let token, let history, let record):
            options = [("token", token), ("history", history?.line)]
            list = record
        case .history(let limit):
            options = [("limit", String(limit))]
        case .authorize(let site, let script, let key):
            options = [("site", site), ("script", script), ("key", key)]
        case .jobs(let site):
            options = [("site", site)]
        case .status(let site, let excludes):
            options = [("site", site)]
            list = excludes
        case .digest(let release, let excludes):
            options = [("release", release)]
            list = excludes
        case .stagePrepare(let stage), .unstage(let stage):
            options = [("stage", stage)]
        case .stageActivate(let site, let release, let stage, let excludes):
            options = [("site", site), ("release", release), ("stage", stage)]
            list = excludes
        case .switchRelease(let request):
            options = [("site", request.site), ("release", request.release), ("project", request.generation), ("stage", request.swapFrom),
                       ("stop", request.stop.argument), ("settle", String(request.start.settleSeconds)),
                       ("deps", request.start.dependenciesArgument), ("verified", request.verified)]
            list = request.start.services
        case .prune(let keep):
            options = [("keep", String(keep))]
        case .stop(let rules):
            options = [("stop", rules.argument)]
        case .activate(let site, let release):
            options = [("site", site), ("release", release)]
        case .start(let request):
            options = [("settle", String(request.settleSeconds)), ("deps", request.dependenciesArgument)]
            list = request.services
        case .drains:
            break
        }
        let named = options.compactMap { name, value in value.map { "--\(name)=\($0)" } }
        return [self.name, workspace] + named + (list.isEmpty ? [] : ["--"] + list)
    }
}

/// Taking the per-site lock: this sync's token, who it is for people, its process identity (the
/// proof a later sync needs to take it over), and a dead holder's token to take over.
public struct LockRequest: Sendable, Equatable {
    public var token: String
    public var holder: String
    /// `sync` or `rollback`: recorded with the lock, for the history entry the next operation
    /// writes if this one ends without releasing it.
    public var kind: String?
    public var origin: String?
    public var takeover: String?

    public init(token: String, holder: String, kind: String? = nil, origin: String? = nil, takeover: String? = nil) {
        self.token = token
        self.holder = holder
        self.kind = kind
        self.origin = origin
        self.takeover = takeover
    }
}

/// The live copy's digest a check asks for: only when `release` is the live one (and verified),
/// with the release's exclude patterns.
public struct LiveDigestRequest: Sendable, Equatable {
    public var release: String
    public var excludes: [String]

    public init(release: String, excludes: [String]) {
        self.release = release
        self.excludes = excludes
    }
}

/// How long each service gets to stop, as patterns (first match wins).
public struct StopRules: Sendable, Equatable {
    public var rules: [(pattern: String, seconds: Int)]

    public init(_ rules: [(pattern: String, seconds: Int)]) { self.rules = rules }

    /// bench's own waits (its supervisor programs' stopwaitsecs), or one wait for every service.
    public static func forWorker(stopTimeout: Int?) -> StopRules {
        if let stopTimeout { return StopRules([("*", stopTimeout)]) }
        return StopRules([("long-worker", 1560), ("*-worker", 360), ("*", 10)])
    }

    /// The wait for `service` under these rules (the script decides the same with `case`).
    public func seconds(for service: String) -> Int {
        rules.first { Self.matches(service, $0.pattern) }?.seconds ?? 10
    }

    static func matches(_ service: String, _ pattern: String) -> Bool {
        if pattern == "*" { return true }
        if pattern.hasPrefix("*") { return service.hasSuffix(pattern.dropFirst()) }
        return service == pattern
    }

    var argument: String { rules.map { "\($0.pattern)=\($0.seconds)" }.joined(separator: ",") }

    public static func == (lhs: StopRules, rhs: StopRules) -> Bool { lhs.argument == rhs.argument }
}

/// Starting services: exactly `services`, then the checks (dependencies reachable from the
/// worker, every service up after `settleSeconds` and not restarted).
public struct StartRequest: Sendable, Equatable {
    public var services: [String]
    public var settleSeconds: Int
    public var dependencies: [WorkerDependency]

    public init(services: [String], settleSeconds: Int, dependencies: [WorkerDependency]) {
        self.services = services
        self.settleSeconds = settleSeconds
        self.dependencies = dependencies
    }

    var dependenciesArgument: String? {
        dependencies.isEmpty ? nil : dependencies.map(\.argument).joined(separator: ",")
    }
}

/// The handover to `release`: its services start as a new generation (`generation`, a Compose
/// project pinned to the release) beside the running one and are checked with `start`; the
/// scheduler moves; then the old generation is told to stop, each service with its wait under
/// `stop`, and drains on its own release. On failure the new generation goes and the old one
/// serves on. `swapFrom` is a staged fresh copy of a release that is live already.
public struct SwitchRequest: Sendable, Equatable {
    public var site: String
    public var release: String
    /// The Compose project of the new generation (`Generation.name`).
    public var generation: String
    public var swapFrom: String?
    public var stop: StopRules
    public var start: StartRequest
    /// MAIN_DIGEST:COPY_DIGEST, recorded with the release once it runs: a complete, checksummed
    /// copy that a later sync may keep. MAIN_DIGEST alone for a copy just staged: the switch takes
    /// its digest during the settle time (with the excludes stage-activate recorded).
    public var verified: String?

    public init(site: String, release: String, generation: String, swapFrom: String? = nil, stop: StopRules, start: StartRequest,
                verified: String? = nil) {
        self.site = site
        self.release = release
        self.generation = generation
        self.swapFrom = swapFrom
        self.stop = stop
        self.start = start
        self.verified = verified
    }
}
