import Foundation

/// One operation on one worker (a sync, a rollback, a dry run): its connection and service
/// backend, its lock, the timing of its steps, what the worker said at its check, and what the
/// worker holds as the steps move it (reported if a step fails).
final class WorkerSession {
    let worker: WorkerSettings
    let connection: WorkerConnection
    let services: any ServiceBackend
    let context: SyncRunner
    var report: SyncReport
    /// What the worker holds now, for the operator when a step fails.
    var workerState: WorkerState = .unchanged
    /// The lock this session holds, once taken.
    private(set) var lockToken: String?
    let startedAt = Date()

    private init(worker: WorkerSettings, connection: WorkerConnection, context: SyncRunner, report: SyncReport) {
        self.worker = worker
        self.connection = connection
        services = ComposeBackend(connection: connection)
        self.context = context
        self.report = report
    }

    var host: String { worker.server }
    var reporter: any SyncReporting { context.reporter }
    var interrupt: InterruptSignal? { context.interrupt }

    /// Opens the one connection every step of the session shares.
    static func open(worker: WorkerSettings, context: SyncRunner, report: SyncReport, note: String) async throws -> WorkerSession {
        var signal: (@Sendable () -> Int32?)?
        if let interrupt = context.interrupt { signal = { interrupt.received } }
        let (connection, seconds) = try await timed(.connect, host: worker.server, reporter: context.reporter,
                                                    detail: "\(worker.destination) port \(worker.sshPort)",
                                                    fail: { SyncFailure(step: .connect, host: worker.server, underlying: $0, workerState: .unchanged) }) {
            (try await WorkerConnection.open(worker: worker, runner: context.runner, signal: signal), note)
        }
        let session = WorkerSession(worker: worker, connection: connection, context: context, report: report)
        session.report.stepSeconds.append((.connect, seconds))
        return session
    }

    /// Worker output lines, forwarded with --verbose.
    var onLine: (@Sendable (OutputStream, String) -> Void)? {
        guard context.verbose else { return nil }
        return { [reporter, host] _, line in
            if !line.trimmed.isEmpty { reporter.report(.output(host: host, source: "worker", line: line)) }
        }
    }

    /// Runs one step: reports its start and end, times it into the report, and turns a failure
    /// into a `SyncFailure` that says what the worker holds.
    func step<T>(_ step: SyncStep, detail: String = "", _ body: () async throws -> (T, String)) async throws -> T {
        let (value, seconds) = try await Self.timed(step, host: host, reporter: reporter, detail: detail, fail: { self.fail(step, $0) }, body)
        report.stepSeconds.append((step, seconds))
        return value
    }

    private static func timed<T>(_ step: SyncStep, host: String, reporter: any SyncReporting, detail: String,
                                 fail: (any Error) -> SyncFailure, _ body: () async throws -> (T, String)) async throws -> (T, Double) {
        reporter.report(.stepStarted(step, host: host, detail: detail))
        let start = ContinuousClock.now
        do {
            let (value, finished) = try await body()
            let seconds = (ContinuousClock.now - start).seconds
            reporter.report(.stepFinished(step, host: host, seconds: seconds, detail: finished))
            return (value, seconds)
        } catch let failure as SyncFailure {
            throw failure
        } catch {
            reporter.report(.stepFailed(step, host: host, seconds: (ContinuousClock.now - start).seconds))
            throw fail(error)
        }
    }

    /// A step's failure, saying what the worker holds. After SIGINT/SIGTERM, a failed command (a
    /// wait given up, a child the signal reached too) is the interruption, so the run ends with
    /// 130; the sync's own outcomes (a rollback, a lock held) keep what they say.
    func fail(_ step: SyncStep, _ error: any Error) -> SyncFailure {
        var underlying = error
        if !(error is SyncError), let signal = interrupt?.received {
            underlying = SyncError.interrupted(signal: signal, state: "stopped at \(step.rawValue); the worker is \(workerState)")
        }
        return SyncFailure(step: step, host: host, underlying: underlying, workerState: workerState)
    }

    /// The interrupt received, as the failure that stops here: `state` says what the worker runs.
    func stopIfInterrupted(_ step: SyncStep, state: String) throws {
        if let signal = interrupt?.received { throw fail(step, SyncError.interrupted(signal: signal, state: state)) }
    }

    /// Checks the worker and takes its lock, in one round trip: nothing is written unless every
    /// check passes. With `liveDigest`, the answer carries the verified live copy's digest.
    func checkAndLock(site: String, token: String, liveDigest: LiveDigestRequest?) async throws -> PreflightAnswer {
        try await step(.preflight, detail: "\(worker.siteDirectory), then take its lock") {
            let answer = try await WorkerLock(connection: connection, worker: worker, token: token, site: site,
                                              kind: report.kind, liveDigest: liveDigest,
                                              interrupt: interrupt).acquire()
            lockToken = token
            return (answer, "workers: \(answer.workerServices.joined(separator: " ")); live: \(answer.releases.live ?? "none yet"); "
                + "lock \(answer.lock?.note ?? "held")")
        }
    }

    /// Checks the worker without writing anything (no lock).
    func check(site: String, liveDigest: LiveDigestRequest?) async throws -> PreflightAnswer {
        try await step(.preflight, detail: "read-only, no lock") {
            let answer = PreflightAnswer(try await connection.run(.preflight(site: site, lock: nil, liveDigest: liveDigest),
                                                                  step: SyncStep.preflight.rawValue))
            return (answer, "workers: \(answer.workerServices.joined(separator: " "))")
        }
    }

    /// A handover runs at most two generations: while an earlier one still drains, waits for it up
    /// to `lock_wait` seconds (at least 10: a drain of idle workers takes a second or two), then
    /// refuses, before anything changed.
    func awaitDrains(_ drains: [DrainRecord]) async throws {
        var draining = drains.filter(\.draining)
        let start = ContinuousClock.now
        while let first = draining.first {
            let waited = (ContinuousClock.now - start).seconds
            guard waited < Double(max(worker.lockWait, 10)) else {
                throw fail(.preflight, SyncError.stillDraining(host: host, release: first.release, since: first.since.map(WorkerLock.format) ?? "an unknown time",
                                                                running: first.running, waited: Int(waited)))
            }
            try stopIfInterrupted(.preflight, state: "unchanged")
            try await Task.sleep(for: .seconds(1))
            draining = DrainRecord.all(try await connection.run(.drains, step: SyncStep.preflight.rawValue)).filter(\.draining)
        }
    }

    /// Releases the lock, first appending the operation to the worker's history (and, when it
    /// succeeded, recording it as the last sync), and the connection; safe on any path out.
    /// After a lost connection, cleanup is left to the next sync (and the history misses it).
    func close(error: (any Error)?) async {
        if let lockToken {
            let reachable = error == nil ? true : await connection.isAlive()
            if reachable {
                _ = try? await connection.run(.unlock(token: lockToken, history: historyEntry(error: error),
                                                      record: error == nil ? lastSyncRecord : []), step: "unlock")
            }
        }
        await connection.close()
    }

    /// Runs `body` and always closes: the lock and the connection are released on every path.
    func closing<T>(_ body: () async throws -> T) async throws -> T {
        do {
            let value = try await body()
            await close(error: nil)
            return value
        } catch {
            await close(error: error)
            throw error
        }
    }

    /// What the worker keeps about this (successful) operation, for `remote-worker status`.
    var lastSyncRecord: [String] {
        var record = [
            "kind=\(report.kind)",
            "release=\(report.release)",
            "by=\(WorkerLock.holder)",
            "at=\(Int(startedAt.timeIntervalSince1970))",
            "seconds=\(String(format: "%.1f", Date().timeIntervalSince(startedAt)))",
            "strategy=\(report.strategy.rawValue)",
        ]
        if let downtime = report.downtimeSeconds { record.append("downtime=\(String(format: "%.2f", downtime))") }
        return record
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
