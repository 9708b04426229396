import Foundation

/// How one worker of a run ended.
public struct WorkerOutcome: Sendable {
    public var worker: WorkerSettings
    public var report: SyncReport?
    public var error: (any Error)?
    /// Why the worker was never started (--fail-fast after a failure, or an interrupt); nil if it ran.
    public var skipped: String?

    public init(worker: WorkerSettings, report: SyncReport? = nil, error: (any Error)? = nil, skipped: String? = nil) {
        self.worker = worker
        self.report = report
        self.error = error
        self.skipped = skipped
    }

    public var succeeded: Bool { report != nil && error == nil && skipped == nil }

    /// The exit status this outcome alone would give (documented in README).
    public var exitCode: Int32 {
        if succeeded { return 0 }
        if skipped != nil { return 1 }
        switch (error as? SyncFailure)?.underlying ?? error {
        case SyncError.locked?: return 3
        case SyncError.interrupted?: return 130
        default: return 1
        }
    }

    /// One line on what went wrong, and what the worker holds now.
    public var problem: String? {
        if let skipped { return "not started: \(skipped)" }
        guard let error else { return nil }
        var message = (error as? LocalizedError)?.errorDescription ?? String(describing: error)
        if let failure = error as? SyncFailure {
            switch failure.underlying {
            case SyncError.locked, SyncError.interrupted, SyncError.rolledBack, SyncError.noPreviousRelease: break
            default: if failure.workerState != "unchanged" { message += " (worker: \(failure.workerState))" }
            }
        }
        return message
    }
}

/// Runs one operation on each of several workers, `parallel` at a time, and reports each result.
/// By default every worker runs whatever the others do; with `failFast`, no worker starts after
/// one has failed (those already running finish, never cut off mid-switch).
public struct FleetRunner: Sendable {
    public let parallel: Int
    public let failFast: Bool

    public init(parallel: Int, failFast: Bool) {
        self.parallel = max(1, parallel)
        self.failFast = failFast
    }

    public func run(_ workers: [WorkerSettings], interrupt: InterruptSignal? = nil,
                    _ operation: @escaping @Sendable (Int) async throws -> SyncReport) async -> [WorkerOutcome] {
        var outcomes = workers.map { WorkerOutcome(worker: $0, skipped: "an earlier worker failed (--fail-fast)") }
        await withTaskGroup(of: (Int, SyncReport?, (any Error)?).self) { group in
            @Sendable func attempt(_ index: Int) async -> (Int, SyncReport?, (any Error)?) {
                do {
                    return (index, try await operation(index), nil)
                } catch {
                    return (index, nil, error)
                }
            }
            var next = 0
            while next < min(parallel, workers.count) {
                let index = next
                group.addTask { await attempt(index) }
                next += 1
            }
            var stop = false
            while let (index, report, error) = await group.next() {
                outcomes[index] = WorkerOutcome(worker: workers[index], report: report, error: error)
                if error != nil && failFast { stop = true }
                if let signal = interrupt?.received, !stop {
                    stop = true
                    for later in next..<workers.count { outcomes[later].skipped = "interrupted (signal \(signal))" }
                }
                if !stop && next < workers.count {
                    let index = next
                    group.addTask { await attempt(index) }
                    next += 1
                }
            }
        }
        return outcomes
    }

    /// The run's exit status: 0 when every worker succeeded; 130 if interrupted; 3 when every
    /// failure was a held lock; else 1.
    public static func exitCode(_ outcomes: [WorkerOutcome]) -> Int32 {
        let codes = outcomes.map(\.exitCode).filter { $0 != 0 }
        if codes.isEmpty { return 0 }
        if codes.contains(130) { return 130 }
        if codes.allSatisfy({ $0 == 3 }) { return 3 }
        return 1
    }
}
