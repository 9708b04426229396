import Foundation

/// One sync or rollback as a worker's history keeps it: appended when the operation releases the
/// worker's lock, whatever its result (`remote-worker history` reads them back). The worker keeps
/// each as one line of TAB-separated `KEY=VALUE` fields.
public struct HistoryEntry: Sendable, Equatable, Encodable {
    /// How an operation ended, as the history says it.
    public enum Result: String, Sendable, Equatable, Encodable {
        /// The release runs (switched to, or kept).
        case ok
        /// The new release failed its checks and the previous one runs again: a release switched
        /// to from another is marked bad on this worker (the worker script's `bad_releases`).
        case rolledBack = "rolled-back"
        /// The new release failed its checks and nothing could be started again (marked bad too).
        case switchFailed = "switch-failed"
        /// Refused before anything changed (a release marked bad, a failing before_sync hook).
        case refused
        /// Ended by SIGINT/SIGTERM; the worker is on a complete release.
        case interrupted
        /// Any other failure (a transfer, a check before the switch).
        case failed
        /// It ended without releasing the lock (its tool was killed, or lost its connection), so
        /// the next operation to take the lock wrote this entry: `to` is the release live then.
        case unfinished
    }

    public var at: Date
    /// `sync` or `rollback`.
    public var kind: String
    /// Who ran it (user@host pid N).
    public var by: String
    /// The release live before it (nil on a first sync).
    public var from: String?
    /// The release it went to (nil when it failed before knowing one).
    public var to: String?
    public var result: Result
    public var seconds: Double?
    /// How long no worker service of this worker took jobs (0 for a handover; the stop-to-start
    /// time in place).
    public var noJobsSeconds: Double?
    /// The release was kept as it was (only data went over).
    public var kept: Bool
    /// The one-line error of a failure (secrets masked).
    public var error: String?

    public init(at: Date, kind: String, by: String, from: String?, to: String?, result: Result, seconds: Double? = nil,
                noJobsSeconds: Double? = nil, kept: Bool = false, error: String? = nil) {
        self.at = at
        self.kind = kind
        self.by = by
        self.from = from
        self.to = to
        self.result = result
        self.seconds = seconds
        self.noJobsSeconds = noJobsSeconds
        self.kept = kept
        self.error = error
    }

    /// How `error` ended an operation, as its history result.
    public static func result(of error: (any Error)?) -> Result {
        switch (error as? SyncFailure)?.underlying ?? error {
        case nil: return .ok
        case SyncError.rolledBack?: return .rolledBack
        case SyncError.switchFailed?: return .switchFailed
        case SyncError.markedBad?, HookFailure.beforeSync?: return .refused
        case SyncError.interrupted?, RemoteError.interrupted?: return .interrupted
        default: return .failed
        }
    }

    /// The worker's line: TAB-separated `KEY=VALUE` fields, no value holding a tab or a newline.
    public var line: String {
        var fields = ["at=\(Int(at.timeIntervalSince1970))", "kind=\(kind)", "by=\(by)", "from=\(from ?? "")", "to=\(to ?? "")",
                      "result=\(result.rawValue)"]
        if let seconds { fields.append("seconds=\(String(format: "%.1f", seconds))") }
        if let noJobsSeconds { fields.append("no_jobs=\(String(format: "%.2f", noJobsSeconds))") }
        if kept { fields.append("kept=yes") }
        if let error { fields.append("error=\(Redaction.redacted(error))") }
        return fields.map { String($0.map { $0 == "\t" || $0.isNewline ? " " : $0 }) }
            .map { String($0.prefix(400)) }.joined(separator: "\t")
    }

    /// Reads a worker's line; nil when it is not one (a line cut short by a full disk).
    public init?(line: String) {
        var values: [String: String] = [:]
        for field in line.split(separator: "\t") {
            guard let equals = field.firstIndex(of: "=") else { continue }
            values[String(field[..<equals])] = String(field[field.index(after: equals)...])
        }
        func text(_ key: String) -> String? { values[key].flatMap { $0.isEmpty ? nil : $0 } }
        guard let at = text("at").flatMap(TimeInterval.init), let kind = text("kind"),
              let result = text("result").flatMap(Result.init(rawValue:)) else { return nil }
        self.init(at: Date(timeIntervalSince1970: at), kind: kind, by: text("by") ?? "", from: text("from"), to: text("to"),
                  result: result, seconds: text("seconds").flatMap(Double.init), noJobsSeconds: text("no_jobs").flatMap(Double.init),
                  kept: text("kept") == "yes", error: text("error"))
    }
}

/// A worker's history as `history` reads it: the newest entries, oldest first, and the releases
/// marked bad there.
public struct HistoryAnswer: Sendable, Equatable {
    public var entries: [HistoryEntry]
    public var badReleases: [String]

    public init(_ facts: WorkerFacts) {
        entries = facts.indexed("entry").compactMap(HistoryEntry.init(line:))
        badReleases = facts.words("bad_releases")
    }
}

extension WorkerSession {
    /// This operation's history entry, ended by `error` (nil: it succeeded).
    func historyEntry(error: (any Error)?) -> HistoryEntry {
        let message = error.map(\.userMessage)
        return HistoryEntry(
            at: startedAt, kind: report.kind, by: WorkerLock.holder,
            from: report.previousRelease.flatMap { $0.isEmpty ? nil : $0 }, to: report.release.isEmpty ? nil : report.release,
            result: HistoryEntry.result(of: error), seconds: Date().timeIntervalSince(startedAt),
            noJobsSeconds: report.handover != nil || report.servicesKept ? 0 : report.downtimeSeconds, kept: report.releaseKept, error: message)
    }
}
