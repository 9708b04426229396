import Foundation

/// What a finished sync did: the result people and scripts read.
public struct SyncReport: Sendable, Equatable {
    public var site: String
    public var destination: String
    public var release: String
    public var strategy: SyncStrategy
    public var previousRelease: String?
    public var stepSeconds: [(step: SyncStep, seconds: Double)] = []
    public var transfers: [(name: String, stats: TransferStats)] = []
    public var runningServices: [String] = []
    /// Worker services down: from stopping them to all running again.
    public var downtimeSeconds: Double?
    /// Releases removed by retention.
    public var pruned: [String] = []
    /// A rollback switches without transferring.
    public var isRollback = false
    /// The operation's kind, as the lock, the history and the last-sync record name it.
    public var kind: String { isRollback ? "rollback" : "sync" }
    /// The live release was kept as it was (verified, unchanged); only data went over.
    public var releaseKept = false
    /// With `releaseKept`: services were left running (nothing changed that they read).
    public var servicesKept = false
    /// The compression and checksum the transfers used.
    public var rsync: RsyncChoices?
    /// Set for `--dry-run`: what would happen; nothing did.
    public var dryRun: DryRunReport?
    /// How the switch handed over to the new generation, when it did.
    public var handover: Handover?
    /// Drains of earlier handovers that ended since the last sync (and what their waits killed).
    public var finishedDrains: [DrainRecord] = []
    /// What went wrong without failing the sync (a release that could not be pruned, a repair).
    public var warnings: [String] = []
    /// The services were switched (a handover, a restart, an in-place start): after_switch runs.
    public var switched = false
    /// The hooks that ran for this worker, in order.
    public var hooks: [HookRun] = []
    /// What the canary's job check saw, for a canary.
    public var canaryCheck: String?

    /// A switch that handed over: the new generation took jobs before the old one was told to stop.
    public struct Handover: Sendable, Equatable, Encodable {
        /// The new generation's Compose project on the worker.
        public var generation: String
        /// The old generations, draining on their own release when the command returned.
        public var draining: [DrainRecord]
        /// `frappe-bench` moves when the old generation has drained (it read through the link).
        public var flipDeferred: Bool
        /// From the old scheduler's stop to the new one's start (never two at once).
        public var schedulerGapSeconds: Double?
    }

    public init(site: String, destination: String, release: String, strategy: SyncStrategy, previousRelease: String? = nil) {
        self.site = site
        self.destination = destination
        self.release = release
        self.strategy = strategy
        self.previousRelease = previousRelease
    }

    /// The report of a dry run.
    public init(dryRun: DryRunReport) {
        self.init(site: dryRun.site, destination: dryRun.destination, release: dryRun.release, strategy: dryRun.strategy,
                  previousRelease: dryRun.liveRelease)
        self.dryRun = dryRun
    }

    public var totalSeconds: Double { stepSeconds.reduce(0) { $0 + $1.seconds } }
    public var totals: TransferStats { transfers.reduce(TransferStats()) { $0 + $1.stats } }

    public static func == (lhs: SyncReport, rhs: SyncReport) -> Bool {
        lhs.site == rhs.site && lhs.destination == rhs.destination && lhs.release == rhs.release
            && lhs.previousRelease == rhs.previousRelease && lhs.runningServices == rhs.runningServices
            && lhs.stepSeconds.map(\.step) == rhs.stepSeconds.map(\.step)
            && lhs.transfers.map(\.name) == rhs.transfers.map(\.name)
            && lhs.transfers.map(\.stats) == rhs.transfers.map(\.stats)
            && lhs.strategy == rhs.strategy && lhs.pruned == rhs.pruned && lhs.downtimeSeconds == rhs.downtimeSeconds
            && lhs.dryRun == rhs.dryRun
    }
}
