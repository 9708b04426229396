import Foundation

/// `remote-worker watch`: follows the site's `frappe-bench` link on the main server and syncs every
/// worker to the release it points at. A move is acted on once the link has stayed put for
/// `debounce` seconds (a deploy's several steps cause one sync). Each worker goes on its own: one
/// that fails is retried with a doubling wait (5 s up to `retryMax`) while the others are done; a
/// release that failed its checks on a worker (rolled back, marked bad) or was refused there is not
/// retried on it until the link moves again. One round of syncs runs at a time, so a site never has
/// two syncs at once from here (and each worker's lock guards against any other).
public struct ReleaseWatch: Sendable {
    public struct Options: Sendable, Equatable {
        public var debounce: Int
        /// Seconds between reads of the link when inotify is not used (and as a safety net with it).
        public var poll: Int
        public var retryMax: Int
        /// Use polling only, even where inotify works.
        public var pollOnly: Bool

        public init(debounce: Int = 5, poll: Int = 2, retryMax: Int = 300, pollOnly: Bool = false) {
            self.debounce = debounce
            self.poll = poll
            self.retryMax = retryMax
            self.pollOnly = pollOnly
        }
    }

    /// What one worker has been given, and when to try it again.
    struct WorkerState {
        var synced: String?
        /// A release not to try again on this worker (its checks failed there, or it was refused).
        var gaveUp: String?
        var failures = 0
        /// When a failed worker is tried again; nil: at once.
        var nextAttempt: ContinuousClock.Instant?
    }

    public let link: String
    public let options: Options
    let makePlans: @Sendable () throws -> (SyncSettings, [SyncPlan])
    let runner: any CommandRunning
    let reporter: any SyncReporting
    let verbose: Bool
    let log: @Sendable (String) -> Void

    public init(link: String, options: Options, runner: any CommandRunning, reporter: any SyncReporting, verbose: Bool,
                log: @escaping @Sendable (String) -> Void, makePlans: @escaping @Sendable () throws -> (SyncSettings, [SyncPlan])) {
        self.link = link
        self.options = options
        self.runner = runner
        self.reporter = reporter
        self.verbose = verbose
        self.log = log
        self.makePlans = makePlans
    }

    /// The base of the retry wait: 5 s, doubling per failure, at most `retryMax`.
    public static func retryWait(failures: Int, max limit: Int) -> Int {
        min(limit, 5 << min(max(0, failures - 1), 16))
    }

    /// Watches until SIGINT/SIGTERM; returns the signal that ended it.
    public func run(interrupt: InterruptSignal) async -> Int32 {
        let directory = (link as NSString).deletingLastPathComponent
        let watcher = options.pollOnly ? nil : LinkWatcher.start(directory: directory, name: (link as NSString).lastPathComponent)
        defer { watcher?.stop() }
        let pollEvery: Duration = .seconds(watcher == nil ? options.poll : max(options.poll, 30))
        log("watch: following \(link) (\(watcher == nil ? "polling every \(options.poll) s" : "inotify")); debounce \(options.debounce) s")

        var states: [String: WorkerState] = [:]
        var seen = Self.target(of: link)
        var lastEvents = watcher?.count ?? 0
        var nextRead = ContinuousClock.now + pollEvery
        // The first round at once: the workers catch up with what is live now.
        var nextRound: ContinuousClock.Instant? = .now
        while interrupt.received == nil {
            let events = watcher?.count ?? 0
            if events != lastEvents || ContinuousClock.now >= nextRead {
                lastEvents = events
                nextRead = ContinuousClock.now + pollEvery
                let target = Self.target(of: link)
                if target != seen {
                    seen = target
                    nextRound = .now + .seconds(options.debounce)
                    // A new release is tried at once on workers that were failing.
                    for key in states.keys { states[key]?.failures = 0; states[key]?.nextAttempt = nil }
                    log("watch: frappe-bench -> \(target ?? "(missing)"); syncing once it stays for \(options.debounce) s")
                }
            }
            if let next = nextRound, ContinuousClock.now >= next {
                nextRound = await round(&states, interrupt: interrupt)
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
        let signal = interrupt.received ?? SIGTERM
        log("watch: stopped (\(signal == SIGTERM ? "SIGTERM" : "SIGINT"))")
        return signal
    }

    /// Syncs every worker that is due; returns when to come back: the earliest retry of a worker
    /// that failed, a later try when the plans could not be made (a config or workspace problem,
    /// said once per try), or nil when every worker is done until the link moves.
    func round(_ states: inout [String: WorkerState], interrupt: InterruptSignal) async -> ContinuousClock.Instant? {
        let settings: SyncSettings
        let plans: [SyncPlan]
        do {
            (settings, plans) = try makePlans()
        } catch {
            let wait = Self.retryWait(failures: 2, max: options.retryMax)
            log("watch: cannot sync: \(error.userMessage); trying again in \(wait) s")
            return .now + .seconds(wait)
        }
        func pending(_ plan: SyncPlan) -> WorkerState? {
            let state = states[Self.key(plan.worker)] ?? WorkerState()
            return state.synced != plan.release && state.gaveUp != plan.release ? state : nil
        }
        let now = ContinuousClock.now
        let due = plans.filter { pending($0).map { ($0.nextAttempt ?? now) <= now } ?? false }
        if let release = due.first?.release {
            log("watch: syncing \(release) to \(due.map(\.worker.server).joined(separator: ", "))")
            let syncs = SyncRunner(runner: runner, reporter: reporter, verbose: verbose, interrupt: interrupt, hooks: settings.hooks)
            let outcomes = await FleetRunner(parallel: settings.parallel, failFast: false, rollout: settings.rollout)
                .run(due.map(\.worker), interrupt: interrupt, reporter: reporter, canaryCheck: { index, report in
                    await syncs.canaryCheck(site: settings.siteName, worker: due[index].worker, services: report.runningServices)
                }) { index in try await syncs.run(due[index]) }
            for (plan, outcome) in zip(due, outcomes) where outcome.skipped == nil && (interrupt.received == nil || outcome.succeeded) {
                states[Self.key(plan.worker)] = record(outcome, of: plan, in: states[Self.key(plan.worker)] ?? WorkerState())
            }
            // Workers a failed canary or batch kept back go with its retry (after it, in order),
            // or, when every failure there is final for this release, wait for the next one too.
            let failed = zip(due, outcomes).filter { $0.1.skipped == nil && !$0.1.succeeded }.compactMap { states[Self.key($0.0.worker)] }
            let retry = failed.compactMap { $0.gaveUp == release ? nil : $0.nextAttempt }.min()
            for (plan, outcome) in zip(due, outcomes) where outcome.skipped != nil && interrupt.received == nil {
                var state = states[Self.key(plan.worker)] ?? WorkerState()
                if let retry {
                    state.nextAttempt = retry
                    log("[\(plan.worker.server)] \(outcome.problem ?? "not started"); goes with that worker's retry")
                } else {
                    state.gaveUp = plan.release
                    log("[\(plan.worker.server)] \(outcome.problem ?? "not started"); not tried until frappe-bench moves")
                }
                states[Self.key(plan.worker)] = state
            }
        }
        return plans.compactMap(pending).map { $0.nextAttempt ?? .now }.min()
    }

    /// The worker's state after `outcome`, said in one line.
    private func record(_ outcome: WorkerOutcome, of plan: SyncPlan, in state: WorkerState) -> WorkerState {
        let server = plan.worker.server
        if let report = outcome.report, outcome.succeeded {
            let how = report.servicesKept ? "unchanged, kept" : report.handover != nil ? "handed over, no worker gap" : "synced"
            log("[\(server)] \(plan.release) runs (\(how), \(String(format: "%.1f", report.totalSeconds)) s)")
            return WorkerState(synced: plan.release)
        }
        var state = state
        let problem = outcome.problem ?? "failed"
        switch HistoryEntry.result(of: outcome.error) {
        case .rolledBack, .switchFailed, .refused:
            state.gaveUp = plan.release
            log("[\(server)] \(problem); not tried again on \(server) until frappe-bench moves")
        default:
            state.failures += 1
            let wait = Self.retryWait(failures: state.failures, max: options.retryMax)
            state.nextAttempt = .now + .seconds(wait)
            log("[\(server)] \(problem); trying again in \(wait) s")
        }
        return state
    }

    static func key(_ worker: WorkerSettings) -> String { "\(worker.server):\(worker.sshPort)" }

    static func target(of link: String) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: link)
    }
}
