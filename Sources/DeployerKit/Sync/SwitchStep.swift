/// The switch as a step of a session: one operation of the service backend, whose answer
/// becomes the report, the worker's state, or the error that says what runs.
extension WorkerSession {
    /// The critical section, run by the worker as one detached job that undoes itself on failure.
    /// An interrupt arriving now is handled after it: the switch is seconds long and never split.
    func switchServices(_ request: SwitchRequest, step: SyncStep = .switchRelease) async throws {
        workerState = .described("switching to \(request.release)")
        let detail = step == .restart ? "a new generation of \(request.release) beside the running one, check, then the old one stops"
            : "start \(request.release) beside the running workers, check, move schedule, then the old ones stop"
        let answer = try await self.step(step, detail: detail) {
            let answer: SwitchAnswer
            do {
                answer = try await services.switchRelease(request, onLine: onLine)
            } catch let interrupted as SwitchInterrupted {
                switch interrupted {
                case .releaseNotInPlace: workerState = .described("unchanged: the new release could not be put in place; the old workers still run")
                case .outcomeUnknown:
                    workerState = .described("unknown: the switch's outcome was not reported; see \(worker.siteDirectory)/.frappe-deployer/switch.log on the worker")
                }
                throw interrupted.underlying
            }
            if let downtime = answer.downtimeSeconds { report.downtimeSeconds = downtime }
            let reason = answer.reason ?? "exit \(answer.exit?.rawValue ?? -1)"
            switch answer.exit {
            case .ok?:
                report.handover = SyncReport.Handover(generation: request.generation, draining: answer.draining,
                                                      flipDeferred: answer.flipDeferred, schedulerGapSeconds: answer.schedulerGapSeconds)
                let drain = answer.draining.map { "; \($0.release) drains" + ($0.running.isEmpty ? "" : " (\($0.running.joined(separator: ", ")))") }.joined()
                return (answer, "no worker gap" + drain)
            case .rolledBack?:
                let previous = answer.rolledBackTo ?? "the previous release"
                workerState = .described("rolled back: \(previous) runs again")
                throw SyncError.rolledBack(host: host, release: request.release, previous: previous, reason: reason)
            default:
                workerState = .described("services stopped")
                throw SyncError.switchFailed(host: host, release: request.release, reason: reason)
            }
        }
        workerState = .described("\(request.release) runs")
        report.runningServices = answer.running
        report.switched = true
        try stopIfInterrupted(.switchRelease, state: "the switch completed first: \(request.release) runs")
    }
}
