import Foundation

/// What a sync to one worker will do, decided before anything runs: immutable, and printing it
/// changes nothing. What is learnt on the worker lives in the session (`WorkerSession`), and what
/// the sync does with the worker's release is the `ReleaseDecision` made from both.
public struct SyncPlan: Sendable, Equatable {
    public let site: String
    public let workspace: LocalWorkspace
    public let worker: WorkerSettings
    /// Names this sync on the worker (its lock and its staging directory).
    public let token: String
    /// What the started services must reach (checked from the worker after the start).
    public let dependencies: [WorkerDependency]
    /// Stage and switch even when the worker's live release is this one, verified and unchanged.
    public let full: Bool
    /// Sync the release even where it is marked bad (a switch to it was rolled back automatically).
    public let force: Bool
    /// The fingerprint of the main server's worker configs (read once, when the plan is made):
    /// a live release whose own copies differ is not kept (`ReleaseDecision`).
    public let workerConfigs: String?

    public var release: String { workspace.releaseName }
    public var strategy: SyncStrategy { worker.strategy }
    /// Where a staged sync transfers the release before it goes live.
    public var stagingPath: String { "\(worker.workspacePath)/.fd-staging-\(release)-\(token)" }

    /// Builds the plan for one worker from checked settings and a located workspace.
    public static func make(workspace: LocalWorkspace, worker: WorkerSettings, dependencies: [WorkerDependency] = [],
                            full: Bool = false, force: Bool = false, token: String = SyncPlan.newToken()) -> SyncPlan {
        SyncPlan(site: workspace.siteName, workspace: workspace, worker: worker, token: token, dependencies: dependencies,
                 full: full, force: force, workerConfigs: workspace.workerConfigFingerprint())
    }

    /// A short random name: enough to tell concurrent syncs apart.
    public static func newToken() -> String {
        String(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased())
    }

    /// The release's exclude patterns (built-in and the operator's), as the digests use them.
    public var releaseExcludes: [String] { ExcludeRules.release(site: site) + worker.excludePatterns }

    /// What the worker check digests: the live copy, only when it is this release and a staged
    /// sync could keep it (a sync of another release, `--full` or in place never does).
    public var liveDigest: LiveDigestRequest? {
        strategy == .staged && !full ? LiveDigestRequest(release: release, excludes: releaseExcludes) : nil
    }

    /// The services a start runs (see `WorkerSettings.startedServices`).
    public func startedServices(workerServices: [String]) -> [String] {
        worker.startedServices(workerServices: workerServices)
    }

    /// Starting this worker's services and checking them, dependencies included.
    public func startRequest(workerServices: [String]) -> StartRequest {
        worker.startRequest(workerServices: workerServices, dependencies: dependencies)
    }

    /// How long each service gets to stop.
    public var stopRules: StopRules { worker.stopRules }

    /// Refuses, before anything changes, a release marked bad on the worker unless `force`.
    public func checkNotMarkedBad(_ releases: WorkerReleases) throws(SyncError) {
        if releases.bad.contains(release) && !force { throw .markedBad(host: worker.server, release: release) }
    }
}

/// Which services a worker runs and how they stop: the one place these are decided.
extension WorkerSettings {
    /// The services a start runs, in the order they start: `schedule` (unless this worker gives
    /// it up) and the services of the worker's `docker-compose.workers.yml`.
    public func startedServices(workerServices: [String]) -> [String] {
        (scheduler ? ["schedule"] : []) + workerServices.sorted()
    }

    public func startRequest(workerServices: [String], dependencies: [WorkerDependency]) -> StartRequest {
        StartRequest(services: startedServices(workerServices: workerServices), settleSeconds: settleSeconds, dependencies: dependencies)
    }

    /// bench's own waits, or `stop_timeout` for every service.
    public var stopRules: StopRules { StopRules.forWorker(stopTimeout: stopTimeout) }
}
