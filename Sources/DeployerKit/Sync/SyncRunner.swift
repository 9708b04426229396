import Foundation

/// Runs the operations of `remote-worker` on one worker at a time: a sync (`run`), a `rollback`,
/// a `dryRun` and a `status` read share it. Each opens a `WorkerSession`, checks the worker,
/// decides from the plan and the worker's answer (`ReleaseDecision`), and executes that.
public struct SyncRunner: Sendable {
    let runner: any CommandRunning
    let reporter: any SyncReporting
    let verbose: Bool
    let interrupt: InterruptSignal?
    let hooks: HookRunner

    public init(runner: any CommandRunning, reporter: any SyncReporting, verbose: Bool, interrupt: InterruptSignal? = nil,
                hooks: Hooks = Hooks()) {
        self.runner = runner
        self.reporter = reporter
        self.verbose = verbose
        self.interrupt = interrupt
        var signal: (@Sendable () -> Int32?)?
        if let interrupt { signal = { interrupt.received } }
        self.hooks = HookRunner(hooks: hooks, runner: runner, signal: signal)
    }

    /// Syncs `plan`'s release to its worker.
    public func run(_ plan: SyncPlan) async throws -> SyncReport {
        var context = HookContext(site: plan.site, worker: plan.worker, kind: "sync", release: plan.release)
        return try await runningFailureHook(&context) { context in try await sync(plan, context: &context) }
    }

    private func sync(_ plan: SyncPlan, context: inout HookContext) async throws -> SyncReport {
        reporter.report(.started(site: plan.site, release: plan.release, destination: plan.worker.destination,
                                 workspace: plan.worker.workspacePath))
        // The release's digest is read locally while the connection opens and the worker is checked.
        let runner = self.runner
        let digest = plan.strategy == .staged ? Task { [plan] in await ReleaseDigest.local(plan, runner: runner) } : nil
        defer { digest?.cancel() }
        let session = try await WorkerSession.open(
            worker: plan.worker, context: self,
            report: SyncReport(site: plan.site, destination: plan.worker.destination, release: plan.release, strategy: plan.strategy),
            note: "one connection, shared by every step")
        return try await session.closing {
            let check = try await session.checkAndLock(site: plan.site, token: plan.token, liveDigest: plan.liveDigest)
            session.report.previousRelease = check.releases.live ?? ""
            context.previousRelease = check.releases.live
            session.report.finishedDrains = check.drains.filter { !$0.draining }
            do {
                try plan.checkNotMarkedBad(check.releases)
            } catch {
                throw SyncFailure(step: .preflight, host: plan.worker.server, underlying: error, workerState: .unchanged)
            }
            try await beforeSync(session, context)
            let rsync = try await rsyncChoices(plan.worker, check: check)
            session.report.rsync = rsync
            let mainDigest = await digest?.value
            let decision = ReleaseDecision.decide(plan, releases: check.releases, mainDigest: mainDigest)
            switch decision {
            case .inPlace:
                try await InPlaceSync(plan: plan, session: session, check: check, rsync: rsync).run()
            case .keep, .stage:
                try await StagedSync(plan: plan, session: session, check: check, rsync: rsync, mainDigest: mainDigest).run(decision)
            }
            await afterSwitch(session, context)
            return session.report
        }
    }

    /// Switches the worker to its previous release (the one live before the last switch).
    public func rollback(site: String, worker: WorkerSettings) async throws -> SyncReport {
        var context = HookContext(site: site, worker: worker, kind: "rollback")
        return try await runningFailureHook(&context) { context in try await rollback(site: site, worker: worker, context: &context) }
    }

    private func rollback(site: String, worker: WorkerSettings, context: inout HookContext) async throws -> SyncReport {
        var report = SyncReport(site: site, destination: worker.destination, release: "", strategy: .staged)
        report.isRollback = true
        let session = try await WorkerSession.open(worker: worker, context: self, report: report, note: "one connection, shared by every step")
        return try await session.closing {
            let token = SyncPlan.newToken()
            let check = try await session.checkAndLock(site: site, token: token, liveDigest: nil)
            let live = check.releases.live ?? ""
            guard let target = ReleaseDecision.rollbackTarget(check.releases) else {
                throw SyncFailure(step: .preflight, host: worker.server, underlying: SyncError.noPreviousRelease(host: worker.server, live: live),
                                  workerState: .unchanged)
            }
            session.report.release = target
            session.report.previousRelease = live
            context.release = target
            context.previousRelease = live
            session.report.finishedDrains = check.drains.filter { !$0.draining }
            try await session.awaitDrains(check.drains)
            // The previous release ran with today's queue and database: no dependency check here.
            try await session.switchServices(SwitchRequest(
                site: site, release: target, generation: Generation.name(siteDirectory: worker.siteDirectory, release: target, token: token),
                stop: worker.stopRules, start: worker.startRequest(workerServices: check.workerServices, dependencies: [])))
            await afterSwitch(session, context)
            return session.report
        }
    }

    /// Compression and checksum from what both sides' rsync offer (the worker's from its check).
    func rsyncChoices(_ worker: WorkerSettings, check: PreflightAnswer) async throws -> RsyncChoices {
        let local = (try? await runner.run(Command("rsync", ["--version"])))?.standardOutput ?? ""
        return try RsyncChoices.resolve(
            worker.compress, local: RsyncChoices.list("Compress list:", in: local), worker: check.rsyncCompress,
            workerHost: worker.server, localChecksums: RsyncChoices.list("Checksum list:", in: local),
            workerChecksums: check.rsyncChecksums)
    }
}
