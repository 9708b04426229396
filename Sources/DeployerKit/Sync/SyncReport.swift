/// What a finished sync did: the result people and scripts read.
public struct SyncReport: Sendable, Equatable {
    public var site: String
    public var destination: String
    public var release: String
    public var previousRelease: String?
    public var stepSeconds: [(step: SyncStep, seconds: Double)]
    public var transfers: [(name: String, stats: TransferStats)]
    public var runningServices: [String]

    public var totalSeconds: Double { stepSeconds.reduce(0) { $0 + $1.seconds } }
    public var totals: TransferStats { transfers.reduce(TransferStats()) { $0 + $1.stats } }

    public static func == (lhs: SyncReport, rhs: SyncReport) -> Bool {
        lhs.site == rhs.site && lhs.destination == rhs.destination && lhs.release == rhs.release
            && lhs.previousRelease == rhs.previousRelease && lhs.runningServices == rhs.runningServices
            && lhs.stepSeconds.map(\.step) == rhs.stepSeconds.map(\.step)
            && lhs.transfers.map(\.name) == rhs.transfers.map(\.name)
            && lhs.transfers.map(\.stats) == rhs.transfers.map(\.stats)
    }

    /// The summary printed on standard output at the end of a sync.
    public func summary() -> String {
        var lines = ["synced \(site) to \(destination): \(release) is live"
            + (previousRelease.map { $0.isEmpty || $0 == release ? "" : " (was \($0))" } ?? " (first sync)")]
        lines.append("services running: \(runningServices.joined(separator: ", "))")
        for (name, stats) in transfers {
            lines.append(String(format: "  %-16@ %6d files sent, %6d deleted, %@ sent, %@ received (of %d files, %@)",
                                name as NSString, stats.regularFilesTransferred, stats.deletedFiles,
                                ByteCount.format(stats.bytesSent) as NSString, ByteCount.format(stats.bytesReceived) as NSString,
                                stats.files, ByteCount.format(stats.totalFileSize) as NSString))
        }
        let total = totals
        lines.append("  transferred: \(total.regularFilesTransferred) files, \(ByteCount.format(total.bytesSent)) sent")
        for (step, seconds) in stepSeconds {
            lines.append(String(format: "  %-16@ %7.2f s", step.rawValue as NSString, seconds))
        }
        lines.append(String(format: "  %-16@ %7.2f s", "total" as NSString, totalSeconds))
        return lines.joined(separator: "\n")
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

import Foundation
