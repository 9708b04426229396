/// Everything one sync needs, after layering and validation: nothing in here is unchecked input.
public struct SyncSettings: Sendable, Equatable {
    public var siteName: String
    /// The local FM benches root (`~/frappe/sites` by default).
    public var benchesPath: String
    public var workers: [WorkerSettings]
    /// Things said about the input that did not stop the sync (unknown environment variables).
    public var warnings: [String] = []
    /// How many workers sync at once.
    public var parallel = 4
    /// After the first failed worker, start no more (the running ones finish).
    public var failFast = false
    /// Canary workers and batches: in which waves the workers go.
    public var rollout = Rollout()
    /// Commands run on this server around each worker's sync.
    public var hooks = Hooks()
    /// How `remote-worker watch` follows the site's release.
    public var watch = ReleaseWatch.Options()

    public init(siteName: String, benchesPath: String, workers: [WorkerSettings]) {
        self.siteName = siteName
        self.benchesPath = benchesPath
        self.workers = workers
    }
}

/// How a sync replaces the worker's release.
public enum SyncStrategy: String, Sendable, Equatable, CaseIterable, Encodable {
    /// Transfer into a new directory while the old workers run, then switch in seconds (default).
    case staged
    /// The spec's literal order: stop, transfer over the live release, link, start. For workers
    /// without room for two releases; services are down for the whole transfer.
    case inPlace = "in-place"
}

/// rsync compression as a setting. Never zlib: where neither zstd nor lz4 is on both sides, `auto`
/// sends uncompressed, and an explicit choice the worker lacks is an error.
public enum CompressChoice: String, Sendable, Equatable, CaseIterable {
    case auto, zstd, lz4, off
}

/// One worker host and how to reach it.
public struct WorkerSettings: Sendable, Equatable {
    public var server: String
    public var sshUser: String
    public var sshPort: Int
    /// The worker's workspace; the worker's compose files sit in its parent (its FM site dir).
    public var workspacePath: String
    /// An ssh_config file to use instead of the user's (`ssh -F`); nil uses OpenSSH's own lookup.
    public var sshConfig: String?
    /// Trust an unknown host key on first use (StrictHostKeyChecking=accept-new); never a changed one.
    public var acceptNewHostKey: Bool
    /// Include paths relative to the workspace, normalized.
    public var includeDirs: [String]
    public var includeFiles: [String]
    /// rsync exclude patterns added to the built-in ones.
    public var excludePatterns: [String]
    /// Extra `ssh -o` options (placed first, so they win over ssh_config files).
    public var sshOptions: [String] = []
    /// The private key of a least-privilege key installed by `remote-worker authorize`: when set,
    /// the tool connects with it and speaks to the worker's dispatcher.
    public var restrictedKey: String?
    public var strategy: SyncStrategy = .staged
    /// Releases kept on the worker after a successful switch (the live and previous always are).
    public var keepReleases = 3
    /// Seconds each service gets to stop; nil uses bench's waits (long-worker 1560, other workers 360).
    public var stopTimeout: Int?
    /// Seconds to wait for another sync's lock before giving up.
    public var lockWait = 0
    /// The base of every remote phase's time limit, in seconds (`WorkerPhase.timeLimit`): work on
    /// files gets this long, phases that stop or start services their stop waits on top, checks
    /// at most 120 s; rsync gives up after this long without I/O.
    public var phaseTimeout = 600
    /// rsync --bwlimit in KiB/s, so a sync cannot saturate the main server's link.
    public var bandwidthLimit: Int?
    /// Seconds services must stay up after a start, without restarting, to count as healthy.
    public var settleSeconds = 2
    /// Whether this worker runs `schedule`; a site wants exactly one scheduler.
    public var scheduler = true
    /// rsync's compression; `auto` takes zstd, else lz4, where both sides have it, else none.
    public var compress: CompressChoice = .auto
    /// Parallel rsync streams for a staged copy of a release, first or on a base (1: one stream;
    /// 2: `env/` beside the rest).
    public var releaseStreams = 2

    public init(
        server: String, sshUser: String = "frappe", sshPort: Int = 22, workspacePath: String,
        sshConfig: String? = nil, acceptNewHostKey: Bool = false, includeDirs: [String] = [],
        includeFiles: [String] = [], excludePatterns: [String] = []
    ) {
        self.server = server
        self.sshUser = sshUser
        self.sshPort = sshPort
        self.workspacePath = workspacePath
        self.sshConfig = sshConfig
        self.acceptNewHostKey = acceptNewHostKey
        self.includeDirs = includeDirs
        self.includeFiles = includeFiles
        self.excludePatterns = excludePatterns
    }

    /// The worker's FM site dir, which holds docker-compose.yml and docker-compose.workers.yml.
    public var siteDirectory: String {
        let parent = workspacePath.split(separator: "/").dropLast().joined(separator: "/")
        return "/" + parent
    }

    /// `user@server` as people write it.
    public var destination: String { "\(sshUser)@\(server)" }
}

/// What the command line said; nil and empty mean "not given".
public struct SyncOverrides: Sendable, Equatable {
    public var siteName: String?
    public var benchesPath: String?
    public var worker = RemoteWorkerConfig()
    /// `--server`, repeatable: the workers of this run (settings from their file entries).
    public var servers: [String] = []
    public var parallel: Int?
    public var failFast = false
    public var acceptNewHostKey = false
    /// Canary, batches, hooks and watch settings from the command line (each replaces the file's).
    public var fleet = FleetLayer()
    /// Run no hooks in this run.
    public var noHooks = false

    public init() {}
}

/// The fleet-wide settings (canary and batches, hooks, watch) as one layer (the file's top level,
/// `[hooks]` and `[watch]`, or the command line) states them; nil means "not said".
public struct FleetLayer: Sendable, Equatable {
    public var canary: Int?
    public var batchSize: Int?
    public var batchWait: Int?
    public var beforeSync: String?
    public var afterSwitch: String?
    public var onFailure: String?
    public var hookTimeout: Int?
    /// `[watch]`: debounce, poll, retry_max and poll_only.
    public var watchDebounce: Int?
    public var watchPoll: Int?
    public var watchRetryMax: Int?
    public var watchPollOnly: Bool?

    public init() {}

    /// The command this layer gives hook `name`.
    public func hook(_ name: HookName) -> String? {
        switch name {
        case .beforeSync: beforeSync
        case .afterSwitch: afterSwitch
        case .onFailure: onFailure
        }
    }
}
