import Foundation

extension Error {
    /// The one line people read for this error: its own description when it has one.
    public var userMessage: String { (self as? LocalizedError)?.errorDescription ?? String(describing: self) }
}

/// A sync failed at one step on one worker.
public struct SyncFailure: Error, LocalizedError {
    public var step: SyncStep
    public var host: String
    public var underlying: any Error
    /// What state the worker was left in, for the operator.
    public var workerState: WorkerState
    /// Hooks that ran for this worker (on_failure, after the lock was released).
    public var hooks: [HookRun] = []

    public init(step: SyncStep, host: String, underlying: any Error, workerState: WorkerState) {
        self.step = step
        self.host = host
        self.underlying = underlying
        self.workerState = workerState
    }

    public var errorDescription: String? {
        underlying.userMessage
    }

    /// The failing command and the tail of its standard error (shown with --verbose).
    public var details: [String] {
        ((underlying as? RemoteError)?.details ?? []) + ["worker state: \(workerState)"]
    }
}

/// What a worker holds after a step, as a failure reports it: untouched (nothing was written), or
/// in a state described for the operator.
public enum WorkerState: Sendable, Equatable, CustomStringConvertible {
    /// Nothing on the worker was changed.
    case unchanged
    /// What the worker holds now, in words ("services stopped", "rolled back: X runs again").
    case described(String)

    public var description: String {
        switch self {
        case .unchanged: "unchanged"
        case .described(let text): text
        }
    }
}

/// Outcomes of a sync that are not a failing command.
public enum SyncError: Error, Equatable, LocalizedError {
    /// Another sync holds the worker's lock.
    case locked(host: String, holder: String, since: String, waited: Int)
    /// SIGINT or SIGTERM arrived; `state` says what the worker runs now.
    case interrupted(signal: Int32, state: String)
    /// The new release did not start; the previous one was started again.
    case rolledBack(host: String, release: String, previous: String, reason: String)
    /// The new release did not start and the previous could not be brought back (or there was none).
    case switchFailed(host: String, release: String, reason: String)
    case noPreviousRelease(host: String, live: String)
    /// A handover needs at most two generations, and an earlier one still drains.
    case stillDraining(host: String, release: String, since: String, running: [String], waited: Int)
    /// The release's last switch on this worker failed its checks and was rolled back.
    case markedBad(host: String, release: String)
    /// The canary runs the release, but its job check failed: no other worker was started.
    case canaryFailed(host: String, release: String, problem: String)

    public var errorDescription: String? {
        switch self {
        case .locked(let host, let holder, let since, let waited):
            let wait = waited > 0 ? " after waiting \(waited) s" : ""
            return "\(host) is locked by another sync (\(holder), since \(since))\(wait): wait for it to finish, or pass --lock-wait SECONDS"
        case .interrupted(let signal, let state):
            return "interrupted by \(signal == SIGTERM ? "SIGTERM" : "SIGINT"): \(state)"
        case .rolledBack(let host, let release, let previous, let reason):
            return "\(release) did not start on \(host) (\(reason)); rolled back: \(previous) is running again"
        case .switchFailed(let host, let release, let reason):
            return "\(release) did not start on \(host) (\(reason)) and no previous release could be started: worker services are stopped"
        case .noPreviousRelease(let host, let live):
            return "\(host) has no release to roll back to (live: \(live.isEmpty ? "none" : live))"
        case .stillDraining(let host, let release, let since, let running, let waited):
            return "\(host) still drains \(release) (\(running.joined(separator: ", ")) finishing their jobs since \(since))"
                + (waited > 0 ? " after waiting \(waited) s" : "")
                + ": a handover runs at most two generations; sync again when it has drained (remote-worker status shows it), or pass --lock-wait SECONDS to wait"
        case .canaryFailed(let host, let release, let problem):
            return "canary \(host) runs \(release), but \(problem): no other worker was started; "
                + "if the release is at fault, roll the canary back with remote-worker rollback"
        case .markedBad(let host, let release):
            return "\(release) is marked bad on \(host): its last switch there was rolled back automatically (remote-worker history shows why); "
                + "deploy a fixed release, or pass --force to sync this one again"
        }
    }
}
