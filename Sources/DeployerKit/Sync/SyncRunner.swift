import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a `SyncPlan` (or a rollback) against its worker.
///
/// Staged (default): lock, check, stage the release into a new directory while the old workers
/// run, link its worker configs, then switch in seconds (stop, flip `frappe-bench`, start, check;
/// flip back on failure), prune old releases, unlock. In place: the spec's order under the lock.
public struct SyncRunner: Sendable {
    let runner: any CommandRunning
    let reporter: any SyncReporting
    let verbose: Bool
    let interrupt: InterruptSignal?

    public init(runner: any CommandRunning, reporter: any SyncReporting, verbose: Bool, interrupt: InterruptSignal? = nil) {
        self.runner = runner
        self.reporter = reporter
        self.verbose = verbose
        self.interrupt = interrupt
    }

    public func run(_ plan: SyncPlan) async throws -> SyncReport {
        let script = try RemoteScript.worker()
        let operation = Operation(worker: plan.worker, reporter: reporter, runner: self,
                                  report: SyncReport(site: plan.site, destination: plan.worker.destination, release: plan.release, strategy: plan.strategy))
        reporter.report(.started(site: plan.site, release: plan.release, destination: plan.worker.destination,
                                 workspace: plan.worker.workspacePath))
        // The release's digest is read locally while the connection opens and the worker is checked.
        let runner = self.runner
        let digest = plan.strategy == .staged ? Task { [plan] in await ReleaseDigest.local(plan, runner: runner) } : nil
        defer { digest?.cancel() }
        return try await operation.locked(script: script, token: plan.token, site: plan.site,
                                          digestExcludes: plan.strategy == .staged && !plan.full ? plan.releaseExcludes : []) { connection, facts in
            operation.report.previousRelease = facts["current_release"]
            var plan = plan
            plan.mainDigest = await digest?.value
            plan.rsync = try await rsyncChoices(plan.worker, facts: facts)
            operation.report.rsync = plan.rsync
            switch plan.strategy {
            case .staged: try await stagedSync(plan, connection: connection, script: script, facts: facts, operation: operation)
            case .inPlace: try await inPlaceSync(plan, connection: connection, script: script, operation: operation)
            }
        }
    }

    /// Switches the worker to its previous release (the one live before the last switch).
    public func rollback(site: String, worker: WorkerSettings) async throws -> SyncReport {
        let script = try RemoteScript.worker()
        let operation = Operation(worker: worker, reporter: reporter, runner: self,
                                  report: SyncReport(site: site, destination: worker.destination, release: "", strategy: .staged))
        operation.report.isRollback = true
        return try await operation.locked(script: script, token: SyncPlan.newToken(), site: site) { connection, facts in
            let live = facts["current_release"] ?? ""
            let releases = (facts["releases"] ?? "").split(separator: " ").map(String.init)
            let recorded = facts["previous_release"].flatMap { releases.contains($0) && $0 != live ? $0 : nil }
            guard let target = recorded ?? releases.filter({ $0 < live }).sorted().last else {
                throw SyncFailure(step: .preflight, host: worker.server, underlying: SyncError.noPreviousRelease(host: worker.server, live: live),
                                  workerState: "unchanged")
            }
            operation.report.release = target
            operation.report.previousRelease = live
            // The previous release ran with today's queue and database: no dependency check here.
            try await switchRelease(site: site, release: target, stage: nil, worker: worker, dependencies: [],
                                    connection: connection, script: script, operation: operation)
        }
    }

    /// Compression and checksum from what both sides' rsync offer (the worker's from preflight).
    func rsyncChoices(_ worker: WorkerSettings, facts: [String: String]) async throws -> RsyncChoices {
        let local = (try? await runner.run(Command("rsync", ["--version"])))?.standardOutput ?? ""
        return try RsyncChoices.resolve(
            worker.compress, local: RsyncChoices.list("Compress list:", in: local), worker: Self.words(facts["rsync_compress"]),
            workerHost: worker.server, localChecksums: RsyncChoices.list("Checksum list:", in: local),
            workerChecksums: Self.words(facts["rsync_checksum"]))
    }

    // MARK: - Strategies

    func stagedSync(_ plan: SyncPlan, connection: WorkerConnection, script: RemoteScript, facts: [String: String], operation: Operation) async throws {
        if try await keepLiveRelease(plan, connection: connection, script: script, facts: facts, operation: operation) { return }
        let releases = (facts["releases"] ?? "").split(separator: " ").map(String.init)
        let base = SyncPlan.linkBase(current: facts["current_release"], releases: releases)
        let transfers = plan.transfers(base: base, splitFirstCopy: true)
        let ws = plan.worker.workspacePath

        let live = facts["current_release"].flatMap { $0.isEmpty ? nil : $0 }
        let placement = live == nil ? "into a new directory" : "beside the running release"
        // Taken before the transfer: if the main server's release changes meanwhile, the next sync
        // sees another digest and stages again.
        let mainDigest = plan.mainDigest
        operation.report.transfers = try await operation.step(.stage, detail: "\(plan.release) \(placement)" + (base.map { ", reusing \($0)" } ?? "")) {
            operation.workerState = "unchanged: the old release still runs"
            do {
                _ = try await connection.run(script, step: SyncStep.stage.rawValue, arguments: ["stage-prepare", ws, plan.stagingPath], onLine: operation.onLine)
                let results = try await transferCancellable(transfers, connection: connection)
                let total = results.reduce(TransferStats()) { $0 + $1.stats }
                return (results, "\(total.regularFilesTransferred) files, \(ByteCount.format(total.bytesSent)) sent")
            } catch {
                if await connection.isAlive() {
                    _ = try? await connection.run(script, step: "unstage", arguments: ["unstage", ws, plan.stagingPath])
                }
                operation.workerState = "unchanged: the old release still runs (deployment-data and includes may be updated)"
                if let signal = interrupt?.received { throw SyncError.interrupted(signal: signal, state: "staging stopped; the old release still runs") }
                throw error
            }
        }
        let (swap, copyDigest) = try await operation.step(.link, detail: plan.release) {
            let facts = try await connection.run(script, step: SyncStep.link.rawValue,
                                                 arguments: ["stage-activate", ws, plan.site, plan.release, plan.stagingPath] + plan.releaseExcludes,
                                                 onLine: operation.onLine)
            let swap = facts["swap"] == "yes"
            return ((swap, facts["digest"]), swap ? "worker configs linked; the live release will be swapped" : "worker configs linked; \(plan.release) ready")
        }
        operation.workerState = "unchanged: the old release still runs; \(plan.release) is staged"
        if let signal = interrupt?.received {
            if swap { _ = try? await connection.run(script, step: "unstage", arguments: ["unstage", ws, plan.stagingPath]) }
            throw operation.fail(.link, SyncError.interrupted(signal: signal, state: "stopped before the switch; the old release still runs"))
        }
        var verified: String?
        if let mainDigest, let copyDigest { verified = "\(mainDigest):\(copyDigest)" }
        try await switchRelease(site: plan.site, release: plan.release, stage: swap ? plan.stagingPath : nil, worker: plan.worker,
                                dependencies: plan.dependencies, connection: connection, script: script, operation: operation,
                                verified: verified)
        operation.report.pruned = try await operation.step(.prune, detail: "keep \(plan.worker.keepReleases)") {
            let facts = try await connection.run(script, step: SyncStep.prune.rawValue,
                                                 arguments: ["prune", ws, String(plan.worker.keepReleases)], onLine: operation.onLine)
            let pruned = Self.words(facts["pruned"])
            return (pruned, pruned.isEmpty ? "nothing to remove" : "removed \(pruned.joined(separator: ", "))")
        }
    }

    /// A release is immutable once built. When the worker's live release is this one, was recorded
    /// as verified when it went live (a complete, checksummed copy), the main server's release still
    /// has the digest recorded then, and the worker's copy still has its own, the copy is kept: only
    /// the deployment data and includes go over, and services restart only if those changed or a
    /// service is not running. Returns false when a full staged sync is needed.
    func keepLiveRelease(_ plan: SyncPlan, connection: WorkerConnection, script: RemoteScript, facts: [String: String],
                         operation: Operation) async throws -> Bool {
        guard !plan.full, facts["current_release"] == plan.release, facts["verified_release"] == plan.release else { return false }
        let record: String? = try await operation.step(.compare, detail: "\(plan.release) is live and verified; comparing digests") {
            switch try await verifiedCopyStands(plan, facts: facts, connection: connection, script: script) {
            case .kept(let record): return (record, "identical: kept")
            case .mainChanged: return (nil, "the main server's release changed since: staging a fresh copy")
            case .copyChanged: return (nil, "the worker's copy changed since: staging a fresh copy")
            case .notVerified: return (nil, "not verified: staging a fresh copy")
            }
        }
        guard let record else { return false }
        operation.report.releaseKept = true
        let data = plan.transfers(base: nil).filter { $0.name != "release" }
        operation.report.transfers = try await operation.step(.stage, detail: "deployment data and includes only") {
            operation.workerState = "unchanged: the release runs (deployment-data and includes may be updated)"
            let results = try await transferCancellable(data, connection: connection)
            let total = results.reduce(TransferStats()) { $0 + $1.stats }
            return (results, "\(total.regularFilesTransferred) files, \(ByteCount.format(total.bytesSent)) sent")
        }
        let total = operation.report.totals
        let wanted = Set(plan.startedServices(facts: facts))
        let running = Set(SyncRunner.words(facts["running"]))
        let dataChanged = total.regularFilesTransferred + total.deletedFiles + total.createdFiles > 0
        if !dataChanged && running == wanted {
            operation.report.servicesKept = true
            operation.report.runningServices = running.sorted()
            return true
        }
        // Restart on the same release: the switch's stop, start, checks and undo, no flip; the
        // copy stays the verified one.
        try await switchRelease(site: plan.site, release: plan.release, stage: nil, worker: plan.worker,
                                dependencies: plan.dependencies, connection: connection, script: script, operation: operation,
                                step: .restart, verified: record)
        return true
    }

    enum CopyCheck: Equatable {
        /// The copy stands; `record` is its verification (MAIN_DIGEST:COPY_DIGEST), to record again.
        case kept(record: String)
        case mainChanged, copyChanged, notVerified
    }

    /// Whether the worker's live copy of `plan`'s release is the verified one and still matches
    /// the main server's release, by digests only (no file is read). `facts` are preflight's or status's.
    func verifiedCopyStands(_ plan: SyncPlan, facts: [String: String], connection: WorkerConnection,
                            script: RemoteScript) async throws -> CopyCheck {
        guard facts["current_release"] == plan.release, facts["verified_release"] == plan.release,
              let recordedMain = facts["verified_main"], let recordedCopy = facts["verified_copy"], !recordedCopy.isEmpty else { return .notVerified }
        let main: String?
        if let known = plan.mainDigest { main = known } else { main = await ReleaseDigest.local(plan, runner: runner) }
        guard main == recordedMain else { return .mainChanged }
        var live = facts["live_digest"]
        if live == nil {
            live = try await connection.run(script, step: SyncStep.compare.rawValue,
                                            arguments: ["digest", plan.worker.workspacePath, plan.release] + plan.releaseExcludes)["digest"]
        }
        return live == recordedCopy ? .kept(record: "\(recordedMain):\(recordedCopy)") : .copyChanged
    }

    func inPlaceSync(_ plan: SyncPlan, connection: WorkerConnection, script: RemoteScript, operation: Operation) async throws {
        let ws = plan.worker.workspacePath
        if let signal = interrupt?.received {
            throw operation.fail(.preflight, SyncError.interrupted(signal: signal, state: "stopped before any change"))
        }
        // From here an in-place sync is not interrupted: stopping half-way would leave a mixed release.
        let stopStarted = ContinuousClock.now
        try await operation.step(.stopServices) {
            operation.workerState = "services stopping, files unchanged"
            _ = try await connection.run(script, step: SyncStep.stopServices.rawValue, arguments: ["stop", ws, plan.stopTimeoutArgument], onLine: operation.onLine)
            operation.workerState = "services stopped, files unchanged"
            return ((), "all services of the site's compose project are down")
        }
        operation.report.transfers = try await operation.step(.transfer, detail: "in place, services down") {
            operation.workerState = "services stopped, files partly transferred"
            let results = try await transferAll(plan.transfers(base: nil), connection: connection)
            let total = results.reduce(TransferStats()) { $0 + $1.stats }
            return (results, "\(total.regularFilesTransferred) files, \(ByteCount.format(total.bytesSent)) sent")
        }
        operation.workerState = "services stopped, files of \(plan.release) transferred"
        try await operation.step(.link, detail: plan.release) {
            _ = try await connection.run(script, step: SyncStep.link.rawValue, arguments: ["activate", ws, plan.site, plan.release], onLine: operation.onLine)
            operation.workerState = "services stopped, frappe-bench -> \(plan.release) with worker configs"
            return ((), "frappe-bench -> \(plan.release); worker configs linked")
        }
        operation.report.runningServices = try await operation.step(.startServices) {
            let facts = try await connection.run(script, step: SyncStep.startServices.rawValue,
                                                 arguments: ["start", ws] + plan.startArguments, onLine: operation.onLine)
            operation.report.downtimeSeconds = (ContinuousClock.now - stopStarted).seconds - Double(plan.worker.settleSeconds)
            let running = Self.words(facts["running"])
            return (running, running.joined(separator: ", "))
        }
    }

    /// The critical section, run by the worker as one detached job that undoes itself on failure.
    /// An interrupt arriving now is handled after it: the switch is seconds long and never split.
    func switchRelease(site: String, release: String, stage: String?, worker: WorkerSettings, dependencies: [WorkerDependency],
                       connection: WorkerConnection, script: RemoteScript, operation: Operation,
                       step: SyncStep = .switchRelease, verified: String? = nil) async throws {
        let ws = worker.workspacePath
        let arguments = ["switch", ws, site, release, stage ?? "-", worker.stopTimeout.map(String.init) ?? "-"]
            + SyncPlan.startArguments(worker: worker, dependencies: dependencies) + [verified ?? "-"]
        operation.workerState = "switching to \(release)"
        let detail = step == .restart ? "stop and start on \(release), check" : "stop, flip frappe-bench -> \(release), start"
        let facts = try await operation.step(step, detail: detail) {
            let (command, output) = try await connection.runPhase(script, arguments: arguments, onLine: operation.onLine)
            let facts = WorkerConnection.facts(output.standardOutput)
            if let downtime = facts["downtime_ms"].flatMap(Double.init) { operation.report.downtimeSeconds = downtime / 1000 }
            let reason = output.standardErrorTail.last { $0.hasPrefix("error: ") && !$0.contains("going back") }.map { String($0.dropFirst(7)) }
                ?? "exit \(output.exitCode)"
            switch output.exitCode {
            case 0:
                return (facts, "downtime \(String(format: "%.2f", operation.report.downtimeSeconds ?? 0)) s")
            case 7:
                operation.workerState = "rolled back: \(facts["rolled_back"] ?? "the previous release") runs again"
                throw SyncError.rolledBack(host: worker.server, release: release, previous: facts["rolled_back"] ?? "the previous release", reason: reason)
            case 8:
                operation.workerState = "services stopped"
                throw SyncError.switchFailed(host: worker.server, release: release, reason: reason)
            case 5:
                operation.workerState = "unchanged: stopping the services failed, so the old release was started again"
                throw connection.failure(step: step.rawValue, command: command, output: output)
            default:
                operation.workerState = "unknown: the switch's outcome was not reported; see \(worker.siteDirectory)/.frappe-deployer/switch.log on the worker"
                throw connection.failure(step: step.rawValue, command: command, output: output)
            }
        }
        operation.workerState = "\(release) runs"
        operation.report.runningServices = Self.words(facts["running"])
        if let signal = interrupt?.received {
            throw operation.fail(.switchRelease, SyncError.interrupted(signal: signal, state: "the switch completed first: \(release) runs"))
        }
    }

    // MARK: - Transfers

    /// Transfers that stop (their rsyncs are terminated) when an interrupt arrives.
    func transferCancellable(_ transfers: [RsyncTransfer], connection: WorkerConnection) async throws -> [(name: String, stats: TransferStats)] {
        let task = Task { try await transferAll(transfers, connection: connection) }
        interrupt?.onRaise { _ in task.cancel() }
        return try await task.value
    }

    /// The independent trees go in parallel over the one master connection.
    func transferAll(_ transfers: [RsyncTransfer], connection: WorkerConnection) async throws -> [(name: String, stats: TransferStats)] {
        let mode: RsyncOutput = verbose ? .itemized : (reporter.wantsProgress ? .progress : .quiet)
        var stats = [TransferStats](repeating: TransferStats(), count: transfers.count)
        try await withThrowingTaskGroup(of: (Int, TransferStats).self) { group in
            for (index, transfer) in transfers.enumerated() {
                let onLine = mode == .quiet ? nil : rsyncForwarder(host: connection.endpoint.host, tree: transfer.name)
                group.addTask {
                    let result = try await connection.transfer(transfer, output: mode, onLine: onLine).stats
                    return (index, result)
                }
            }
            for try await (index, result) in group { stats[index] = result }
        }
        try Task.checkCancellation()
        return zip(transfers, stats).map { (name: $0.name, stats: $1) }
    }

    /// Forwards rsync's itemized changes and errors; its --stats block goes to the report instead.
    func rsyncForwarder(host: String, tree: String) -> @Sendable (OutputStream, String) -> Void {
        { [reporter] stream, line in
            if let progress = RsyncProgress.parse(line) {
                reporter.report(.progress(host: host, tree: tree, progress: progress))
                return
            }
            let itemized = line.first.map { "<>ch.*".contains($0) } ?? false
            if stream == .standardError || itemized {
                reporter.report(.output(host: host, source: tree, line: line))
            }
        }
    }

    /// The words of a space-separated fact (service or release names), sorted.
    static func words(_ line: String?) -> [String] {
        (line ?? "").split(separator: " ").map(String.init).sorted()
    }
}

/// One operation on one worker: times its steps, tracks what the worker holds, owns the lock.
final class Operation {
    let worker: WorkerSettings
    let reporter: any SyncReporting
    let runner: SyncRunner
    var report: SyncReport
    /// What the worker holds as the steps move it: reported if a step fails.
    var workerState = "unchanged"

    init(worker: WorkerSettings, reporter: any SyncReporting, runner: SyncRunner, report: SyncReport) {
        self.worker = worker
        self.reporter = reporter
        self.runner = runner
        self.report = report
    }

    var host: String { worker.server }

    var onLine: (@Sendable (OutputStream, String) -> Void)? {
        guard runner.verbose else { return nil }
        return { [reporter, host] _, line in
            if !line.trimmed.isEmpty { reporter.report(.output(host: host, source: "worker", line: line)) }
        }
    }

    func step<T>(_ step: SyncStep, detail: String = "", _ body: () async throws -> (T, String)) async throws -> T {
        reporter.report(.stepStarted(step, host: host, detail: detail))
        let start = ContinuousClock.now
        do {
            let (value, finished) = try await body()
            let seconds = (ContinuousClock.now - start).seconds
            report.stepSeconds.append((step, seconds))
            reporter.report(.stepFinished(step, host: host, seconds: seconds, detail: finished))
            return value
        } catch let failure as SyncFailure {
            throw failure
        } catch {
            reporter.report(.stepFailed(step, host: host, seconds: (ContinuousClock.now - start).seconds))
            throw fail(step, error)
        }
    }

    func fail(_ step: SyncStep, _ error: any Error) -> SyncFailure {
        SyncFailure(step: step, host: host, underlying: error, workerState: workerState)
    }

    /// Connects, checks the worker and takes its lock (one round trip: nothing is written unless
    /// every check passes), runs `body` with the worker's facts, and always releases the lock and
    /// the connection.
    func locked(script: RemoteScript, token: String, site: String, digestExcludes: [String] = [],
                _ body: (WorkerConnection, [String: String]) async throws -> Void) async throws -> SyncReport {
        let connection = try await step(.connect, detail: "\(worker.destination) port \(worker.sshPort)") {
            (try await WorkerConnection.open(worker: worker, runner: runner.runner), "one connection, shared by every step")
        }
        var holdsLock = false
        do {
            let facts = try await step(.preflight, detail: "\(worker.siteDirectory), then take its lock") {
                let (facts, note) = try await WorkerLock(connection: connection, script: script, worker: worker, token: token, site: site,
                                                         digestExcludes: digestExcludes).acquire()
                holdsLock = true
                let current = facts["current_release"].flatMap { $0.isEmpty ? nil : $0 }
                return (facts, "workers: \(facts["worker_services"] ?? "?"); live: \(current ?? "none yet"); lock \(note)")
            }
            try await body(connection, facts)
        } catch {
            if holdsLock, await connection.isAlive() {
                _ = try? await connection.run(script, step: "unlock", arguments: ["unlock", worker.workspacePath, token])
            }
            await connection.close()
            throw error
        }
        _ = try? await connection.run(script, step: "unlock", arguments: ["unlock", worker.workspacePath, token] + lastSyncRecord)
        await connection.close()
        return report
    }

    let startedAt = Date()

    /// What the worker keeps about this (successful) operation, for `remote-worker status`.
    var lastSyncRecord: [String] {
        var record = [
            "kind=\(report.isRollback ? "rollback" : "sync")",
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
