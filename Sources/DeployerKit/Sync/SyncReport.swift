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
    /// The live release was kept as it was (verified, unchanged); only data went over.
    public var releaseKept = false
    /// With `releaseKept`: services were left running (nothing changed that they read).
    public var servicesKept = false
    /// The compression and checksum the transfers used.
    public var rsync: RsyncChoices?
    /// Set for `--dry-run`: what would happen; nothing did.
    public var dryRun: DryRunReport?

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

    /// The summary printed on standard output at the end of a sync.
    public func summary() -> String {
        if let dryRun { return dryRun.summary() }
        let was: String
        switch previousRelease {
        case nil, "": was = " (first sync)"
        case release where servicesKept: was = " (unchanged: the verified copy and its running services were kept)"
        case release where releaseKept: was = " (unchanged release kept; services restarted for changed data)"
        case release: was = " (resynced)"
        case let previous?: was = " (was \(previous))"
        }
        var lines = [isRollback ? "rolled back \(site) on \(destination): \(release) is live\(was)"
                                : "synced \(site) to \(destination): \(release) is live\(was)"]
        lines.append("services running: \(runningServices.joined(separator: ", "))")
        if let downtimeSeconds {
            lines.append("downtime: \(String(format: "%.2f", downtimeSeconds)) s (\(strategy.rawValue); services stopped until running again)")
        }
        if !pruned.isEmpty { lines.append("pruned: \(pruned.joined(separator: ", "))") }
        if let rsync, !transfers.isEmpty { lines.append("rsync: \(rsync.summary)") }
        for (name, stats) in transfers {
            lines.append("  \(name.padded(16)) \(stats.regularFilesTransferred) files updated, \(stats.deletedFiles) deleted, "
                + "\(ByteCount.format(stats.bytesSent)) sent, \(ByteCount.format(stats.bytesReceived)) received "
                + "(\(stats.files) entries, \(ByteCount.format(stats.totalFileSize)))")
        }
        let total = totals
        if !transfers.isEmpty { lines.append("  \("transferred".padded(16)) \(total.regularFilesTransferred) files, \(ByteCount.format(total.bytesSent)) sent") }
        for (step, seconds) in stepSeconds {
            lines.append("  \(step.rawValue.padded(16)) \(String(format: "%7.2f s", seconds))")
        }
        lines.append("  \("total".padded(16)) \(String(format: "%7.2f s", totalSeconds))")
        return lines.joined(separator: "\n")
    }
}

extension String {
    func padded(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}

/// Byte counts for people: binary units, one decimal.
public enum ByteCount {
    public static func format(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit] as NSString)
    }
}

