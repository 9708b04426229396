import Foundation

/// The staged sync (the default): the release is staged beside the running one while the old
/// workers keep working, its worker configs linked, then the switch; or, when the decision is to
/// keep the live copy, only data goes over and services restart only if what they read changed.
struct StagedSync {
    let plan: SyncPlan
    let session: WorkerSession
    let check: PreflightAnswer
    let rsync: RsyncChoices
    /// The main server's digest of the release, taken before the transfer: if the release changes
    /// meanwhile, the next sync sees another digest and stages again.
    let mainDigest: String?

    func run(_ decision: ReleaseDecision) async throws {
        switch decision {
        case .keep(let verified):
            try await keep(verified)
        case .stage(let base, _, let why):
            try await session.awaitDrains(check.drains)
            if plan.release == check.releases.live, check.releases.verified?.release == plan.release, !plan.full {
                // The live copy was verified once: say why it is not kept.
                _ = try await session.step(.compare, detail: "\(plan.release) is live and verified; comparing digests") { ((), why.text) }
            }
            try await stage(base: base)
        case .inPlace:
            preconditionFailure("an in-place decision is run by InPlaceSync")
        }
    }

    /// Keeps the verified live copy: data and includes go over; services restart only when those
    /// changed or not exactly the wanted services run.
    func keep(_ verified: VerifiedCopy) async throws {
        _ = try await session.step(.compare, detail: "\(plan.release) is live and verified; comparing digests") { ((), "identical: kept") }
        session.report.releaseKept = true
        session.report.transfers = try await session.step(.stage, detail: "deployment data and includes only") {
            session.workerState = .described("unchanged: the release runs (deployment-data and includes may be updated)")
            let results = try await session.transferCancellable(plan.dataTransfers(rsync: rsync))
            return (results, WorkerSession.sentSummary(results))
        }
        let wanted = plan.startedServices(workerServices: check.workerServices)
        let changes = session.report.transfers.map { ($0.name, $0.stats.regularFilesTransferred + $0.stats.deletedFiles + $0.stats.createdFiles) }
        if ReleaseDecision.servicesStay(startChanges: ReleaseDecision.startChanges(changes), running: check.running, wanted: wanted) {
            session.report.servicesKept = true
            session.report.runningServices = check.running
            return
        }
        // Restart on the same release: a handover to a new generation of it, with the switch's
        // checks and undo; the copy stays the verified one.
        try await session.awaitDrains(check.drains)
        try await session.switchServices(switchRequest(swapFrom: nil, verified: verified.record), step: .restart)
    }

    /// Stages a fresh copy on `base`, links its configs, switches to it, prunes.
    func stage(base: String?) async throws {
        let placement = check.releases.live == nil ? "into a new directory" : "beside the running release"
        session.report.transfers = try await session.step(.stage, detail: "\(plan.release) \(placement)" + (base.map { ", reusing \($0)" } ?? "")) {
            session.workerState = .described("unchanged: the old release still runs")
            do {
                let prepared = StagePrepareAnswer(try await session.connection.run(.stagePrepare(stage: plan.stagingPath),
                                                                                   step: SyncStep.stage.rawValue, onLine: session.onLine))
                if let repaired = prepared.repaired {
                    session.report.warnings.append("\(repaired)'s directory was missing (an interrupted swap): brought back from its set-aside copy")
                }
                if let missing = prepared.liveMissing {
                    session.report.warnings.append("\(missing)'s directory was missing on the worker, with no copy to bring back: the staged copy replaces it")
                }
                if !prepared.leftovers.isEmpty {
                    session.report.warnings.append("could not remove \(prepared.leftovers.joined(separator: ", ")) in \(plan.worker.workspacePath): remove them by hand")
                }
                let results = try await session.transferCancellable(plan.transfers(base: base, rsync: rsync, splitRelease: true))
                return (results, WorkerSession.sentSummary(results))
            } catch {
                await unstage()
                session.workerState = .described("unchanged: the old release still runs (deployment-data and includes may be updated)")
                if let signal = session.interrupt?.received {
                    throw SyncError.interrupted(signal: signal, state: "staging stopped; the old release still runs")
                }
                throw error
            }
        }
        let activated = try await session.step(.link, detail: plan.release) {
            let answer = StageActivateAnswer(try await session.connection.run(
                .stageActivate(site: plan.site, release: plan.release, stage: plan.stagingPath, excludes: plan.releaseExcludes),
                step: SyncStep.link.rawValue, onLine: session.onLine))
            return (answer, answer.swap ? "worker configs linked; the live release will be swapped" : "worker configs linked; \(plan.release) ready")
        }
        session.workerState = .described("unchanged: the old release still runs; \(plan.release) is staged")
        if session.interrupt?.received != nil, activated.swap { await unstage() }
        try session.stopIfInterrupted(.link, state: "stopped before the switch; the old release still runs")
        // The main digest alone: the switch takes the copy's digest during its settle time, off
        // the sync's path, and records both once the new generation runs.
        try await session.switchServices(switchRequest(swapFrom: activated.swap ? plan.stagingPath : nil, verified: mainDigest))
        // The new release runs: a prune that fails is a warning, never a failed sync.
        do {
            let answer = try await session.step(.prune, detail: "keep \(plan.worker.keepReleases)") {
                let answer = PruneAnswer(try await session.connection.run(.prune(keep: plan.worker.keepReleases), step: SyncStep.prune.rawValue,
                                                                           onLine: session.onLine))
                return (answer, answer.pruned.isEmpty ? "nothing to remove" : "removed \(answer.pruned.joined(separator: ", "))")
            }
            session.report.pruned = answer.pruned
            if !answer.failed.isEmpty {
                session.report.warnings.append("could not remove \(answer.failed.joined(separator: ", "))"
                    + (answer.error.map { " (\($0))" } ?? "") + ": out of the release list now; the next sync that stages finishes it off")
            }
        } catch {
            if session.interrupt?.received != nil { throw error }
            session.report.warnings.append("pruning old releases failed: \(error.userMessage); the next sync tries again")
        }
    }

    func switchRequest(swapFrom: String?, verified: String?) -> SwitchRequest {
        SwitchRequest(site: plan.site, release: plan.release,
                      generation: Generation.name(siteDirectory: plan.worker.siteDirectory, release: plan.release, token: plan.token),
                      swapFrom: swapFrom, stop: plan.stopRules, start: plan.startRequest(workerServices: check.workerServices),
                      verified: verified)
    }

    /// Removes the staged copy, unless the connection is gone (the next sync removes it then).
    func unstage() async {
        if await session.connection.isAlive() {
            _ = try? await session.connection.run(.unstage(stage: plan.stagingPath), step: "unstage")
        }
    }
}
