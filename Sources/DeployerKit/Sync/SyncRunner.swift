import Foundation

/// A sync failed at one step on one worker.
public struct SyncFailure: Error, LocalizedError {
    public var step: SyncStep
    public var host: String
    public var underlying: any Error
    /// What state the worker was left in, for the operator.
    public var workerState: String

    public var errorDescription: String? {
        let reason = (underlying as? LocalizedError)?.errorDescription ?? String(describing: underlying)
        return reason
    }

    /// The failing command and the tail of its standard error (shown with --verbose).
    public var details: [String] {
        ((underlying as? RemoteError)?.details ?? []) + ["worker state: \(workerState)"]
    }
}

/// Runs a `SyncPlan` against its worker in the spec's order: stop, transfer, link, start.
public struct SyncRunner: Sendable {
    let runner: any CommandRunning
    let reporter: any SyncReporting
    let verbose: Bool

    public init(runner: any CommandRunning, reporter: any SyncReporting, verbose: Bool) {
        self.runner = runner
        self.reporter = reporter
        self.verbose = verbose
    }

    public func run(_ plan: SyncPlan) async throws -> SyncReport {
        let host = plan.worker.server
        let script = try RemoteScript.worker()
        var report = SyncReport(site: plan.site, destination: plan.worker.destination, release: plan.release,
                                previousRelease: nil, stepSeconds: [], transfers: [], runningServices: [])
        reporter.report(.started(site: plan.site, release: plan.release, destination: plan.worker.destination,
                                 workspace: plan.worker.workspacePath))
        // What the worker holds, as the steps move it: reported if a step fails.
        var workerState = "unchanged"

        func step<T>(_ step: SyncStep, detail: String = "", _ body: () async throws -> (T, String)) async throws -> T {
            reporter.report(.stepStarted(step, host: host, detail: detail))
            let start = ContinuousClock.now
            do {
                let (value, finished) = try await body()
                let seconds = (ContinuousClock.now - start).seconds
                report.stepSeconds.append((step, seconds))
                reporter.report(.stepFinished(step, host: host, seconds: seconds, detail: finished))
                return value
            } catch {
                reporter.report(.stepFailed(step, host: host, seconds: (ContinuousClock.now - start).seconds))
                throw SyncFailure(step: step, host: host, underlying: error, workerState: workerState)
            }
        }

        let connection = try await step(.connect, detail: "\(plan.worker.destination) port \(plan.worker.sshPort)") {
            (try await WorkerConnection.open(worker: plan.worker, runner: runner), "one connection, shared by every step")
        }
        do {
            let onLine = verbose ? outputForwarder(host: host) : nil
            let facts = try await step(.preflight, detail: plan.worker.siteDirectory) {
                let facts = try await connection.run(script, step: SyncStep.preflight.rawValue, arguments: plan.preflightArguments, onLine: onLine)
                let current = facts["current_release"].flatMap { $0.isEmpty ? nil : $0 }
                return (facts, "workers: \(facts["worker_services"] ?? "?"); live: \(current ?? "none yet")")
            }
            report.previousRelease = facts["current_release"]
            try await step(.stopServices) {
                workerState = "services stopped, files unchanged"
                _ = try await connection.run(script, step: SyncStep.stopServices.rawValue, arguments: plan.stopArguments, onLine: onLine)
                return ((), "all services of the site's compose project are down")
            }
            report.transfers = try await step(.transfer, detail: plan.transfers.map(\.name).joined(separator: ", ")) {
                workerState = "services stopped, files partly transferred"
                let results = try await transferAll(plan, connection: connection)
                let total = results.reduce(TransferStats()) { $0 + $1.stats }
                return (results, "\(total.regularFilesTransferred) files, \(ByteCount.format(total.bytesSent)) sent")
            }
            workerState = "services stopped, files of \(plan.release) transferred"
            try await step(.link, detail: plan.release) {
                _ = try await connection.run(script, step: SyncStep.link.rawValue, arguments: plan.activateArguments, onLine: onLine)
                workerState = "services stopped, frappe-bench -> \(plan.release) with worker configs"
                return ((), "frappe-bench -> \(plan.release); worker configs linked")
            }
            report.runningServices = try await step(.startServices) {
                let facts = try await connection.run(script, step: SyncStep.startServices.rawValue, arguments: plan.startArguments, onLine: onLine)
                let running = (facts["running"] ?? "").split(separator: " ").map(String.init).sorted()
                return (running, running.joined(separator: ", "))
            }
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
        return report
    }

    /// The independent trees go in parallel over the one master connection.
    func transferAll(_ plan: SyncPlan, connection: WorkerConnection) async throws -> [(name: String, stats: TransferStats)] {
        let verbose = self.verbose
        var stats = [TransferStats](repeating: TransferStats(), count: plan.transfers.count)
        try await withThrowingTaskGroup(of: (Int, TransferStats).self) { group in
            for (index, transfer) in plan.transfers.enumerated() {
                let onLine = verbose ? rsyncForwarder(host: plan.worker.server, tree: transfer.name) : nil
                group.addTask {
                    let result = try await connection.transfer(transfer, verbose: verbose, onLine: onLine)
                    return (index, result)
                }
            }
            for try await (index, result) in group { stats[index] = result }
        }
        return zip(plan.transfers, stats).map { (name: $0.name, stats: $1) }
    }

    /// Forwards rsync's itemized changes and errors; its --stats block goes to the report instead.
    func rsyncForwarder(host: String, tree: String) -> @Sendable (OutputStream, String) -> Void {
        { [reporter] stream, line in
            let itemized = line.first.map { "<>ch.*".contains($0) } ?? false
            if stream == .standardError || itemized {
                reporter.report(.output(host: host, source: tree, line: line))
            }
        }
    }

    func outputForwarder(host: String) -> @Sendable (OutputStream, String) -> Void {
        { [reporter] _, line in
            if !line.trimmed.isEmpty { reporter.report(.output(host: host, source: "worker", line: line)) }
        }
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
