import Foundation

/// A sync failed at one step on one worker.
public struct SyncFailure: Error, LocalizedError {
    public var step: SyncStep
    public var host: String
    public var underlying: any Error
    /// What state the worker was left in, for the operator.
    public var workerState: String

    public var errorDescription: String? {
        (underlying as? LocalizedError)?.errorDescription ?? String(describing: underlying)
    }

    /// The failing command and the tail of its standard error (shown with --verbose).
    public var details: [String] {
        ((underlying as? RemoteError)?.details ?? []) + ["worker state: \(workerState)"]
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
        }
    }
}
