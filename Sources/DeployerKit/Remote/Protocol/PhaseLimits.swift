/// How long each phase may run on the worker, and whether SIGINT/SIGTERM may cut it off: the
/// one place these are decided.
extension WorkerPhase {
    /// The most a quick phase (a check, a record, the lock) may take: never more than `base`.
    static let quickLimit = 120

    /// The phase's time limit for a worker whose `phase_timeout` is `base` seconds: `base` for
    /// work on files (staging, digests, pruning); on top of that, for phases that stop or start
    /// services, the longest stop wait and the settle time (a graceful stop may take that long);
    /// at most `quickLimit` seconds for checks and records.
    public func timeLimit(base: Int) -> Duration {
        let quick = min(Self.quickLimit, base)
        let seconds = switch self {
        case .preflight, .unlock, .status, .drains, .activate, .history, .authorize, .jobs: quick
        case .digest, .stagePrepare, .stageActivate, .unstage, .prune: base
        case .switchRelease(let request): base + request.stop.longestWait + request.start.settleSeconds
        case .stop(let rules): base + rules.longestWait
        case .start(let request): base + request.settleSeconds
        }
        return .seconds(seconds)
    }

    /// Whether SIGINT/SIGTERM may give up waiting for this phase: not for those that move
    /// services (a switch finishes first), nor for releasing the lock or a staged copy.
    public var isInterruptible: Bool {
        switch self {
        case .preflight, .status, .drains, .history, .jobs, .digest, .stagePrepare, .stageActivate, .prune: true
        case .unlock, .unstage, .switchRelease, .stop, .activate, .start, .authorize: false
        }
    }
}

extension StopRules {
    /// The longest stop wait of any service under these rules.
    public var longestWait: Int { rules.map(\.seconds).max() ?? 10 }
}
