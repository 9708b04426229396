import Foundation

/// One worker's history as `remote-worker history` reads it; an unreachable worker is a result.
public struct WorkerHistory: Sendable, Equatable, Encodable {
    public var server: String
    public var destination: String
    public var error: String?
    /// Oldest first.
    public var entries: [HistoryEntry]
    public var badReleases: [String]
}

/// `remote-worker history` for a site: every worker's entries.
public struct FleetHistory: Sendable, Encodable {
    public var site: String
    public var workers: [WorkerHistory]

    /// Every worker could be read.
    public var allRead: Bool { workers.allSatisfy { $0.error == nil } }
}

extension SyncRunner {
    /// The last `limit` entries of each worker's history, `parallel` workers at a time, read
    /// without the lock and without changing anything.
    public func history(site: String, workers: [WorkerSettings], limit: Int, parallel: Int) async -> FleetHistory {
        let read = await FleetRunner.map(workers.count, parallel: parallel) { index in await history(worker: workers[index], limit: limit) }
        return FleetHistory(site: site, workers: read.compactMap { $0 })
    }

    func history(worker: WorkerSettings, limit: Int) async -> WorkerHistory {
        var history = WorkerHistory(server: worker.server, destination: worker.destination, entries: [], badReleases: [])
        do {
            let answer = try await WorkerConnection.using(worker: worker, runner: runner) { connection in
                HistoryAnswer(try await connection.run(.history(limit: limit), step: "history"))
            }
            history.entries = answer.entries
            history.badReleases = answer.badReleases
        } catch {
            history.error = error.userMessage
        }
        return history
    }
}

/// `remote-worker history` for people: one table, every worker's entries by time.
extension FleetHistory {
    public func text() -> String {
        let time = DateFormatter()
        time.locale = Locale(identifier: "en_US_POSIX")
        time.timeZone = TimeZone(identifier: "UTC")
        time.dateFormat = "yyyy-MM-dd HH:mm:ss"
        let rows = workers.flatMap { worker in worker.entries.map { (worker.server, $0) } }.sorted { $0.1.at < $1.1.at }
        var table = [["WHEN (UTC)", "WORKER", "KIND", "FROM", "TO", "RESULT", "TOOK", "NO JOBS", "BY"]]
        for (server, entry) in rows {
            table.append([
                time.string(from: entry.at), server, entry.kind, entry.from ?? "-", entry.to ?? "-",
                entry.result.rawValue + (entry.kept ? " (kept)" : ""),
                entry.seconds.map { String(format: "%.1f s", $0) } ?? "-",
                entry.noJobsSeconds.map { String(format: "%.2f s", $0) } ?? "-", entry.by,
            ])
        }
        let widths = (0..<table[0].count).map { column in table.map { $0[column].count }.max() ?? 0 }
        var lines = table.map { row in
            zip(row, widths).map { $0.padded($1) }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        if rows.isEmpty { lines.append("(no syncs or rollbacks recorded for \(site))") }
        for (server, entry) in rows where entry.error != nil {
            lines.append("\(time.string(from: entry.at)) \(server): \(entry.error ?? "")")
        }
        for worker in workers {
            if let error = worker.error { lines.append("[\(worker.server)] UNREADABLE: \(error)") }
            if !worker.badReleases.isEmpty {
                lines.append("[\(worker.server)] marked bad: \(worker.badReleases.joined(separator: ", ")) (rolled back automatically; sync --force to try again)")
            }
        }
        return lines.joined(separator: "\n")
    }
}
