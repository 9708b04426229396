import Foundation

/// `remote-worker status` for people: the main server's line, then each worker's.
extension FleetStatus {
    public func text() -> String {
        let time = DateFormatter()
        time.locale = Locale(identifier: "en_US_POSIX")
        time.dateFormat = "yyyy-MM-dd HH:mm:ss zzz"
        var lines = ["\(site): main server runs \(mainRelease)"
            + (mainSchedulerRunning.map { $0 ? ", schedule running" : ", schedule not running" } ?? "")]
        for worker in workers {
            guard worker.reachable else {
                lines.append("[\(worker.server)] UNREACHABLE: \(worker.error ?? "no answer")")
                continue
            }
            var head = "[\(worker.server)] reachable; live: \(worker.liveRelease ?? "none")"
            head += worker.matchesMain ? " (matches the main server)" : " (main server: \(worker.mainRelease))"
            if let drift = worker.drift { head += drift == 0 ? "; no drift" : "; drift: \(drift) files differ" }
            lines.append(head)
            if let error = worker.error { lines.append("  error: \(error)") }
            if let trees = worker.driftByTree, worker.drift ?? 0 > 0 {
                for tree in trees where tree.total > 0 { lines.append("  drift \(tree.summary)") }
            }
            if let services = worker.services {
                let text = services.keys.sorted().map { "\($0) \(services[$0]!)" }.joined(separator: ", ")
                lines.append("  services: \(text.isEmpty ? "none" : text)")
            }
            if let last = worker.lastSync {
                var text = "  last \(last.kind ?? "sync"): \(last.release ?? "?")"
                if let at = last.at { text += " at \(time.string(from: at))" }
                if let by = last.by { text += " by \(by)" }
                if let seconds = last.seconds { text += String(format: ", %.1f s", seconds) }
                if let downtime = last.downtimeSeconds { text += String(format: " (downtime %.2f s)", downtime) }
                lines.append(text)
            } else {
                lines.append("  last sync: none recorded")
            }
            if let suspended = worker.queueSuspended {
                lines.append("  queue: \(suspended ? "SUSPENDED (no job runs anywhere)" : "taking jobs")")
            }
            for drain in worker.drains ?? [] {
                let since = drain.since.map { " since \(time.string(from: $0))" } ?? ""
                if drain.draining {
                    lines.append("  draining: \(drain.release)\(since): \(drain.running.joined(separator: ", ")) finishing their jobs")
                } else {
                    lines.append("  last drain: \(drain.release)" + (drain.finished.map { " done at \(time.string(from: $0))" } ?? " done")
                        + (drain.killed.isEmpty ? ", nothing killed" : ", killed: \(drain.killed.joined(separator: ", ")) (stop wait ran out)"))
                }
            }
            if let bad = worker.badReleases, !bad.isEmpty {
                lines.append("  marked bad: \(bad.joined(separator: ", ")) (rolled back automatically; remote-worker history says why)")
            }
            if let lock = worker.lock {
                lines.append("  lock: held by \(lock.holder)" + (lock.since.map { " since \(time.string(from: $0))" } ?? "")
                    + (lock.alive ? "" : " (its sync is gone; the next sync takes it over)"))
            } else {
                lines.append("  lock: free")
            }
        }
        lines += warnings.map { "warning: \($0)" }
        return lines.joined(separator: "\n")
    }
}
