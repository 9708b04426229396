/// Progress of a sync, as it happens; reporters turn these into output.
public enum SyncEvent: Sendable, Equatable {
    case started(site: String, release: String, destination: String, workspace: String)
    case stepStarted(SyncStep, host: String, detail: String)
    case stepFinished(SyncStep, host: String, seconds: Double, detail: String)
    case stepFailed(SyncStep, host: String, seconds: Double)
    /// A line of rsync or remote output (shown with --verbose).
    case output(host: String, source: String, line: String)
    /// How far one tree's transfer is (only for reporters that ask for progress).
    case progress(host: String, tree: String, progress: RsyncProgress)
    /// A worker waits for its wave (canaries first, then batches).
    case waiting(host: String, reason: String)
    /// Something learnt about a worker outside its steps (the canary's job check).
    case note(host: String, text: String)
}

/// Receives sync events; implementations must be safe to call from concurrent transfers.
public protocol SyncReporting: Sendable {
    func report(_ event: SyncEvent)
    /// Whether transfers should measure their progress for this reporter (a live display).
    var wantsProgress: Bool { get }
    /// Called once when the run is over, before the results are printed (a live display leaves
    /// its last frame in place).
    func finish()
}

extension SyncReporting {
    public var wantsProgress: Bool { false }
    public func finish() {}
}

/// Reports nothing (--quiet).
public struct SilentReporter: SyncReporting {
    public init() {}
    public func report(_ event: SyncEvent) {}
}
