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

    /// What the worker runs after this run, in a few words, for a fleet's closing lines.
    public var runsNow: String {
        if let report, error == nil { return "runs \(report.release)" }
        if let skipped { return "not started (\(skipped)): runs what it ran before" }
        guard let failure = error as? SyncFailure else { return "failed" }
        return failure.workerState == .unchanged ? "failed; unchanged: runs what it ran before" : "failed; \(failure.workerState)"
    }

    /// One line on what went wrong, and what the worker holds now.
    public var problem: String? {
        if let skipped { return "not started: \(skipped)" }
        guard let error else { return nil }
        var message = error.userMessage
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

/// Runs one operation on each of several workers, wave by wave (`Rollout`: canaries, then
/// batches), `parallel` at a time within a wave, and reports each result. By default every worker
/// of a wave runs whatever the others do; with `failFast`, no worker starts after one has failed
/// (those already running finish, never cut off mid-switch). A wave with a failure stops the
/// waves after it.
public struct FleetRunner: Sendable {
    public let parallel: Int
    public let failFast: Bool
    public let rollout: Rollout

    public init(parallel: Int, failFast: Bool, rollout: Rollout = Rollout()) {
        self.parallel = max(1, parallel)
        self.failFast = failFast
        self.rollout = rollout
    }

    /// `canaryCheck` judges a canary that synced, once `batchWait` has passed and before the next
    /// wave: a problem fails the canary and starts no other worker.
    public func run(_ workers: [WorkerSettings], interrupt: InterruptSignal? = nil, reporter: (any SyncReporting)? = nil,
                    canaryCheck: (@Sendable (Int, SyncReport) async -> (problem: String?, note: String))? = nil,
                    _ operation: @escaping @Sendable (Int) async throws -> SyncReport) async -> [WorkerOutcome] {
        var outcomes = workers.map { WorkerOutcome(worker: $0) }
        var ran = [Bool](repeating: false, count: workers.count)
        var stopped: String?
        let waves = rollout.waves(count: workers.count)
        for (number, wave) in waves.enumerated() {
            if let stopped {
                for index in wave.workers { outcomes[index].skipped = stopped }
                continue
            }
            if number > 0 {
                let previous = waves[number - 1].name
                for index in wave.workers {
                    reporter?.report(.waiting(host: workers[index].server, reason: "\(wave.name) starts when \(previous) is done"
                        + (rollout.batchWait > 0 ? " and \(rollout.batchWait) s have passed" : "")))
                }
                await pause(rollout.batchWait, interrupt: interrupt)
                if waves[number - 1].isCanary, let canaryCheck, interrupt?.received == nil {
                    stopped = await check(waves[number - 1], outcomes: &outcomes, reporter: reporter, canaryCheck)
                    if let stopped {
                        for index in wave.workers { outcomes[index].skipped = stopped }
                        continue
                    }
                }
            }
            let failFast = self.failFast
            let results = await Self.map(wave.workers.count, parallel: parallel, goOn: { finished in
                interrupt?.received == nil && !(failFast && finished.contains { $0?.1 != nil })
            }) { position -> (SyncReport?, (any Error)?) in
                do {
                    return (try await operation(wave.workers[position]), nil)
                } catch {
                    return (nil, error)
                }
            }
            for (position, result) in results.enumerated() {
                guard let (report, error) = result else { continue }
                let index = wave.workers[position]
                ran[index] = true
                outcomes[index].report = report
                outcomes[index].error = error
            }
            let failed = wave.workers.filter { ran[$0] && !outcomes[$0].succeeded }.map { workers[$0].server }
            if let signal = interrupt?.received {
                stopped = "interrupted (signal \(signal))"
            } else if !failed.isEmpty && failFast {
                stopped = "an earlier worker failed (--fail-fast)"
            } else if !failed.isEmpty && waves.count > 1 {
                stopped = "\(wave.name) failed on \(failed.joined(separator: ", ")), so no later worker started"
            }
            for index in wave.workers where !ran[index] {
                outcomes[index].skipped = stopped ?? "an earlier worker failed (--fail-fast)"
            }
        }
        return outcomes
    }

    /// Checks each canary that synced; returns why no later worker starts, or nil when all pass.
    private func check(_ wave: Rollout.Wave, outcomes: inout [WorkerOutcome], reporter: (any SyncReporting)?,
                       _ canaryCheck: @Sendable (Int, SyncReport) async -> (problem: String?, note: String)) async -> String? {
        var failed: [String] = []
        for index in wave.workers {
            guard outcomes[index].succeeded, let report = outcomes[index].report else { continue }
            let host = outcomes[index].worker.server
            let (problem, note) = await canaryCheck(index, report)
            if !note.isEmpty { reporter?.report(.note(host: host, text: "canary check: \(note)")) }
            outcomes[index].report?.canaryCheck = note
            if let problem {
                failed.append(host)
                outcomes[index].error = SyncFailure(step: .canaryCheck, host: host,
                                                    underlying: SyncError.canaryFailed(host: host, release: report.release, problem: problem),
                                                    workerState: .described("runs \(report.release)"))
            }
        }
        return failed.isEmpty ? nil : "the canary check failed on \(failed.joined(separator: ", ")), so no later worker started"
    }

    /// Waits `seconds` between waves; SIGINT/SIGTERM end the wait at once.
    private func pause(_ seconds: Int, interrupt: InterruptSignal?) async {
        let end = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < end, interrupt?.received == nil {
            try? await Task.sleep(for: .milliseconds(100))
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
