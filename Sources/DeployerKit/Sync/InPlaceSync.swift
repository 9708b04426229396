/// `--strategy in-place`: the spec's literal order under the lock (stop, transfer over the live
/// release, link, start), for workers without room for two releases. Services are down for the
/// whole transfer, and it is never interrupted half-way: that would leave a mix of two releases.
struct InPlaceSync {
    let plan: SyncPlan
    let session: WorkerSession
    let check: PreflightAnswer
    let rsync: RsyncChoices

    func run() async throws {
        try session.stopIfInterrupted(.preflight, state: "stopped before any change")
        let stopped = try await session.step(.stopServices) {
            session.workerState = .described("services stopping, files unchanged")
            let answer = try await session.services.stopAll(plan.stopRules, onLine: session.onLine)
            session.workerState = .described("services stopped, files unchanged")
            return (answer, "all services of the site's compose project are down")
        }
        session.report.transfers = try await session.step(.transfer, detail: "in place, services down") {
            session.workerState = .described("services stopped, files partly transferred")
            let results = try await session.transferAll(plan.transfers(base: nil, rsync: rsync))
            return (results, WorkerSession.sentSummary(results))
        }
        session.workerState = .described("services stopped, files of \(plan.release) transferred")
        try await session.step(.link, detail: plan.release) {
            _ = try await session.connection.run(.activate(site: plan.site, release: plan.release), step: SyncStep.link.rawValue,
                                                 onLine: session.onLine)
            session.workerState = .described("services stopped, frappe-bench -> \(plan.release) with worker configs")
            return ((), "frappe-bench -> \(plan.release); worker configs linked")
        }
        session.report.runningServices = try await session.step(.startServices) {
            let answer = try await session.services.start(plan.startRequest(workerServices: check.workerServices), onLine: session.onLine)
            // From the stop to the services up again, both on the worker's clock.
            if let up = answer.upMilliseconds, let stopping = stopped.stoppingMilliseconds {
                session.report.downtimeSeconds = (up - stopping) / 1000
            }
            return (answer.running, answer.running.joined(separator: ", "))
        }
        session.report.switched = true
    }
}
