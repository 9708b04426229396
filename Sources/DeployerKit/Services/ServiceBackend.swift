/// The services of one site on a worker, as a sync needs them: the operations that change what
/// runs, each one step on the worker with its own checks (dependencies reachable, services up and
/// not restarting). Docker Compose (`ComposeBackend`) is the one implementation; what the worker
/// runs is read with the session's check (`PreflightAnswer`) and by `status`.
public protocol ServiceBackend: Sendable {
    /// Switches the site's services to `request.release`, run by the worker as one detached
    /// operation that a dropped connection cannot cut off; undone on the worker if the release
    /// does not start. Returns how it ended, whatever the exit.
    func switchRelease(_ request: SwitchRequest, onLine: (@Sendable (OutputStream, String) -> Void)?) async throws -> SwitchAnswer

    /// In place: stops every service of the site, each with its wait under `rules`.
    func stopAll(_ rules: StopRules, onLine: (@Sendable (OutputStream, String) -> Void)?) async throws -> StopAnswer

    /// In place: starts the services and checks them.
    func start(_ request: StartRequest, onLine: (@Sendable (OutputStream, String) -> Void)?) async throws -> StartAnswer

    /// What runs and what the worker recorded, read without changing anything.
    func status(site: String, digestExcludes: [String]) async throws -> StatusAnswer
}

/// A switch that ended without a new release and without an undo to report.
public enum SwitchInterrupted: Error, Sendable {
    /// The new release could not be put in place (a staged copy not swapped in); the old
    /// services still run, nothing else changed.
    case releaseNotInPlace(RemoteError)
    /// The worker did not report how the switch ended (the connection dropped, or the switch was
    /// refused before it began).
    case outcomeUnknown(RemoteError)

    public var underlying: RemoteError {
        switch self {
        case .releaseNotInPlace(let error), .outcomeUnknown(let error): error
        }
    }
}
