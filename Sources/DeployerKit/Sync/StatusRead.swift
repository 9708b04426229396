import Foundation

/// What `remote-worker status` finds on one worker.
public struct WorkerStatus: Sendable, Equatable, Encodable {
    public typealias LastSync = StatusAnswer.LastSyncRecord
    public typealias Lock = StatusAnswer.LockRecord

    public var server: String
    public var destination: String
    public var reachable: Bool
    public var error: String?
    public var liveRelease: String?
    public var mainRelease: String
    public var matchesMain: Bool
    /// Entries of the release and deployment data that differ from the main server's (size and mtime).
    public var drift: Int?
    public var driftByTree: [TreeChanges]?
    public var releases: [String]?
    /// Each service of the site's compose project and its state (running, exited...).
    public var services: [String: String]?
    public var workerServices: [String]?
    public var schedulerRunning: Bool?
    public var lastSync: LastSync?
    public var lock: Lock?
    /// Generations told to stop by handovers: still draining, or done (and what they killed).
    public var drains: [DrainRecord]?
    /// RQ's suspend flag in the site's queue Redis: a suspended queue runs no job anywhere.
    public var queueSuspended: Bool?
    /// Releases marked bad here (rolled back automatically; syncing one again needs --force).
    public var badReleases: [String]?
}

/// What `remote-worker status` finds for a site: the main server and every worker.
public struct FleetStatus: Sendable, Encodable {
    public var site: String
    public var mainRelease: String
    /// Whether the main server runs `schedule` (nil when Docker cannot tell here).
    public var mainSchedulerRunning: Bool?
    public var schedulers: Int
    public var warnings: [String]
    public var workers: [WorkerStatus]

    /// Every worker could be reached and read.
    public var allRead: Bool { workers.allSatisfy { $0.reachable && $0.error == nil } }
}

extension SyncRunner {
    /// The state of every worker of `plans` (`parallel` at a time) and of the main server's scheduler.
    public func status(_ plans: [SyncPlan], parallel: Int) async -> FleetStatus? {
        guard let first = plans.first else { return nil }
        async let main = mainRunsScheduler(first.workspace)
        let statuses = await FleetRunner.map(plans.count, parallel: parallel) { index in await status(plans[index]) }
        let workers = statuses.compactMap { $0 }
        let mainScheduler = await main
        let running = (mainScheduler == true ? ["main server"] : []) + workers.filter { $0.schedulerRunning == true }.map(\.server)
        var warnings: [String] = []
        if workers.contains(where: { $0.queueSuspended == true }) {
            warnings.append("the queue of \(first.site) is suspended (RQ's suspend flag, set by `fmx restart` while it drains, or `rq suspend`): no worker anywhere takes a job until it is resumed")
        }
        if running.count > 1 {
            warnings.append("schedule runs on \(running.count) hosts for \(first.site) (\(running.joined(separator: ", "))): scheduled jobs are enqueued more than once; keep one (scheduler = false, or sync with --no-scheduler)")
        }
        return FleetStatus(site: first.site, mainRelease: first.release, mainSchedulerRunning: mainScheduler,
                           schedulers: running.count, warnings: warnings, workers: workers)
    }

    /// Whether the main server runs `schedule` for the site (nil when Docker cannot tell).
    func mainRunsScheduler(_ workspace: LocalWorkspace) async -> Bool? {
        let project = ComposeProject(directory: workspace.siteDirectory, file: workspace.siteDirectory + "/docker-compose.yml")
        guard let output = try? await runner.run(project.runningServices()), output.succeeded else { return nil }
        return output.standardOutput.split(separator: "\n").contains("schedule")
    }

    /// The state of one worker, read without changing it; an unreachable worker is a status, not an error.
    public func status(_ plan: SyncPlan) async -> WorkerStatus {
        let worker = plan.worker
        var status = WorkerStatus(server: worker.server, destination: worker.destination, reachable: false,
                                  mainRelease: plan.release, matchesMain: false)
        let connection: WorkerConnection
        do {
            connection = try await WorkerConnection.open(worker: worker, runner: runner)
        } catch {
            status.error = error.userMessage
            return status
        }
        status.reachable = true
        do {
            let answer = try await ComposeBackend(connection: connection).status(site: plan.site, digestExcludes: plan.releaseExcludes)
            let live = answer.releases.live
            status.liveRelease = live
            status.matchesMain = live == plan.release
            status.releases = answer.releases.all
            status.workerServices = answer.workerServices
            status.services = answer.services
            status.schedulerRunning = answer.services["schedule"] == "running"
            status.lock = answer.lock
            status.lastSync = answer.lastSync
            status.drains = answer.drains
            status.queueSuspended = answer.queueSuspended
            status.badReleases = answer.releases.bad
            if live != nil {
                // The release by digests when its copy is the verified one (nothing is read);
                // otherwise by content. Data and includes by rsync's quick check.
                var verified = false
                if answer.releases.verified?.release == plan.release && live == plan.release,
                   case .success = ReleaseDecision.verifiedCopy(of: plan.release, releases: answer.releases,
                                                                mainDigest: await ReleaseDigest.local(plan, runner: runner)) {
                    verified = true
                }
                let comparisons = plan.comparisons(live: live, rsync: RsyncChoices()).filter { !verified || $0.name != "release" }
                let trees = try await connection.changes(comparisons, checksum: false)
                // The live release's own worker configs against the main server's.
                var configs = TreeChanges(name: "worker configs")
                if plan.workerConfigs != nil, answer.releases.liveConfigs != plan.workerConfigs { configs.changed = 1 }
                status.driftByTree = (verified ? [TreeChanges(name: "release")] : []) + trees + [configs]
                status.drift = trees.reduce(configs.total) { $0 + $1.total }
            }
        } catch {
            status.error = error.userMessage
        }
        await connection.close()
        return status
    }
}
