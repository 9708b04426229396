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
        case SyncError.locked?, SyncError.stillDraining?: return 3
        case SyncError.interrupted?, RemoteError.interrupted?: return 130
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
            case SyncError.locked, SyncError.interrupted, SyncError.rolledBack, SyncError.noPreviousRelease, SyncError.stillDraining,
                 RemoteError.interrupted: break
            default: if failure.workerState != .unchanged { message += " (worker: \(failure.workerState))" }
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
        let failFast = self.failFast
        let results = await Self.map(workers.count, parallel: parallel, goOn: { finished in
            interrupt?.received == nil && !(failFast && finished.contains { $0?.1 != nil })
        }) { index -> (SyncReport?, (any Error)?) in
            do {
                return (try await operation(index), nil)
            } catch {
                return (nil, error)
            }
        }
        let skipped = interrupt?.received.map { "interrupted (signal \($0))" } ?? "an earlier worker failed (--fail-fast)"
        return zip(workers, results).map { worker, result in
            guard let (report, error) = result else { return WorkerOutcome(worker: worker, skipped: skipped) }
            return WorkerOutcome(worker: worker, report: report, error: error)
        }
    }

    /// Runs `body` for 0..<count, at most `parallel` at once, starting in index order; before each
    /// later start `goOn` sees the results so far and may stop the starts (running ones finish).
    /// Results come back by index; nil for those never started.
    public static func map<T: Sendable>(_ count: Int, parallel: Int, goOn: ([T?]) -> Bool = { _ in true },
                                        _ body: @escaping @Sendable (Int) async -> T) async -> [T?] {
        var results = [T?](repeating: nil, count: count)
        await withTaskGroup(of: (Int, T).self) { group in
            var next = 0
            while next < min(max(1, parallel), count) {
                let index = next
                group.addTask { (index, await body(index)) }
                next += 1
            }
            // group.next() rather than for-await: tasks are added while results are taken.
            while let (index, result) = await group.next() {
                results[index] = result
                if next < count && goOn(results) {
                    let index = next
                    group.addTask { (index, await body(index)) }
                    next += 1
                }
            }
        }
        return results
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
