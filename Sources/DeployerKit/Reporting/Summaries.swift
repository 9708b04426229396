import Foundation

/// The summaries people read on standard output: of a sync or rollback, of a dry run, of a tree's changes.
extension SyncReport {
    /// The summary printed on standard output at the end of a sync.
    public func summary() -> String {
        if let dryRun { return dryRun.summary() }
        let was: String
        switch previousRelease {
        case nil, "": was = " (first sync)"
        case release where servicesKept: was = " (unchanged: the verified copy and its running services were kept)"
        case release where releaseKept: was = " (unchanged release kept; services restarted: includes changed, or not exactly the worker services ran)"
        case release: was = " (resynced)"
        case let previous?: was = " (was \(previous))"
        }
        var lines = [isRollback ? "rolled back \(site) on \(destination): \(release) is live\(was)"
                                : "synced \(site) to \(destination): \(release) is live\(was)"]
        lines.append("services running: \(runningServices.joined(separator: ", "))")
        if let handover {
            lines.append("handover: \(release)'s workers took jobs before the old ones were told to stop (no worker gap)"
                + (handover.schedulerGapSeconds.map { String(format: "; schedule moved in %.1f s, never two at once", $0) } ?? ""))
            for draining in handover.draining {
                lines.append("draining: \(draining.release)"
                    + (draining.running.isEmpty ? "" : " (\(draining.running.joined(separator: ", ")))")
                    + " finishes its running jobs on its own release, detached on the worker; remote-worker status shows when it is done")
            }
            if handover.flipDeferred {
                lines.append("frappe-bench moves to \(release) when that drain ends: the old workers read through it")
            }
        } else if let downtimeSeconds {
            lines.append("downtime: \(String(format: "%.2f", downtimeSeconds)) s (\(strategy.rawValue); services stopped until running again)")
        }
        for drain in finishedDrains where !drain.killed.isEmpty {
            lines.append("warning: the drain of \(drain.release) ended with \(drain.killed.joined(separator: ", ")) killed: their stop wait ran out before their jobs ended")
        }
        if !pruned.isEmpty { lines.append("pruned: \(pruned.joined(separator: ", "))") }
        for warning in warnings { lines.append("warning: \(warning)") }
        lines += hooks.flatMap(\.lines)
        if let canaryCheck { lines.append("canary check: \(canaryCheck)") }
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

extension DryRunReport {
    public func summary() -> String {
        var lines = ["dry run: sync \(site) to \(destination): \(release)" + (liveRelease.map { " (live: \($0))" } ?? " (first sync)") + "; nothing was changed"]
        for (index, step) in steps.enumerated() { lines.append("  \(index + 1). \(step)") }
        lines.append("  services to stop:  \(stopServices.isEmpty ? "none" : stopServices.joined(separator: ", "))")
        lines.append("  services to start: \(startServices.isEmpty ? "none (they keep running)" : startServices.joined(separator: ", "))")
        lines.append("  changes against the worker:")
        for tree in trees { lines.append("    \(tree.summary)") }
        return lines.joined(separator: "\n")
    }
}

extension TreeChanges {
    public var summary: String {
        "\(name.padded(16)) \(added) added (\(ByteCount.format(addedBytes))), \(changed) changed (\(ByteCount.format(changedBytes))), \(deleted) deleted"
    }
}

extension String {
    func padded(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
